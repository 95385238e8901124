//! Health probes: a tiny HTTP/1.0 GET over loopback with timeouts, judged
//! by the status code alone (`/healthz` of `serve`, `/ready` of
//! cloudflared's metrics server).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Where to probe: `127.0.0.1:8080/healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub addr: SocketAddr,
    pub path: String,
}

impl Probe {
    /// Parses `ADDR:PORT/PATH`.
    pub fn parse(text: &str) -> Option<Probe> {
        let (addr, path) = text.split_once('/').unwrap_or((text, ""));
        Some(Probe {
            addr: addr.parse().ok()?,
            path: format!("/{path}"),
        })
    }

    /// True when the answer is a 2xx status, within `timeout` for each of
    /// connecting, writing and reading.
    pub fn check(&self, timeout: Duration) -> bool {
        self.status(timeout).is_ok_and(|s| (200..300).contains(&s))
    }

    pub fn status(&self, timeout: Duration) -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&self.addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.addr
        );
        s.write_all(request.as_bytes())?;
        let mut buf = [0u8; 64];
        let mut len = 0;
        while len < buf.len() {
            let n = s.read(buf.get_mut(len..).unwrap_or(&mut []))?;
            if n == 0 {
                break;
            }
            len += n;
            if buf.get(..len).is_some_and(|b| b.contains(&b'\n')) {
                break;
            }
        }
        status_code(buf.get(..len).unwrap_or(&[])).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer")
        })
    }
}

/// The code of an HTTP status line (`HTTP/1.1 200 OK`).
pub fn status_code(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let line = text.lines().next()?;
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code: u16 = words.next()?.parse().ok()?;
    (100..600).contains(&code).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 99999\r\n"), None);
        assert_eq!(status_code(b"\xff\xfe"), None);
        assert_eq!(
            Probe::parse("127.0.0.1:20241/ready"),
            Some(Probe {
                addr: "127.0.0.1:20241".parse().unwrap(),
                path: "/ready".into()
            })
        );
        assert_eq!(Probe::parse("nonsense/x"), None);
    }

    fn serve_once(answer: &'static [u8]) -> (Probe, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 256];
            let n = s.read(&mut req).unwrap();
            if !answer.is_empty() {
                s.write_all(answer).unwrap();
            } else {
                std::thread::sleep(Duration::from_millis(800));
            }
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        let probe = Probe {
            addr,
            path: "/healthz".into(),
        };
        (probe, h)
    }

    #[test]
    fn probes_a_real_socket() {
        let (p, h) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(p.check(Duration::from_secs(2)));
        assert!(h.join().unwrap().starts_with("GET /healthz HTTP/1.0\r\n"));
        let (p, h) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(p.status(Duration::from_secs(2)).unwrap(), 503);
        assert!(!p.check(Duration::from_secs(2)));
        h.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out() {
        let (p, h) = serve_once(b"");
        let start = std::time::Instant::now();
        assert!(!p.check(Duration::from_millis(200)));
        assert!(start.elapsed() < Duration::from_millis(700));
        h.join().unwrap();
    }

    #[test]
    fn nobody_listening_is_unhealthy() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = Probe {
            addr,
            path: "/ready".into(),
        };
        assert!(!p.check(Duration::from_millis(300)));
    }
}
