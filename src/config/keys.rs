//! The table of every key `babymon.toml` knows, each with the code that
//! checks its value and stores it. The shipped file is tested against this
//! table, both ways.

use std::net::IpAddr;

use serde::de::DeserializeOwned;

use super::{Config, Problem, Secret, Severity, Source};

/// One known key: `section.key`, and how to apply a value to the config.
pub struct KeyDef {
    pub name: &'static str,
    pub apply: fn(&mut Config, &toml::Value) -> Result<(), String>,
}

pub const SECTIONS: &[&str] = &[
    "system", "wifi", "tunnel", "camera", "audio", "viewer", "leds",
];

/// Keys whose bad value must keep their service off, never weaken it.
const GUARDS: &[&str] = &[
    "viewer.password",
    "tunnel.token",
    "tunnel.credentials_file",
    "tunnel.tunnel_id",
    "wifi.password",
];

macro_rules! key {
    ($name:literal, |$c:ident, $v:ident| $body:expr) => {
        KeyDef {
            name: $name,
            apply: |$c, value| {
                let $v = value;
                $body
            },
        }
    };
}

pub const KEYS: &[KeyDef] = &[
    key!("system.hostname", |c, v| {
        let name: String = typed(v, "a string")?;
        hostname(&name)?;
        c.system.hostname = name;
        Ok(())
    }),
    key!("system.serial_shell", |c, v| set(
        &mut c.system.serial_shell,
        v,
        "true or false"
    )),
    key!("system.modules", |c, v| {
        let modules: Vec<String> = typed(v, "a list of module names")?;
        if let Some(bad) = modules.iter().find(|m| !is_word(m)) {
            return Err(format!(
                "{bad:?} is not a module name; use names such as \"vivid\""
            ));
        }
        c.system.modules = modules;
        Ok(())
    }),
    key!("system.ntp_servers", |c, v| {
        let servers: Vec<String> = typed(v, "a list of host names")?;
        if let Some(bad) = servers.iter().find(|s| !is_host(s)) {
            return Err(format!("{bad:?} is not a host name or address"));
        }
        c.system.ntp_servers = servers;
        Ok(())
    }),
    key!("wifi.ssid", |c, v| {
        let ssid: String = typed(v, "a string")?;
        if ssid.len() > 32 {
            return Err(format!(
                "{} bytes is too long; a Wi-Fi name has at most 32",
                ssid.len()
            ));
        }
        c.wifi.ssid = ssid;
        Ok(())
    }),
    key!("wifi.password", |c, v| {
        let password: String = typed(v, "a string")?;
        if !password.is_empty() && !(8..=63).contains(&password.len()) {
            return Err(
                "a WPA password has 8 to 63 characters; leave it \"\" for an open network".into(),
            );
        }
        c.wifi.password = Secret::new(password);
        Ok(())
    }),
    key!("wifi.country", |c, v| {
        let country: String = typed(v, "a string")?;
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "{country:?} is not a country code; use two capital letters such as \"GB\" or \"JP\""
            ));
        }
        c.wifi.country = country;
        Ok(())
    }),
    key!("tunnel.token", |c, v| {
        let token: String = typed(v, "a string")?;
        if token.chars().any(|ch| ch.is_whitespace()) {
            return Err(
                "the token has spaces or line breaks; copy it again from the dashboard".into(),
            );
        }
        c.tunnel.token = Secret::new(token);
        Ok(())
    }),
    key!("tunnel.credentials_file", |c, v| {
        let file: String = typed(v, "a string")?;
        if file.contains("..") || file.starts_with('/') && !file.starts_with("/boot/") {
            return Err("name a file on the boot partition, such as \"tunnel.json\"".into());
        }
        c.tunnel.credentials_file = file;
        Ok(())
    }),
    key!("tunnel.tunnel_id", |c, v| set(
        &mut c.tunnel.tunnel_id,
        v,
        "a string"
    )),
    key!("camera.source", |c, v| {
        let s: String = typed(v, "a string")?;
        c.camera.source = match s.as_str() {
            "auto" => Source::Auto,
            "v4l2" => Source::V4l2,
            "libcamera" => Source::Libcamera,
            "test" => Source::Test,
            _ => {
                return Err(format!(
                    "{s:?} is not a source; use \"auto\", \"v4l2\", \"libcamera\" or \"test\""
                ));
            }
        };
        Ok(())
    }),
    key!("camera.device", |c, v| set(
        &mut c.camera.device,
        v,
        "a string such as \"/dev/video0\""
    )),
    key!("camera.width", |c, v| {
        c.camera.width = even_in(v, 160, 1920, "pixels")?;
        Ok(())
    }),
    key!("camera.height", |c, v| {
        c.camera.height = even_in(v, 120, 1080, "pixels")?;
        Ok(())
    }),
    key!("camera.framerate", |c, v| {
        c.camera.framerate = int_in(v, 1, 60, "frames per second")?;
        Ok(())
    }),
    key!("camera.bitrate_kbps", |c, v| {
        c.camera.bitrate_kbps = int_in(v, 100, 20000, "kbit/s")?;
        Ok(())
    }),
    key!("camera.rotation", |c, v| {
        let r: u32 = int_in(v, 0, 270, "degrees")?;
        if !r.is_multiple_of(90) {
            return Err(format!("{r} is not a rotation; use 0, 90, 180 or 270"));
        }
        c.camera.rotation = r;
        Ok(())
    }),
    key!("camera.encoder", |c, v| {
        let e: String = typed(v, "a string")?;
        if !is_word(&e) {
            return Err(format!(
                "{e:?} is not an element name; use \"auto\" or one such as \"x264enc\""
            ));
        }
        c.camera.encoder = e;
        Ok(())
    }),
    key!("audio.enabled", |c, v| set(
        &mut c.audio.enabled,
        v,
        "true or false"
    )),
    key!("audio.device", |c, v| set(
        &mut c.audio.device,
        v,
        "an ALSA device name such as \"hw:1\""
    )),
    key!("viewer.port", |c, v| {
        c.viewer.port = int_in(v, 1, 65535, "a TCP port")?;
        Ok(())
    }),
    key!("viewer.password", |c, v| {
        let password: String = typed(v, "a string")?;
        if !password.is_empty() && password.chars().count() < 4 {
            return Err("use at least 4 characters, or \"\" for no password".into());
        }
        c.viewer.password = Secret::new(password);
        Ok(())
    }),
    key!("viewer.max_viewers", |c, v| {
        c.viewer.max_viewers = int_in(v, 1, 16, "viewers")?;
        Ok(())
    }),
    key!("viewer.ice_ports", |c, v| {
        let s: String = typed(v, "a string such as \"50000-50009\"")?;
        c.viewer.ice_ports = port_range(&s)?;
        Ok(())
    }),
    key!("viewer.ice_addresses", |c, v| {
        let list: Vec<String> = typed(v, "a list of IP addresses")?;
        let mut addresses = Vec::with_capacity(list.len());
        for a in &list {
            match a.parse::<IpAddr>() {
                Ok(ip) => addresses.push(ip),
                Err(_) => return Err(format!("{a:?} is not an IP address")),
            }
        }
        c.viewer.ice_addresses = addresses;
        Ok(())
    }),
    key!("leds.enabled", |c, v| set(
        &mut c.leds.enabled,
        v,
        "true or false"
    )),
    key!("leds.board", |c, v| set(
        &mut c.leds.board,
        v,
        "true or false"
    )),
    key!("leds.red", |c, v| {
        c.leds.red = Some(gpio(v)?);
        Ok(())
    }),
    key!("leds.green", |c, v| {
        c.leds.green = Some(gpio(v)?);
        Ok(())
    }),
    key!("leds.blue", |c, v| {
        c.leds.blue = Some(gpio(v)?);
        Ok(())
    }),
];

