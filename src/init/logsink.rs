//! Where init's log goes: the console (or stderr until it is open) and the
//! kernel log (`/dev/kmsg`, one record per line with its priority). The
//! lines come from `simplelog`; this module only routes them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use simplelog::{ConfigBuilder, LevelFilter, WriteLogger};

struct Sinks {
    console: Option<File>,
    kmsg: Option<File>,
    /// The kernel echoes kmsg to the console itself (`printk.devkmsg=on`
    /// lets every line through), so init does not write the console too.
    kmsg_only: bool,
    line: Vec<u8>,
}

static SINKS: Mutex<Sinks> = Mutex::new(Sinks {
    console: None,
    kmsg: None,
    kmsg_only: false,
    line: Vec::new(),
});

/// Longest line kept; the rest of a longer one is dropped.
const MAX_LINE: usize = 900;

fn sinks() -> std::sync::MutexGuard<'static, Sinks> {
    SINKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Installs the logger. Until [`open_devices`] runs, lines go to stderr.
pub fn init() {
    let config = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .build();
    let _ = WriteLogger::init(LevelFilter::Info, config, Writer);
}

/// Opens `dev/console` and `dev/kmsg` under `root` once `/dev` is there.
/// The console is written without blocking: a stalled serial line drops
/// log lines rather than stopping init.
pub fn open_devices(root: &Path) {
    let open = |name: &str| {
        OpenOptions::new()
            .write(true)
            .custom_flags_cloexec()
            .open(root.join(name))
            .ok()
    };
    let cmdline = std::fs::read_to_string(root.join("proc/cmdline")).unwrap_or_default();
    let mut s = sinks();
    s.console = open("dev/console");
    s.kmsg = open("dev/kmsg");
    s.kmsg_only = s.kmsg.is_some() && devkmsg_on(&cmdline);
}

/// True when the kernel command line lifts the `/dev/kmsg` rate limit.
fn devkmsg_on(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == "printk.devkmsg=on")
}

trait CloExec {
    fn custom_flags_cloexec(&mut self) -> &mut Self;
}

impl CloExec for OpenOptions {
    fn custom_flags_cloexec(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(nix::libc::O_CLOEXEC | nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
    }
}

/// The kernel log priority of a simplelog line (`[WARN] ...`).
fn priority(line: &str) -> u8 {
    match line.get(..7) {
        Some(s) if s.starts_with("[ERROR]") => 3,
        Some(s) if s.starts_with("[WARN]") => 4,
        Some(s) if s.starts_with("[DEBUG]") || s.starts_with("[TRACE]") => 7,
        _ => 6,
    }
}

fn emit(s: &mut Sinks, raw: &[u8]) {
    let text = String::from_utf8_lossy(raw);
    let line = format!("babymon-init: {text}\n");
    match s.console.as_mut() {
        _ if s.kmsg_only => {}
        Some(c) => {
            let _ = c.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
    if let Some(k) = s.kmsg.as_mut() {
        let _ = k.write_all(format!("<{}>{line}", priority(&text)).as_bytes());
    }
}

struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = sinks();
        for &b in buf {
            if b == b'\n' {
                let line = std::mem::take(&mut s.line);
                emit(&mut s, &line);
            } else if s.line.len() < MAX_LINE {
                s.line.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a message straight to the console, for the few things a person at
/// the console must see even if logging is broken (the reason of a failure).
pub fn console(message: &str) {
    let mut s = sinks();
    emit(&mut s, message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devkmsg() {
        assert!(devkmsg_on("console=ttyS0 printk.devkmsg=on quiet"));
        assert!(!devkmsg_on("console=ttyS0 printk.devkmsg=ratelimit"));
    }

    #[test]
    fn priorities() {
        assert_eq!(priority("[ERROR] mounts: /proc: EPERM"), 3);
        assert_eq!(priority("[WARN] x"), 4);
        assert_eq!(priority("[INFO] x"), 6);
        assert_eq!(priority(""), 6);
    }
}
