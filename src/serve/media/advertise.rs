//! `[viewer] ice_addresses` that are not this machine's own: addresses that
//! forward to it port for port (a VM behind QEMU's `hostfwd`, a NAT with 1:1
//! port forwarding). libnice cannot bind them, so they are not given to the
//! ICE agent; instead every usable host candidate of the answer gets a twin
//! with the forwarded address and the same port. Pure text handling, apart
//! from `is_local`, which asks the kernel.

use std::net::{IpAddr, UdpSocket};

/// The `ice_addresses` split in two: those to bind libnice to (loopback and
/// this machine's own) and those to advertise only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub bound: Vec<IpAddr>,
    pub advertised: Vec<IpAddr>,
}

/// Splits `addresses` with `is_local` deciding which ones this machine has.
pub fn split(addresses: &[IpAddr], is_local: impl Fn(IpAddr) -> bool) -> Addresses {
    let mut out = Addresses::default();
    for &a in addresses {
        if a.is_loopback() || is_local(a) {
            out.bound.push(a);
        } else {
            out.advertised.push(a);
        }
    }
    out
}

/// True when a socket can be bound to `address`: it is one of this
/// machine's addresses now.
pub fn is_local(address: IpAddr) -> bool {
    UdpSocket::bind((address, 0)).is_ok()
}

/// Adds, after each host candidate of `sdp` that a peer can reach (UDP, or
/// TCP with `tcptype passive`), one candidate per address of `advertised`
/// of the same family, with the same port, a foundation of its own and a
/// slightly lower priority. Candidates already on such an address, active
/// TCP ones (port 9, they only connect out) and other types are left alone.
pub fn with_advertised_candidates(sdp: &str, advertised: &[IpAddr]) -> String {
    if advertised.is_empty() {
        return sdp.to_string();
    }
    let mut out = String::with_capacity(sdp.len() * 2);
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        let bare = line.trim_end();
        let eol = &line[bare.len()..];
        let Some(c) = Candidate::parse(bare) else {
            continue;
        };
        if !c.forwardable() {
            continue;
        }
        for (i, &address) in advertised.iter().enumerate() {
            if address.is_ipv4() != c.address.is_ipv4() || address == c.address {
                continue;
            }
            out.push_str(&c.twin(address, i));
            out.push_str(if eol.is_empty() { "\r\n" } else { eol });
        }
    }
    out
}

/// The fields of an `a=candidate` line that matter here.
struct Candidate<'a> {
    foundation: &'a str,
    component: &'a str,
    transport: &'a str,
    priority: u32,
    address: IpAddr,
    port: u16,
    kind: &'a str,
    /// Everything after `typ <kind>` (`tcptype`, `generation`, ...).
    rest: Vec<&'a str>,
}