pub fn find(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

pub fn is_section(name: &str) -> bool {
    SECTIONS.contains(&name)
}

pub fn is_guard(name: &str) -> bool {
    GUARDS.contains(&name)
}

/// Rules that span several keys. `line` finds the line of a key in the file.
pub(super) fn check_together(c: &Config, line: impl Fn(&str) -> usize) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            line: line(key),
            key: key.into(),
            message,
            severity: Severity::Error,
        })
    };
    let t = &c.tunnel;
    if t.token.is_set() && (!t.credentials_file.is_empty() || !t.tunnel_id.is_empty()) {
        problem(
            "tunnel.token",
            "give a token, or a credentials_file with its tunnel_id, not both".into(),
        );
    }
    if t.credentials_file.is_empty() != t.tunnel_id.is_empty() {
        problem(
            "tunnel.tunnel_id",
            "credentials_file and tunnel_id go together; set both or neither".into(),
        );
    }
    if !c.wifi.is_set() && (c.wifi.password.is_set() || !c.wifi.country.is_empty()) {
        problem(
            "wifi.ssid",
            "a Wi-Fi password or country is set but no ssid; add the network's name".into(),
        );
    }
    let pins = [
        ("leds.red", c.leds.red),
        ("leds.green", c.leds.green),
        ("leds.blue", c.leds.blue),
    ];
    for (i, (name, pin)) in pins.iter().enumerate() {
        if let Some(pin) = pin
            && pins[..i].iter().any(|(_, other)| other == &Some(*pin))
        {
            problem(
                name,
                format!("GPIO {pin} is used by another LED; give each LED its own pin"),
            );
        }
    }
    problems
}

fn typed<T: DeserializeOwned>(v: &toml::Value, what: &str) -> Result<T, String> {
    v.clone()
        .try_into()
        .map_err(|_| format!("{} is not {what}", short(v)))
}

fn set<T: DeserializeOwned>(slot: &mut T, v: &toml::Value, what: &str) -> Result<(), String> {
    *slot = typed(v, what)?;
    Ok(())
}

fn int_in<T: TryFrom<i64>>(v: &toml::Value, min: i64, max: i64, unit: &str) -> Result<T, String> {
    let n = v
        .as_integer()
        .ok_or_else(|| format!("{} is not a whole number of {unit}", short(v)))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{n} is out of range; use {min} to {max} {unit}"));
    }
    T::try_from(n).map_err(|_| format!("{n} is out of range"))
}

fn even_in(v: &toml::Value, min: i64, max: i64, unit: &str) -> Result<u32, String> {
    let n: u32 = int_in(v, min, max, unit)?;
    if !n.is_multiple_of(2) {
        return Err(format!("{n} is odd; the encoder needs an even number"));
    }
    Ok(n)
}

fn gpio(v: &toml::Value) -> Result<u8, String> {
    int_in(v, 2, 27, "(a BCM GPIO number)")
}

fn port_range(s: &str) -> Result<Option<(u16, u16)>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || format!("{s:?} is not a port range; write it as \"50000-50009\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    if b - a < 1 {
        return Err(format!(
            "{s:?} is one port; give at least two (ICE uses UDP and TCP)"
        ));
    }
    Ok(Some((a, b)))
}

fn hostname(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a host name; use letters, digits and '-' (at most 63)"
        ))
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
}

/// A value shown in an error message, cut short (and never a secret: the
/// value of a guarded key is only ever checked for its type here).
fn short(v: &toml::Value) -> String {
    let text = match v {
        toml::Value::String(_) => "a string".to_string(),
        toml::Value::Array(_) => "a list".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
        other => other.to_string(),
    };
    text.chars().take(40).collect()
}
