//! The power button: `/dev/input/event*` devices read without blocking, and
//! a parser that finds a `KEY_POWER` press in their raw events (the Pi 5
//! button, a `gpio-shutdown` button, QEMU's `system_powerdown`).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const EV_KEY: u16 = 1;
pub const KEY_POWER: u16 = 116;

/// `struct input_event` on this machine: a `timeval`, type, code, value.
pub const EVENT_SIZE: usize = std::mem::size_of::<nix::libc::input_event>();
const TIME_SIZE: usize = std::mem::size_of::<nix::libc::timeval>();

/// True when `buf` (whole events of `size` bytes) holds a `KEY_POWER` press.
/// A trailing partial event is ignored.
pub fn power_pressed(buf: &[u8], size: usize) -> bool {
    if size < TIME_SIZE + 8 {
        return false;
    }
    buf.chunks_exact(size).any(|ev| {
        let ty = ev
            .get(TIME_SIZE..TIME_SIZE + 2)
            .and_then(|b| b.try_into().ok());
        let code = ev
            .get(TIME_SIZE + 2..TIME_SIZE + 4)
            .and_then(|b| b.try_into().ok());
        let value = ev
            .get(TIME_SIZE + 4..TIME_SIZE + 8)
            .and_then(|b| b.try_into().ok());
        ty.map(u16::from_ne_bytes) == Some(EV_KEY)
            && code.map(u16::from_ne_bytes) == Some(KEY_POWER)
            && value.map(i32::from_ne_bytes) == Some(1)
    })
}

/// The input devices that are open.
#[derive(Default)]
pub struct Inputs {
    pub devices: Vec<(String, File)>,
}

impl Inputs {
    /// Opens every `event*` under `dir` not already open.
    pub fn scan(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("event") || self.devices.iter().any(|(n, _)| *n == name) {
                continue;
            }
            match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
                .open(entry.path())
            {
                Ok(f) => {
                    log::info!("input {name}: listening for the power key");
                    self.devices.push((name, f));
                }
                Err(e) => log::warn!("input {}: {e}", entry.path().display()),
            }
        }
    }

    /// Reads what the device at `index` has; true on a power key press.
    /// A device that fails (unplugged) is closed.
    pub fn read(&mut self, index: usize) -> bool {
        let mut buf = [0u8; EVENT_SIZE * 32];
        let Some((name, file)) = self.devices.get_mut(index) else {
            return false;
        };
        match file.read(&mut buf) {
            Ok(n) if n > 0 => power_pressed(buf.get(..n).unwrap_or(&[]), EVENT_SIZE),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            other => {
                log::info!("input {name}: closed ({other:?})");
                self.devices.remove(index);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ty: u16, code: u16, value: i32) -> Vec<u8> {
        let mut e = vec![0u8; TIME_SIZE];
        e.extend_from_slice(&ty.to_ne_bytes());
        e.extend_from_slice(&code.to_ne_bytes());
        e.extend_from_slice(&value.to_ne_bytes());
        assert_eq!(e.len(), EVENT_SIZE);
        e
    }

    #[test]
    fn finds_press_among_other_events() {
        let mut buf = event(0, 0, 0); // EV_SYN
        buf.extend(event(EV_KEY, 30, 1)); // KEY_A
        assert!(!power_pressed(&buf, EVENT_SIZE));
        buf.extend(event(EV_KEY, KEY_POWER, 0)); // release only
        assert!(!power_pressed(&buf, EVENT_SIZE));
        buf.extend(event(EV_KEY, KEY_POWER, 1));
        assert!(power_pressed(&buf, EVENT_SIZE));
    }

    #[test]
    fn partial_and_odd_input_is_harmless() {
        let e = event(EV_KEY, KEY_POWER, 1);
        assert!(!power_pressed(&e[..EVENT_SIZE - 1], EVENT_SIZE));
        assert!(!power_pressed(&e, 3));
        assert!(!power_pressed(&[], EVENT_SIZE));
        // Repeat (value 2) is not a new press.
        assert!(!power_pressed(&event(EV_KEY, KEY_POWER, 2), EVENT_SIZE));
    }
}
