//! hwmon sensors: every `temp*_input` and `fan*_input` under
//! `/sys/class/hwmon/hwmon*`.

use serde::Serialize;

use crate::host::{parse_u64, read_attr, Host};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sensor {
    /// The chip (`coretemp`, `nvme`, `drivetemp`).
    pub chip: String,
    /// `temp1`, `fan2`, or the driver's label.
    pub label: String,
    pub kind: SensorKind,
    /// °C for temperatures, RPM for fans.
    pub value: f64,
    /// The chip's critical temperature, °C, where it says.
    pub critical: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    Temperature,
    Fan,
}

pub fn read_all(host: &Host) -> Vec<Sensor> {
    let mut out = Vec::new();
    let Ok(chips) = std::fs::read_dir(host.path("sys/class/hwmon")) else {
        return out;
    };
    let mut chips: Vec<_> = chips.flatten().map(|e| e.path()).collect();
    chips.sort();
    for dir in chips {
        let chip = read_attr(&dir.join("name")).unwrap_or_else(|_| "unknown".into());
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let Some(stem) = name.strip_suffix("_input") else {
                continue;
            };
            let kind = if stem.starts_with("temp") {
                SensorKind::Temperature
            } else if stem.starts_with("fan") {
                SensorKind::Fan
            } else {
                continue;
            };
            let Some(raw) = read_attr(&dir.join(&name)).ok().and_then(|v| parse_u64(&v)) else {
                continue;
            };
            let milli = |v: u64| v as f64 / 1000.0;
            out.push(Sensor {
                chip: chip.clone(),
                label: read_attr(&dir.join(format!("{stem}_label"))).unwrap_or_else(|_| stem.to_string()),
                kind,
                value: if kind == SensorKind::Temperature {
                    milli(raw)
                } else {
                    raw as f64
                },
                critical: read_attr(&dir.join(format!("{stem}_crit")))
                    .ok()
                    .and_then(|v| parse_u64(&v))
                    .map(milli),
            });
        }
    }
    out
}