impl<'a> Candidate<'a> {
    fn parse(line: &'a str) -> Option<Candidate<'a>> {
        let body = line.strip_prefix("a=candidate:")?;
        let f: Vec<&str> = body.split_whitespace().collect();
        if f.len() < 8 || f[6] != "typ" {
            return None;
        }
        Some(Candidate {
            foundation: f[0],
            component: f[1],
            transport: f[2],
            priority: f[3].parse().ok()?,
            address: f[4].parse().ok()?,
            port: f[5].parse().ok()?,
            kind: f[7],
            rest: f[8..].to_vec(),
        })
    }

    fn tcptype(&self) -> Option<&str> {
        let at = self.rest.iter().position(|w| *w == "tcptype")?;
        self.rest.get(at + 1).copied()
    }

    /// A host candidate that a peer sends to or connects to.
    fn forwardable(&self) -> bool {
        if self.kind != "host" || self.port == 0 || self.port == 9 {
            return false;
        }
        if self.transport.eq_ignore_ascii_case("udp") {
            return true;
        }
        self.transport.eq_ignore_ascii_case("tcp") && self.tcptype() == Some("passive")
    }

    /// The same candidate on `address`. Its local preference (bits 8-23 of
    /// the priority) is one lower per place in the list, so that the real
    /// candidate keeps its rank and no two priorities are equal.
    fn twin(&self, address: IpAddr, index: usize) -> String {
        let local = (self.priority >> 8) & 0xffff;
        let drop = u32::try_from(index).map_or(0xffff, |i| i.saturating_add(1));
        let priority =
            (self.priority & 0xff00_00ff) | (local.saturating_sub(drop).min(0xffff) << 8);
        let mut s = format!(
            "a=candidate:{}f{} {} {} {} {} {} typ {}",
            self.foundation,
            index + 1,
            self.component,
            self.transport,
            priority,
            address,
            self.port,
            self.kind
        );
        for w in &self.rest {
            s.push(' ');
            s.push_str(w);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 108\r\n\
a=candidate:1 1 UDP 2015363327 10.0.2.15 50000 typ host\r\n\
a=candidate:2 1 TCP 1015021823 10.0.2.15 9 typ host tcptype active\r\n\
a=candidate:3 1 TCP 1010827519 10.0.2.15 50001 typ host tcptype passive\r\n\
a=candidate:4 1 UDP 1677732095 192.0.2.7 50002 typ srflx raddr 10.0.2.15 rport 50000\r\n\
a=candidate:5 1 UDP 2015363583 fd00::15 50003 typ host\r\n\
a=end-of-candidates\r\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn candidates(sdp: &str) -> Vec<&str> {
        sdp.lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect()
    }

    #[test]
    fn udp_and_passive_tcp_host_candidates_get_a_twin() {
        let out = with_advertised_candidates(ANSWER, &[ip("10.203.1.1")]);
        let c = candidates(&out);
        assert_eq!(c.len(), 7, "{out}");
        assert_eq!(
            c[1],
            "a=candidate:1f1 1 UDP 2015363071 10.203.1.1 50000 typ host"
        );
        assert_eq!(
            c[4],
            "a=candidate:3f1 1 TCP 1010827263 10.203.1.1 50001 typ host tcptype passive"
        );
        // Active TCP, server-reflexive and IPv6 candidates get none.
        assert!(!out.contains("10.203.1.1 9 "));
        assert!(!out.contains("10.203.1.1 50002"));
        assert!(!out.contains("10.203.1.1 50003"));
        // The twin keeps the line ending and the rest of the SDP is intact.
        assert!(out.ends_with("a=end-of-candidates\r\n"));
        assert!(!out.replace("\r\n", "").contains('\n'));
        assert!(out.starts_with("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 108\r\n"));
    }

    #[test]
    fn each_family_gets_its_own_addresses() {
        let out = with_advertised_candidates(ANSWER, &[ip("2001:db8::1"), ip("10.203.1.1")]);
        assert!(out.contains("a=candidate:5f1 1 UDP 2015363327 2001:db8::1 50003 typ host\r\n"));
        assert!(out.contains("a=candidate:1f2 1 UDP 2015362815 10.203.1.1 50000 typ host\r\n"));
        assert!(!out.contains("2001:db8::1 50000"));
        assert_eq!(candidates(&out).len(), 8);
    }

    #[test]
    fn priorities_stay_distinct_and_below_the_real_candidate() {
        let out = with_advertised_candidates(ANSWER, &[ip("10.203.1.1"), ip("10.203.1.9")]);
        let priorities: Vec<u32> = candidates(&out)
            .iter()
            .map(|l| l.split_whitespace().nth(3).unwrap().parse().unwrap())
            .collect();
        let mut unique = priorities.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), priorities.len(), "{priorities:?}");
        assert!(priorities[0] > priorities[1] && priorities[1] > priorities[2]);
        // The type preference (top byte) and component (low byte) are kept.
        assert_eq!(priorities[1] >> 24, priorities[0] >> 24);
        assert_eq!(priorities[1] & 0xff, priorities[0] & 0xff);
    }

    #[test]
    fn no_twin_on_the_address_a_candidate_already_has() {
        let out = with_advertised_candidates(ANSWER, &[ip("10.0.2.15")]);
        assert_eq!(out, ANSWER);
    }

    #[test]
    fn nothing_advertised_leaves_the_answer_alone() {
        assert_eq!(with_advertised_candidates(ANSWER, &[]), ANSWER);
        let lf = ANSWER.replace("\r\n", "\n");
        let out = with_advertised_candidates(&lf, &[ip("10.203.1.1")]);
        assert!(out.contains("\na=candidate:1f1 1 UDP 2015363071 10.203.1.1 50000 typ host\n"));
        assert!(!out.contains('\r'));
    }

    #[test]
    fn zero_local_preference_stays_in_range() {
        let sdp = "a=candidate:7 1 UDP 2113929471 10.0.0.1 5000 typ host\r\n";
        let out = with_advertised_candidates(sdp, &[ip("10.9.9.9")]);
        assert!(out.contains("a=candidate:7f1 1 UDP 2113929471 10.9.9.9 5000 typ host"));
    }

    #[test]
    fn loopback_and_local_addresses_are_bound_the_rest_advertised() {
        let list = [
            ip("127.0.0.1"),
            ip("10.0.2.15"),
            ip("10.203.1.1"),
            ip("::1"),
        ];
        let a = split(&list, |a| a == ip("10.0.2.15"));
        assert_eq!(a.bound, vec![ip("127.0.0.1"), ip("10.0.2.15"), ip("::1")]);
        assert_eq!(a.advertised, vec![ip("10.203.1.1")]);
    }

    #[test]
    fn the_kernel_knows_loopback_and_not_a_documentation_address() {
        assert!(is_local(ip("127.0.0.1")));
        assert!(!is_local(ip("192.0.2.99")));
    }
}
