//! Driving the LEDs: the board's own LED under `/sys/class/leds` (`ACT`, or
//! `led0` on older kernels; its trigger set to `none` first) and up to three
//! GPIO LEDs (`red`, `green`, `blue`) through rppal. A missing LED is noted
//! once; the state still reaches the log and `system.json`.

use std::path::{Path, PathBuf};

use rppal::gpio::{Gpio, OutputPin};

use super::leds::{Pattern, lit};
use crate::config::Leds as LedConfig;

pub struct Hardware {
    board: Option<PathBuf>,
    board_on: Option<bool>,
    gpio: Vec<(Color, OutputPin, Option<bool>)>,
}

#[derive(Debug, Clone, Copy)]
enum Color {
    Red,
    Green,
    Blue,
}

impl Hardware {
    pub fn none() -> Hardware {
        Hardware {
            board: None,
            board_on: None,
            gpio: Vec::new(),
        }
    }

    pub fn open(sys: &Path, cfg: &LedConfig) -> Hardware {
        let mut hw = Hardware::none();
        if !cfg.enabled {
            log::info!("leds: off in the config");
        }
        if cfg.board {
            let dir = sys.join("class/leds");
            match ["ACT", "led0"]
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.exists())
            {
                Some(led) => match std::fs::write(led.join("trigger"), "none") {
                    Ok(()) => {
                        log::info!("leds: board led {}", led.display());
                        hw.board = Some(led);
                    }
                    Err(e) => log::warn!("leds: {}: {e}", led.join("trigger").display()),
                },
                None => log::info!("leds: no board led under {}", dir.display()),
            }
        }
        let wanted = [
            (Color::Red, cfg.red),
            (Color::Green, cfg.green),
            (Color::Blue, cfg.blue),
        ];
        if wanted.iter().any(|(_, pin)| pin.is_some()) {
            match Gpio::new() {
                Ok(gpio) => {
                    for (color, pin) in wanted {
                        let Some(pin) = pin else { continue };
                        match gpio.get(pin) {
                            Ok(p) => hw.gpio.push((color, p.into_output_low(), None)),
                            Err(e) => log::warn!("leds: {color:?} on gpio {pin}: {e}"),
                        }
                    }
                }
                Err(e) => log::warn!("leds: gpio: {e}"),
            }
        }
        hw
    }

    /// Sets every LED as `pattern` wants `t_ms` into it; writes only changes.
    pub fn show(&mut self, pattern: &Pattern, t_ms: u64) {
        if let Some(led) = &self.board {
            let on = lit(pattern.board, t_ms);
            if self.board_on != Some(on) {
                let _ = std::fs::write(led.join("brightness"), if on { "1" } else { "0" });
                self.board_on = Some(on);
            }
        }
        for (color, pin, last) in &mut self.gpio {
            let blink = match color {
                Color::Red => pattern.red,
                Color::Green => pattern.green,
                Color::Blue => pattern.blue,
            };
            let on = lit(blink, t_ms);
            if *last != Some(on) {
                if on {
                    pin.set_high();
                } else {
                    pin.set_low();
                }
                *last = Some(on);
            }
        }
    }
}
