//! The wall clock at boot on a board without a battery: the time saved on
//! `/data` or the build time, whichever is later, set only when that is
//! later than the clock already is; and the saving of the time, every hour
//! and at shutdown. Keeping it right over NTP is the `ntp` service's job.

use std::path::Path;

use nix::time::{ClockId, clock_gettime, clock_settime};

/// Where the time is saved, under the data partition.
pub const SAVED: &str = "babymon/clock";

/// What to do with the clock at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Set the clock to this (Unix seconds), or leave it.
    pub set_to: Option<u64>,
    /// "rtc" (the clock already knew better), "saved" or "build".
    pub source: &'static str,
}

pub fn decide(now: u64, saved: Option<u64>, build: u64) -> Decision {
    let (best, source) = match saved {
        Some(s) if s > build => (s, "saved"),
        _ => (build, "build"),
    };
    if best > now {
        Decision {
            set_to: Some(best),
            source,
        }
    } else {
        Decision {
            set_to: None,
            source: "rtc",
        }
    }
}

/// The build time: `SOURCE_DATE_EPOCH` when the build set it, and the
/// init binary's own modification time, whichever is later.
pub fn build_time() -> u64 {
    let env = option_env!("SOURCE_DATE_EPOCH").and_then(|s| s.trim().parse().ok());
    let exe = std::fs::metadata("/proc/self/exe")
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    env.into_iter().chain(exe).max().unwrap_or(0)
}

pub fn now() -> u64 {
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(|t| u64::try_from(t.tv_sec()).unwrap_or(0))
        .unwrap_or(0)
}

pub fn read_saved(data: &Path) -> Option<u64> {
    std::fs::read_to_string(data.join(SAVED))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Saves the time (a temporary file, then a rename).
pub fn save(data: &Path) -> std::io::Result<()> {
    let path = data.join(SAVED);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", now()))?;
    std::fs::rename(&tmp, &path)
}

pub fn set(unix_s: u64) -> nix::Result<()> {
    let secs = i64::try_from(unix_s).map_err(|_| nix::errno::Errno::EINVAL)?;
    clock_settime(
        ClockId::CLOCK_REALTIME,
        nix::sys::time::TimeSpec::new(secs, 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_of_saved_and_build_and_only_forward() {
        // A Pi without RTC at 1970.
        assert_eq!(
            decide(5, Some(2000), 1000),
            Decision {
                set_to: Some(2000),
                source: "saved"
            }
        );
        assert_eq!(
            decide(5, Some(900), 1000),
            Decision {
                set_to: Some(1000),
                source: "build"
            }
        );
        assert_eq!(
            decide(5, None, 1000),
            Decision {
                set_to: Some(1000),
                source: "build"
            }
        );
        // A clock that knows better is left alone.
        assert_eq!(
            decide(3000, Some(2000), 1000),
            Decision {
                set_to: None,
                source: "rtc"
            }
        );
        assert_eq!(
            decide(1000, None, 1000),
            Decision {
                set_to: None,
                source: "rtc"
            }
        );
    }

    #[test]
    fn saved_time_round_trip() {
        let dir = std::env::temp_dir().join(format!("babymon-clock-{}", std::process::id()));
        assert_eq!(read_saved(&dir), None);
        save(&dir).unwrap();
        let saved = read_saved(&dir).unwrap();
        assert!(saved.abs_diff(now()) <= 1);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            build_time() > 1_600_000_000,
            "the test binary was built recently"
        );
    }
}
