//! The `Host` header check that keeps a web page elsewhere from reaching the
//! monitor by DNS rebinding: only an IP literal or this device's own names
//! are served. Pure; the middleware in [`super`] applies it.

use std::net::{IpAddr, Ipv6Addr};

/// Whether a request with this `Host` header may be served by a device
/// called `hostname`. The error is the reason, sent back in the 403 body.
pub fn check(host: Option<&str>, hostname: &str) -> Result<(), String> {
    let Some(host) = host else {
        return Err("the request has no Host header".into());
    };
    let name = strip_port(host).ok_or_else(|| format!("Host {host:?} is not a host name"))?;
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let hostname = hostname.to_ascii_lowercase();
    if name == "localhost" || name == hostname || name == format!("{hostname}.local") {
        return Ok(());
    }
    Err(format!(
        "Host {host:?} is not this device: open it by its IP address, \
         {hostname}.local or localhost"
    ))
}

/// The host part of a `Host` value: `name`, `name:port`, `[v6]` or
/// `[v6]:port`. `None` when the port is not a number or brackets are broken.
fn strip_port(host: &str) -> Option<&str> {
    if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some(inside),
            port => port
                .strip_prefix(':')
                .filter(|p| is_port(p))
                .map(|_| inside),
        };
    }
    match host.split_once(':') {
        None => (!host.is_empty()).then_some(host),
        Some((name, port)) if !port.contains(':') => {
            (is_port(port) && !name.is_empty()).then_some(name)
        }
        // Several colons without brackets: only a bare IPv6 literal fits.
        Some(_) => host.parse::<Ipv6Addr>().ok().map(|_| host),
    }
}

fn is_port(port: &str) -> bool {
    port.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn ip_literals_pass() {
        for host in [
            "127.0.0.1",
            "192.168.1.20:8080",
            "[::1]",
            "[fe80::1]:8080",
            "::1",
        ] {
            assert_eq!(check(Some(host), "babymon"), Ok(()), "{host}");
        }
    }

    #[test]
    fn own_names_pass_in_any_case() {
        for host in [
            "babymon",
            "babymon:8080",
            "BabyMon.local",
            "babymon.local.:8080",
            "localhost:1234",
        ] {
            assert_eq!(check(Some(host), "babymon"), Ok(()), "{host}");
        }
        assert_eq!(check(Some("nursery.local"), "Nursery"), Ok(()));
    }

    #[test]
    fn other_names_are_refused_with_a_reason() {
        for host in [
            "evil.example",
            "babymon.evil.example",
            "evil.example:8080",
            "localhost.evil",
            "127.0.0.1.nip.io",
            "",
            ":8080",
            "babymon:http",
            "[::1",
            "[nothost]:80",
        ] {
            let err = check(Some(host), "babymon").unwrap_err();
            assert!(!err.is_empty(), "{host}");
        }
        assert!(check(None, "babymon").unwrap_err().contains("no Host"));
    }
}
