//! Front-panel LEDs and buttons behind `embedded-hal` digital traits, so
//! the panel logic runs the same on any board: LEDs through the Linux LED
//! class (`/sys/class/leds/{name}/brightness`), buttons through a GPIO
//! line's `value` file.

use std::convert::Infallible;
use std::path::PathBuf;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};
use nearcast_common::control::Health;

use crate::host::Host;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PinError {
    path: String,
    source: std::io::Error,
}

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// One LED of the LED class.
pub struct Led {
    brightness: PathBuf,
    max: String,
}

impl Led {
    pub fn new(host: &Host, name: &str) -> Led {
        let dir = host.path(&format!("sys/class/leds/{name}"));
        let max = crate::host::read_attr(&dir.join("max_brightness")).unwrap_or_else(|_| "1".into());
        Led {
            brightness: dir.join("brightness"),
            max,
        }
    }

    fn write(&self, v: &str) -> Result<(), PinError> {
        std::fs::write(&self.brightness, v).map_err(|source| PinError {
            path: self.brightness.display().to_string(),
            source,
        })
    }
}

impl ErrorType for Led {
    type Error = PinError;
}

impl OutputPin for Led {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.write("0")
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        let max = self.max.clone();
        self.write(&max)
    }
}

/// A button on a GPIO line (`value` reads `0` or `1`; pressed is low).
pub struct Button {
    value: PathBuf,
}

impl Button {
    pub fn new(host: &Host, gpio: u32) -> Button {
        Button {
            value: host.path(&format!("sys/class/gpio/gpio{gpio}/value")),
        }
    }
}

impl ErrorType for Button {
    type Error = PinError;
}

impl InputPin for Button {
    fn is_high(&mut self) -> Result<bool, PinError> {
        crate::host::read_attr(&self.value)
            .map(|v| v == "1")
            .map_err(|source| PinError {
                path: self.value.display().to_string(),
                source,
            })
    }

    fn is_low(&mut self) -> Result<bool, PinError> {
        self.is_high().map(|h| !h)
    }
}

/// The front panel: a green "ok" LED and an amber "fault" LED. Ok: green.
/// Filling or updating: both (the operator should not pull it). Degraded:
/// amber. Failed: amber only, green off.
pub struct Panel<P: OutputPin> {
    pub ok: P,
    pub fault: P,
}

impl<P: OutputPin> Panel<P> {
    pub fn show(&mut self, state: Health) -> Result<(), P::Error> {
        let (ok, fault) = match state {
            Health::Ok => (true, false),
            Health::Filling | Health::Updating => (true, true),
            Health::Degraded => (false, true),
            Health::Failed => (false, true),
        };
        if ok {
            self.ok.set_high()?
        } else {
            self.ok.set_low()?
        }
        if fault {
            self.fault.set_high()
        } else {
            self.fault.set_low()
        }
    }
}

/// An LED that only remembers its level (for boxes without a panel).
#[derive(Debug, Default)]
pub struct NoLed {
    pub lit: bool,
}

impl ErrorType for NoLed {
    type Error = Infallible;
}

impl OutputPin for NoLed {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.lit = false;
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.lit = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_patterns() {
        let mut p = Panel {
            ok: NoLed::default(),
            fault: NoLed::default(),
        };
        for (state, ok, fault) in [
            (Health::Ok, true, false),
            (Health::Filling, true, true),
            (Health::Degraded, false, true),
            (Health::Failed, false, true),
        ] {
            p.show(state).unwrap();
            assert_eq!((p.ok.lit, p.fault.lit), (ok, fault), "{state:?}");
        }
    }

    #[test]
    fn led_class_and_gpio_files() {
        let root = nearcast_testkit::TempDir::new("led");
        let led_dir = root.join("sys/class/leds/status:green");
        std::fs::create_dir_all(&led_dir).unwrap();
        std::fs::write(led_dir.join("max_brightness"), "255\n").unwrap();
        std::fs::create_dir_all(root.join("sys/class/gpio/gpio17")).unwrap();
        std::fs::write(root.join("sys/class/gpio/gpio17/value"), "0\n").unwrap();
        let host = Host::at(&root);
        let mut led = Led::new(&host, "status:green");
        led.set_high().unwrap();
        assert_eq!(std::fs::read_to_string(led_dir.join("brightness")).unwrap(), "255");
        led.set_low().unwrap();
        assert_eq!(std::fs::read_to_string(led_dir.join("brightness")).unwrap(), "0");
        let mut button = Button::new(&host, 17);
        assert!(button.is_low().unwrap(), "pressed");
        assert!(Button::new(&host, 18).is_high().is_err());
    }
}
