//! `babymon.toml`: the one config file that `babymon-init` and `babymon serve`
//! both read, with the same code.
//!
//! Parsing never stops at the first problem: every problem is collected with
//! its line, its key and a fix, so `babymon check-config` can list them all.
//! Unknown keys are problems too; at run time the programs log them as
//! warnings. A key that guards something (the viewer password, the tunnel
//! token, the Wi-Fi password) is never replaced by a weaker default when its
//! value is bad: [`Config::guard_failed`] tells the caller to keep that
//! service off. The list of known keys lives in [`keys`].

pub mod keys;
mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml::Spanned;

pub use secret::Secret;

/// Where the device keeps its config: the boot partition.
pub const DEVICE_PATH: &str = "/boot/babymon.toml";

/// The largest config file accepted; anything bigger is not a config file.
const MAX_FILE_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Config {
    pub system: System,
    pub wifi: Wifi,
    pub tunnel: Tunnel,
    pub camera: Camera,
    pub audio: Audio,
    pub viewer: Viewer,
    pub leds: Leds,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct System {
    pub hostname: String,
    pub serial_shell: bool,
    pub modules: Vec<String>,
    pub ntp_servers: Vec<String>,
}

/// Wi-Fi is in use when `ssid` is not empty.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Wifi {
    pub ssid: String,
    pub password: Secret,
    pub country: String,
}

/// The tunnel is in use when a token, or a credentials file and tunnel id,
/// are given.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Tunnel {
    pub token: Secret,
    pub credentials_file: String,
    pub tunnel_id: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Auto,
    V4l2,
    Libcamera,
    Test,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Camera {
    pub source: Source,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub bitrate_kbps: u32,
    pub rotation: u32,
    pub encoder: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Audio {
    pub enabled: bool,
    pub device: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Viewer {
    pub port: u16,
    pub password: Secret,
    pub max_viewers: u32,
    /// Inclusive UDP/TCP port range for ICE, `None` for any port.
    pub ice_ports: Option<(u16, u16)>,
    pub ice_addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Leds {
    pub enabled: bool,
    pub board: bool,
    pub red: Option<u8>,
    pub green: Option<u8>,
    pub blue: Option<u8>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            system: System {
                hostname: "babymon".into(),
                serial_shell: false,
                modules: Vec::new(),
                ntp_servers: vec!["time.cloudflare.com".into(), "pool.ntp.org".into()],
            },
            wifi: Wifi::default(),
            tunnel: Tunnel::default(),
            camera: Camera {
                source: Source::Auto,
                device: String::new(),
                width: 1280,
                height: 720,
                framerate: 30,
                bitrate_kbps: 2000,
                rotation: 0,
                encoder: "auto".into(),
            },
            audio: Audio {
                enabled: true,
                device: String::new(),
            },
            viewer: Viewer {
                port: 8080,
                password: Secret::default(),
                max_viewers: 8,
                ice_ports: None,
                ice_addresses: Vec::new(),
            },
            leds: Leds {
                enabled: true,
                board: true,
                red: None,
                green: None,
                blue: None,
            },
        }
    }
}

impl Wifi {
    pub fn is_set(&self) -> bool {
        !self.ssid.is_empty()
    }
}

impl Tunnel {
    pub fn is_set(&self) -> bool {
        self.token.is_set() || !self.credentials_file.is_empty()
    }
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A bad value: the default is used instead, or the guarded service stays off.
    Error,
    /// A key or section babymon does not know: ignored at run time.
    Unknown,
}

/// One thing wrong with a config file, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line, 0 when the problem is not tied to a line.
    pub line: usize,
    /// `section.key`, `section`, or empty for the whole file.
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The result of reading a config: the values to use and what was wrong.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub problems: Vec<Problem>,
    /// The file could not be read or parsed at all, so nothing in it
    /// (a password included) is known.
    pub unreadable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is too large for a config file (at most {MAX_FILE_BYTES})")]
    TooLarge { path: PathBuf, size: u64 },
}

impl Loaded {
    /// True when a key that guards `section` had a bad value (or the file
    /// could not be parsed): the service behind that section must stay off
    /// rather than run unguarded.
    pub fn guard_failed(&self, section: &str) -> bool {
        self.unreadable
            || self.problems.iter().any(|p| {
                p.severity == Severity::Error
                    && keys::is_guard(&p.key)
                    && p.key.starts_with(section)
            })
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

/// Reads and parses a config file. I/O errors are returned; everything wrong
/// with the contents is in [`Loaded::problems`].
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok(parse(&text)),
        Err(e) => {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            Ok(unreadable(Problem {
                line,
                key: String::new(),
                message: "the file is not UTF-8 text; save it as UTF-8".into(),
                severity: Severity::Error,
            }))
        }
    }
}

type RawSection = BTreeMap<Spanned<String>, Spanned<toml::Value>>;
type RawFile = BTreeMap<Spanned<String>, Spanned<RawSection>>;

/// Parses config text. Never panics, whatever the input.
pub fn parse(text: &str) -> Loaded {
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return unreadable(syntax_problem(text, &e)),
    };
    let mut config = Config::default();
    let mut problems = Vec::new();
    for (section, entries) in &raw {
        let section_line = line_of(text, section.span().start);
        if !keys::is_section(section.get_ref()) {
            problems.push(Problem {
                line: section_line,
                key: section.get_ref().clone(),
                message: format!(
                    "unknown section; the sections are {}",
                    keys::SECTIONS.join(", ")
                ),
                severity: Severity::Unknown,
            });
            continue;
        }
        for (key, value) in entries.get_ref() {
            let name = format!("{}.{}", section.get_ref(), key.get_ref());
            let line = line_of(text, key.span().start);
            match keys::find(&name) {
                None => problems.push(Problem {
                    line,
                    key: name,
                    message: "unknown key; check its spelling against the shipped babymon.toml"
                        .into(),
                    severity: Severity::Unknown,
                }),
                Some(def) => {
                    if let Err(message) = (def.apply)(&mut config, value.get_ref()) {
                        problems.push(Problem {
                            line,
                            key: name,
                            message,
                            severity: Severity::Error,
                        });
                    }
                }
            }
        }
    }
    problems.extend(keys::check_together(&config, |key| {
        raw_key_line(text, &raw, key)
    }));
    problems.sort_by_key(|p| p.line);
    Loaded {
        config,
        problems,
        unreadable: false,
    }
}

fn unreadable(problem: Problem) -> Loaded {
    Loaded {
        config: Config::default(),
        problems: vec![problem],
        unreadable: true,
    }
}

/// A TOML syntax error, or a value outside any section.
fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map_or(0, |s| line_of(text, s.start));
    let message = e.message().trim_end().to_string();
    let message = if message.contains("expected a map") {
        "a key outside any section; put it under its [section]".to_string()
    } else {
        format!("not valid TOML: {message}")
    };
    Problem {
        line,
        key: String::new(),
        message,
        severity: Severity::Error,
    }
}

fn raw_key_line(text: &str, raw: &RawFile, dotted: &str) -> usize {
    let (section, key) = dotted.split_once('.').unwrap_or((dotted, ""));
    raw.iter()
        .find(|(s, _)| s.get_ref() == section)
        .map_or(0, |(s, entries)| {
            entries
                .get_ref()
                .keys()
                .find(|k| k.get_ref() == key)
                .map_or(line_of(text, s.span().start), |k| {
                    line_of(text, k.span().start)
                })
        })
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text.bytes().take(offset).filter(|b| *b == b'\n').count()
}

#[cfg(test)]
mod tests;
