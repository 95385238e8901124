//! The two JSON files through which init and `serve` tell each other how
//! things stand: init writes `/run/babymon/system.json` (read by `serve` for
//! `/api/status`), `serve` writes `/run/babymon/serve.json` (read by init for
//! the LEDs). Both are written atomically: a temporary file, then a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The folder both files live in on the device.
pub const RUN_DIR: &str = "/run/babymon";
pub const SYSTEM_FILE: &str = "system.json";
pub const SERVE_FILE: &str = "serve.json";

/// Largest state file read back; a bigger one is ignored as corrupt.
const MAX_READ_BYTES: u64 = 256 * 1024;

/// init's view of the device, shown under `system` in `/api/status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SystemState {
    pub version: String,
    pub uptime_s: u64,
    pub services: Vec<ServiceState>,
    /// The LED pattern's name, such as "streaming" or "crash-loop".
    pub leds: String,
    /// "off" (not configured), "starting", "up" or "down".
    pub tunnel: String,
    pub wifi: Option<WifiState>,
    pub clock: ClockState,
    pub temperature_c: Option<f32>,
    /// The device's addresses on its network links, the one a phone opens
    /// and a Zero Trust private route names.
    pub addresses: Vec<LinkAddress>,
    pub config_errors: Vec<String>,
    /// Boot steps that failed, such as "/data: mount: ...".
    pub boot_errors: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LinkAddress {
    pub interface: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ServiceState {
    pub name: String,
    /// "starting", "running", "healthy", "backoff", "crash-loop", "stopped"
    /// or "not available" (its program is missing; never started).
    pub state: String,
    pub pid: Option<i32>,
    pub restarts: u32,
    /// "exit 1", "signal 9" or null when it has not exited yet.
    pub last_exit: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WifiState {
    pub ssid: String,
    pub connected: bool,
    pub signal_dbm: Option<i32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ClockState {
    /// True once NTP (or a clock that knew the time at boot) set it.
    pub synced: bool,
    /// Where the time came from: "rtc", "saved", "build" or "ntp".
    pub source: String,
    pub unix_s: u64,
}

/// `serve`'s view, for init's LEDs and health.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ServeState {
    /// "camera" when a real camera streams, "test" for the test pattern.
    pub source: String,
    pub device: Option<String>,
    /// The pipeline's state: "playing", "starting" or "stopped".
    pub pipeline: String,
    pub viewers: Vec<ViewerPath>,
}

/// How one viewer is connected, as only `serve` can see it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ViewerPath {
    pub id: String,
    /// "udp" or "tcp".
    pub transport: String,
    /// "tunnel" when the flow comes from this device's own address (as
    /// cloudflared re-originates it), "lan" otherwise, "" before ICE settles.
    pub path: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: larger than {MAX_READ_BYTES} bytes")]
    TooLarge { path: PathBuf },
}

/// Writes `value` as JSON to `path` atomically.
pub fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StateFileError> {
    let io = |source| StateFileError::Io {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec_pretty(value).map_err(|source| StateFileError::Json {
        path: path.to_owned(),
        source,
    })?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(&json).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a state file written by [`write_atomic`].
pub fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StateFileError> {
    let io = |source| StateFileError::Io {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_READ_BYTES {
        return Err(StateFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    serde_json::from_slice(&bytes).map_err(|source| StateFileError::Json {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_temporary_left() {
        let dir = std::env::temp_dir().join(format!("babymon-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(SERVE_FILE);
        let state = ServeState {
            source: "test".into(),
            pipeline: "playing".into(),
            viewers: vec![ViewerPath {
                id: "a1".into(),
                transport: "udp".into(),
                path: "lan".into(),
            }],
            ..Default::default()
        };
        write_atomic(&path, &state).unwrap();
        let back: ServeState = read(&path).unwrap();
        assert_eq!(back, state);
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_fields_take_defaults() {
        let s: SystemState = serde_json::from_str(r#"{"leds":"booting"}"#).unwrap();
        assert_eq!(s.leds, "booting");
        assert!(s.services.is_empty());
    }
}
