//! Machine settings at boot (hostname, loopback, the socket buffer sysctls
//! cloudflared's QUIC wants, Ctrl-Alt-Del handed to init) and the facts
//! init reads back for status (links, addresses, Wi-Fi signal, SoC
//! temperature).

use std::net::IpAddr;
use std::path::Path;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

use crate::statefile::LinkAddress;

/// cloudflared's QUIC stack asks for about 7 MiB of UDP buffer.
const UDP_BUFFER: u64 = 7_500_000;

pub fn set_hostname(name: &str) {
    match nix::unistd::sethostname(name) {
        Ok(()) => log::info!("hostname: {name}"),
        Err(e) => log::warn!("hostname {name}: {e}"),
    }
}

/// Raises `net.core.rmem_max` and `wmem_max` to at least 7.5 MB.
pub fn socket_buffers(proc_dir: &Path) {
    for key in ["rmem_max", "wmem_max"] {
        let path = proc_dir.join("sys/net/core").join(key);
        let now: u64 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if now >= UDP_BUFFER {
            continue;
        }
        match std::fs::write(&path, UDP_BUFFER.to_string()) {
            Ok(()) => log::info!("net.core.{key}: {now} -> {UDP_BUFFER}"),
            Err(e) => log::warn!("net.core.{key}: {}: {e}", path.display()),
        }
    }
}

/// After this the kernel sends init SIGINT on Ctrl-Alt-Del instead of
/// rebooting at once.
pub fn cad_to_init() {
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        log::warn!("ctrl-alt-del: cannot hand it to init: {e}");
    }
}

/// Brings `lo` up.
pub fn loopback_up() {
    let result = (|| -> nix::Result<()> {
        let sock = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        // SAFETY: ifreq is plain data; the ioctls read and write only it.
        unsafe {
            use std::os::fd::AsRawFd;
            let mut req: nix::libc::ifreq = std::mem::zeroed();
            for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *dst = *src as nix::libc::c_char;
            }
            if nix::libc::ioctl(sock.as_raw_fd(), nix::libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(nix::errno::Errno::last());
            }
            req.ifr_ifru.ifru_flags |= nix::libc::IFF_UP as nix::libc::c_short;
            if nix::libc::ioctl(sock.as_raw_fd(), nix::libc::SIOCSIFFLAGS, &req) < 0 {
                return Err(nix::errno::Errno::last());
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => log::info!("lo: up"),
        Err(e) => log::warn!("lo: {e}"),
    }
}

/// Network interfaces other than loopback whose link is up.
pub fn links_up(sys: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys.join("class/net")) else {
        return Vec::new();
    };
    let mut up: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .filter(|n| {
            std::fs::read_to_string(sys.join("class/net").join(n).join("operstate"))
                .is_ok_and(|s| s.trim() == "up")
        })
        .collect();
    up.sort();
    up
}

/// Interfaces by kind: (Ethernet, wireless), each sorted.
pub fn interfaces(sys: &Path) -> (Vec<String>, Vec<String>) {
    let mut eth = Vec::new();
    let mut wifi = Vec::new();
    if let Ok(entries) = std::fs::read_dir(sys.join("class/net")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().join("wireless").exists() || name.starts_with("wl") {
                wifi.push(name);
            } else if name.starts_with("eth") || name.starts_with("en") {
                eth.push(name);
            }
        }
    }
    eth.sort();
    wifi.sort();
    (eth, wifi)
}

/// The addresses a phone could reach this device on, by interface, as the
/// kernel has them now. Empty when they cannot be read.
pub fn addresses() -> Vec<LinkAddress> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found: Vec<LinkAddress> = all
        .filter_map(|ifa| {
            let storage = ifa.address?;
            let ip = match (storage.as_sockaddr_in(), storage.as_sockaddr_in6()) {
                (Some(v4), _) => IpAddr::V4(v4.ip()),
                (_, Some(v6)) => IpAddr::V6(v6.ip()),
                _ => return None,
            };
            reachable(ip).then(|| LinkAddress {
                interface: ifa.interface_name,
                address: ip.to_string(),
            })
        })
        .collect();
    found.sort_by(|a, b| (&a.interface, &a.address).cmp(&(&b.interface, &b.address)));
    found.dedup();
    found
}

/// Whether a phone elsewhere on the network could use `ip`: not loopback,
/// unspecified, multicast, or IPv6 link-local (which needs a scope).
pub fn reachable(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(_) => true,
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// The signal level of `iface` from `/proc/net/wireless` text, in dBm.
pub fn wifi_signal(proc_net_wireless: &str, iface: &str) -> Option<i32> {
    proc_net_wireless.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != iface {
            return None;
        }
        let level = rest.split_whitespace().nth(2)?;
        level
            .trim_end_matches('.')
            .parse::<f32>()
            .ok()
            .map(|l| l as i32)
    })
}

/// The SoC temperature in degrees Celsius.
pub fn temperature(sys: &Path) -> Option<f32> {
    let text = std::fs::read_to_string(sys.join("class/thermal/thermal_zone0/temp")).ok()?;
    let milli: f32 = text.trim().parse().ok()?;
    Some(milli / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_a_phone_can_open_are_shown() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for shown in ["192.168.1.23", "10.0.2.15", "2001:db8::5", "fd00::1"] {
            assert!(reachable(ip(shown)), "{shown}");
        }
        for hidden in [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "::",
            "fe80::1",
            "febf::1",
            "224.0.0.1",
        ] {
            assert!(!reachable(ip(hidden)), "{hidden}");
        }
    }

    #[test]
    fn wifi_signal_from_proc() {
        let text = "Inter-| sta-|   Quality        |   Discarded packets\n \
                    face | tus | link level noise |  nwid  crypt\n \
                    wlan0: 0000   54.  -56.  -256        0      0\n";
        assert_eq!(wifi_signal(text, "wlan0"), Some(-56));
        assert_eq!(wifi_signal(text, "wlan1"), None);
        assert_eq!(wifi_signal("garbage", "wlan0"), None);
    }

    #[test]
    fn fake_sys_net() {
        let sys = std::env::temp_dir().join(format!("babymon-net-{}", std::process::id()));
        for (n, state) in [("lo", "unknown"), ("eth0", "down"), ("wlan0", "up")] {
            std::fs::create_dir_all(sys.join("class/net").join(n)).unwrap();
            std::fs::write(sys.join("class/net").join(n).join("operstate"), state).unwrap();
        }
        std::fs::create_dir_all(sys.join("class/net/wlan0/wireless")).unwrap();
        assert_eq!(links_up(&sys), vec!["wlan0"]);
        assert_eq!(
            interfaces(&sys),
            (vec!["eth0".into()], vec!["wlan0".into()])
        );
        std::fs::remove_dir_all(&sys).unwrap();
    }
}
