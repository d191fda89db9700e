//! The fill window: the local hours in which the nightly fill may run
//! (`"02:00-06:00"`; a window may wrap midnight, `"22:00-04:00"`), or
//! `"always"`. A fill stops at the window's end and carries on in the next.

use std::time::Duration;

use serde::{Deserialize, Serialize};

const DAY: u32 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Window {
    Always,
    /// Seconds after local midnight: start inclusive, end exclusive.
    Daily {
        start: u32,
        end: u32,
    },
}

impl Default for Window {
    fn default() -> Self {
        Window::Daily {
            start: 2 * 3600,
            end: 6 * 3600,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("fill window '{0}' is not \"HH:MM-HH:MM\" or \"always\"")]
pub struct WindowError(String);

impl std::str::FromStr for Window {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "always" {
            return Ok(Window::Always);
        }
        let err = || WindowError(s.to_string());
        let clock = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 3600 + m * 60)
        };
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        let (start, end) = (clock(a).ok_or_else(err)?, clock(b).ok_or_else(err)?);
        if start == end {
            return Err(err());
        }
        Ok(Window::Daily {
            start: start % DAY,
            end: end % DAY,
        })
    }
}

impl TryFrom<String> for Window {
    type Error = WindowError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Window> for String {
    fn from(w: Window) -> String {
        match w {
            Window::Always => "always".into(),
            Window::Daily { start, end } => {
                format!(
                    "{:02}:{:02}-{:02}:{:02}",
                    start / 3600,
                    start / 60 % 60,
                    end / 3600,
                    end / 60 % 60
                )
            }
        }
    }
}

impl Window {
    /// How long the window stays open from `now` (seconds after local
    /// midnight); `None` when it is closed.
    pub fn remaining(&self, now: u32) -> Option<Duration> {
        match *self {
            Window::Always => Some(Duration::from_secs(u64::from(DAY))),
            Window::Daily { start, end } => {
                let open = if start < end {
                    (start..end).contains(&now)
                } else {
                    now >= start || now < end
                };
                open.then(|| Duration::from_secs(u64::from((end + DAY - now) % DAY)))
            }
        }
    }

    /// How long until the window next opens (zero when open).
    pub fn until_open(&self, now: u32) -> Duration {
        match *self {
            Window::Always => Duration::ZERO,
            Window::Daily { start, .. } if self.remaining(now).is_none() => {
                Duration::from_secs(u64::from((start + DAY - now) % DAY))
            }
            Window::Daily { .. } => Duration::ZERO,
        }
    }
}

/// Seconds after local midnight now, by the system's time zone.
pub fn local_seconds_of_day() -> u32 {
    let now = nearcast_common::unix_now() as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if !ok {
        return (now.rem_euclid(i64::from(DAY) as libc::time_t)) as u32;
    }
    (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u32 = 3600;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            "02:00-06:00".parse(),
            Ok(Window::Daily {
                start: 2 * H,
                end: 6 * H
            })
        );
        assert_eq!(
            "22:30-24:00".parse(),
            Ok(Window::Daily {
                start: 22 * H + 1800,
                end: 0
            })
        );
        assert_eq!("always".parse(), Ok(Window::Always));
        for text in ["02:00-06:00", "22:30-04:15", "always"] {
            assert_eq!(String::from(text.parse::<Window>().unwrap()), text);
        }
        for bad in [
            "",
            "2-6",
            "02:00",
            "25:00-06:00",
            "02:60-03:00",
            "03:00-03:00",
            "x:00-06:00",
        ] {
            assert!(bad.parse::<Window>().is_err(), "{bad}");
        }
    }

    #[test]
    fn open_close_and_wrap() {
        let w: Window = "02:00-06:00".parse().unwrap();
        assert_eq!(w.remaining(H), None);
        assert_eq!(w.until_open(H), Duration::from_secs(u64::from(H)));
        assert_eq!(w.remaining(2 * H), Some(Duration::from_secs(u64::from(4 * H))));
        assert_eq!(w.remaining(6 * H), None);
        assert_eq!(w.until_open(7 * H), Duration::from_secs(u64::from(19 * H)));
        let night: Window = "22:00-04:00".parse().unwrap();
        assert_eq!(night.remaining(23 * H), Some(Duration::from_secs(u64::from(5 * H))));
        assert_eq!(night.remaining(H), Some(Duration::from_secs(u64::from(3 * H))));
        assert_eq!(night.remaining(12 * H), None);
        assert_eq!(night.until_open(12 * H), Duration::from_secs(u64::from(10 * H)));
        assert!(Window::Always.remaining(12 * H).is_some());
    }

    #[test]
    fn local_time_is_within_a_day() {
        assert!(local_seconds_of_day() < DAY);
    }
}
