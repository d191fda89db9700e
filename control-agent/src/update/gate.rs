//! When a written slot may be booted into: an update reboots the box, so
//! a non-emergency release waits for the box's maintenance window (its
//! own, or the fill window) and for the box to serve under a load
//! threshold; the download and the slot write happen at once, before.
//! Pure, so it is tested without a box.

use std::time::Duration;

use crate::window::Window;

/// Why the reboot waits.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// Outside the window; it opens in this long.
    Window(Duration),
    /// Serving above the threshold (both shares of the connection cap).
    Load { load: f64, max: f64 },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Window(d) => write!(
                f,
                "waits for the maintenance window (opens in {} min)",
                d.as_secs() / 60
            ),
            Hold::Load { load, max } => write!(
                f,
                "waits for the load to drop ({:.0} % of connections, at most {:.0} %)",
                load * 100.0,
                max * 100.0
            ),
        }
    }
}

/// Whether the box may reboot into the new slot now (`now`: seconds after
/// local midnight; `load`: the appliance's share of its connection cap).
pub fn may_reboot(window: &Window, now: u32, load: f64, max_load: f64, emergency: bool) -> Result<(), Hold> {
    if emergency {
        return Ok(());
    }
    if window.remaining(now).is_none() {
        return Err(Hold::Window(window.until_open(now)));
    }
    if load > max_load {
        return Err(Hold::Load { load, max: max_load });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_window_and_the_load_unless_emergency() {
        let w: Window = "02:00-04:00".parse().unwrap();
        let at = |h: u32, m: u32| h * 3600 + m * 60;
        assert_eq!(
            may_reboot(&w, at(1, 30), 0.0, 0.5, false),
            Err(Hold::Window(Duration::from_secs(1800)))
        );
        assert_eq!(may_reboot(&w, at(2, 30), 0.1, 0.5, false), Ok(()));
        assert_eq!(
            may_reboot(&w, at(2, 30), 0.8, 0.5, false),
            Err(Hold::Load { load: 0.8, max: 0.5 })
        );
        assert_eq!(
            may_reboot(&w, at(4, 0), 0.0, 0.5, false).map_err(|h| h.to_string()),
            Err("waits for the maintenance window (opens in 1320 min)".to_string())
        );
        // An emergency installs at once, window or load.
        assert_eq!(may_reboot(&w, at(12, 0), 0.9, 0.5, true), Ok(()));
        assert_eq!(may_reboot(&Window::Always, at(12, 0), 0.2, 0.5, false), Ok(()));
    }
}
