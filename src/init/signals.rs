//! Signals: all of those init acts on are blocked and read from one
//! signalfd in the main loop; what each means is decided here.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What a signal (or the power key) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    Reboot,
    Off,
    Halt,
}

impl Power {
    pub fn name(self) -> &'static str {
        match self {
            Power::Reboot => "reboot",
            Power::Off => "power off",
            Power::Halt => "halt",
        }
    }
}

const HANDLED: [Signal; 6] = [
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGHUP,
];

/// SIGTERM reboots, SIGUSR2 powers off, SIGUSR1 halts (as busybox's
/// `reboot`, `poweroff` and `halt` send them), SIGINT (Ctrl-Alt-Del) reboots.
pub fn power_for(sig: i32) -> Option<Power> {
    match Signal::try_from(sig).ok()? {
        Signal::SIGTERM | Signal::SIGINT => Some(Power::Reboot),
        Signal::SIGUSR2 => Some(Power::Off),
        Signal::SIGUSR1 => Some(Power::Halt),
        _ => None,
    }
}

/// Blocks the handled signals and opens a non-blocking signalfd for them.
pub fn block() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Every signal waiting on the signalfd.
pub fn read_all(fd: &mut SignalFd) -> Vec<i32> {
    let mut out = Vec::new();
    while let Ok(Some(info)) = fd.read_signal() {
        out.push(i32::try_from(info.ssi_signo).unwrap_or(0));
        if out.len() > 64 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meanings() {
        assert_eq!(power_for(Signal::SIGTERM as i32), Some(Power::Reboot));
        assert_eq!(power_for(Signal::SIGINT as i32), Some(Power::Reboot));
        assert_eq!(power_for(Signal::SIGUSR2 as i32), Some(Power::Off));
        assert_eq!(power_for(Signal::SIGUSR1 as i32), Some(Power::Halt));
        assert_eq!(power_for(Signal::SIGCHLD as i32), None);
        assert_eq!(power_for(999), None);
    }
}
