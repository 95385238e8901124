//! The pure side of viewer sessions: when a session must end by itself
//! (ICE or DTLS failed, never connected, the viewer went silent), how its
//! selected candidate pair reads as transport and path, and session ids.

use std::net::IpAddr;
use std::time::Duration;

/// How long a viewer may take from the answer to a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connected viewer may send nothing (no RTCP, no DTLS) before
/// its place is freed. Browsers send RTCP reports every second or so.
pub const SILENCE_TIMEOUT: Duration = Duration::from_secs(12);

/// What webrtcbin says about the connection, reduced to what matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    Failed,
    Closed,
}

impl Link {
    pub fn word(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Connected => "connected",
            Link::Failed | Link::Closed => "failed",
        }
    }
}

/// Decides whether a session lives on. `age` is the time since the answer,
/// `silent` the time since the viewer's last packet (`None` if it never
/// sent one). `Some(reason)` means: end it.
pub fn verdict(link: Link, age: Duration, silent: Option<Duration>) -> Option<String> {
    match link {
        Link::Failed => Some("ICE or DTLS failed".into()),
        Link::Closed => Some("connection closed".into()),
        Link::Connecting if age >= CONNECT_TIMEOUT => {
            Some(format!("not connected after {}s", age.as_secs()))
        }
        Link::Connecting => None,
        Link::Connected => match silent {
            Some(s) if s >= SILENCE_TIMEOUT => Some(format!("silent for {}s", s.as_secs())),
            None if age >= SILENCE_TIMEOUT => {
                Some(format!("nothing received in {}s", age.as_secs()))
            }
            _ => None,
        },
    }
}

/// "tunnel" when the remote side of the selected pair is one of this
/// machine's own addresses (cloudflared re-originates the viewer's flows
/// from the machine itself), "lan" otherwise.
pub fn path(remote: IpAddr, own: &[IpAddr]) -> &'static str {
    let remote = canonical(remote);
    if remote.is_loopback() || own.iter().any(|a| canonical(*a) == remote) {
        "tunnel"
    } else {
        "lan"
    }
}

/// "udp" or "tcp" from a candidate's protocol ("UDP", "tcp", "TCP-PASSIVE").
pub fn transport(protocol: &str) -> &'static str {
    if protocol.to_ascii_lowercase().starts_with("tcp") {
        "tcp"
    } else {
        "udp"
    }
}

fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// This machine's own addresses, from its interfaces.
pub fn own_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|ifa| {
            let a = ifa.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// A new session id: 128 random bits in hex.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        // Unique is enough when the kernel cannot give randomness: the ids
        // are not secrets (the password guards the session URLs).
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = now.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn failures_end_at_once() {
        assert!(verdict(Link::Failed, S(1), None).is_some());
        assert!(verdict(Link::Closed, S(1), Some(S(0))).is_some());
    }

    #[test]
    fn connecting_too_long_ends() {
        assert_eq!(verdict(Link::Connecting, S(5), None), None);
        assert!(
            verdict(Link::Connecting, CONNECT_TIMEOUT, None)
                .unwrap()
                .contains("not connected")
        );
    }

    #[test]
    fn silence_ends_a_connected_viewer() {
        assert_eq!(verdict(Link::Connected, S(100), Some(S(1))), None);
        assert!(
            verdict(Link::Connected, S(100), Some(S(13)))
                .unwrap()
                .contains("silent")
        );
        assert_eq!(verdict(Link::Connected, S(3), None), None);
        assert!(verdict(Link::Connected, S(30), None).is_some());
    }

    #[test]
    fn paths() {
        let own: Vec<IpAddr> = vec!["192.168.1.20".parse().unwrap(), "fe80::1".parse().unwrap()];
        assert_eq!(path("192.168.1.20".parse().unwrap(), &own), "tunnel");
        assert_eq!(path("::ffff:192.168.1.20".parse().unwrap(), &own), "tunnel");
        assert_eq!(path("127.0.0.1".parse().unwrap(), &own), "tunnel");
        assert_eq!(path("192.168.1.33".parse().unwrap(), &own), "lan");
        assert_eq!(path("fe80::2".parse().unwrap(), &own), "lan");
    }

    #[test]
    fn transports() {
        assert_eq!(transport("UDP"), "udp");
        assert_eq!(transport("tcp"), "tcp");
        assert_eq!(transport("TCP-PASSIVE"), "tcp");
    }

    #[test]
    fn ids_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
