//! What the integration tests share: the loopback-only check, a running
//! `babymon serve` with a config of the test's own, and a small HTTP/1.1
//! client speaking raw bytes over a `TcpStream`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fails unless the test runs where only loopback exists: a browser and ICE
/// offer every address they find, and nothing may leave this machine.
/// `/proc/self/net/dev` lists the interfaces of this process's own network
/// namespace; `/sys/class/net` shows those of whoever mounted `/sys`, which
/// `unshare --net` alone does not change.
pub fn require_loopback_only() {
    let names: Vec<String> = std::fs::read_to_string("/proc/self/net/dev")
        .expect("/proc/self/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    assert!(
        names.iter().all(|n| n == "lo"),
        "this test must run in a loopback-only network namespace, but these interfaces \
         exist: {names:?}; run it through scripts/test or scripts/in-netns cargo test"
    );
}

/// Held by each browser test so that they run one at a time: several
/// Chromiums and encoders at once on a small machine would make the time
/// limits of the tests measure the machine instead of babymon.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh folder under the system's temporary folder.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "babymon-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

/// A small, quick config for tests: the test pattern at 320x240, loopback
/// ICE, and whatever `extra` adds (whole sections, as TOML).
pub fn config(viewer_extra: &str, extra: &str) -> String {
    format!(
        "[camera]\nsource = \"test\"\nwidth = 320\nheight = 240\nframerate = 30\n\
         bitrate_kbps = 500\n\n[viewer]\nice_addresses = [\"127.0.0.1\"]\n{viewer_extra}\n{extra}\n"
    )
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub run_dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `babymon serve` with this config on 127.0.0.1:0 and waits for
    /// its `listening on` line.
    pub fn start(config_text: &str) -> Server {
        Server::start_on(config_text, "127.0.0.1:0")
    }

    /// The same on a given address, such as the port of a server before.
    pub fn start_on(config_text: &str, listen: &str) -> Server {
        let dir = temp_dir("serve");
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let config_path = dir.join("babymon.toml");
        std::fs::write(&config_path, config_text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_babymon"))
            .args(["serve", "--listen", listen, "--config"])
            .arg(&config_path)
            .env("BABYMON_RUN_DIR", &run_dir)
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("babymon serve starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.trim().to_string());
                }
                eprintln!("serve: {line}");
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "babymon serve printed no `listening on` line: {:?}",
                    log.lock().unwrap()
                );
            }
        };
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {addr:?}"));
        assert!(addr.starts_with("127.0.0.1:"), "listening on {addr}");
        assert_ne!(port, 0, "the real port, not 0");
        Server {
            child,
            port,
            dir,
            run_dir,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path, &[], b"")
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until `healthz` answers 200 (the pipeline plays).
    pub fn wait_playing(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let r = self.get("/healthz");
            if r.status == 200 {
                return;
            }
            assert!(
                Instant::now() < until,
                "/healthz still {} after {within:?}: {}",
                r.status,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self, within: Duration) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM to serve");
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("babymon serve did not stop within {within:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a new connection. A `Host` header is added
/// unless `headers` has one (give `("Host", "")` to send none).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to serve");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        if !(k.eq_ignore_ascii_case("host") && v.is_empty()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body, and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "{method} {path}: no response: {e}");
    }
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

/// Runs a node script of `tests/browser` and returns what it printed last
/// on stdout, parsed as JSON. Its stderr goes to the test's output.
pub fn node(script: &str, args: &[&str]) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs (scripts/deps --test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let Some(last) = last else {
        panic!(
            "{script} printed no JSON (exit {:?}): {stdout}",
            out.status.code()
        );
    };
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{script}: {e}: {last}"))
}

/// The folder for screenshots and other things a person may look at after
/// a run (kept out of git).
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
