//! NIC link state from `/sys/class/net/{iface}`.

use serde::Serialize;

use crate::host::Host;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkReading {
    pub iface: String,
    pub present: bool,
    /// Carrier detected (cable in, peer up).
    pub carrier: bool,
    /// Negotiated speed; `None` when the driver does not say (loopback,
    /// virtual NICs) or the link is down.
    pub speed_mbps: Option<u64>,
    pub duplex: Option<String>,
    pub operstate: Option<String>,
}

pub fn read(host: &Host, iface: &str) -> LinkReading {
    let attr = |name: &str| host.read(&format!("sys/class/net/{iface}/{name}")).ok();
    let present = host.path(&format!("sys/class/net/{iface}")).exists();
    LinkReading {
        iface: iface.to_string(),
        present,
        carrier: attr("carrier").as_deref() == Some("1"),
        // Down links report -1 (or fail to read).
        speed_mbps: attr("speed")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| u64::try_from(s).ok()),
        duplex: attr("duplex").filter(|d| d != "unknown"),
        operstate: attr("operstate"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machines_loopback() {
        let lo = read(&Host::real(), "lo");
        assert!(lo.present && lo.carrier, "{lo:?}");
        assert!(!read(&Host::real(), "no-such-nic0").present);
    }
}
