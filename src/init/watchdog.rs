//! The hardware watchdog: opened at boot, fed from the main loop, so a hung
//! init resets the board. It is never closed with the magic character: if
//! shutdown hangs, the watchdog ends it.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const FEED_EVERY: Duration = Duration::from_secs(1);

pub struct Watchdog {
    file: Option<File>,
    fed: Option<Instant>,
}

impl Watchdog {
    pub fn off() -> Watchdog {
        Watchdog {
            file: None,
            fed: None,
        }
    }

    pub fn open(dev: &Path) -> Watchdog {
        let path = dev.join("watchdog");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => {
                log::info!("{}: armed, fed from the main loop", path.display());
                Watchdog {
                    file: Some(file),
                    fed: None,
                }
            }
            Err(e) => {
                log::info!(
                    "{}: none ({e}); a hung init will not reset the board",
                    path.display()
                );
                Watchdog::off()
            }
        }
    }

    pub fn feed(&mut self, now: Instant) {
        if self
            .fed
            .is_some_and(|t| now.saturating_duration_since(t) < FEED_EVERY)
        {
            return;
        }
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(b"\0")
        {
            log::warn!("watchdog: {e}");
        }
        self.fed = Some(now);
    }
}
