//! What the LEDs show: a pure function from the device's state to a
//! pattern, and the blink timing of each pattern. Calm (steady or off) when
//! all is well; blinking only for problems. Driving the hardware is in
//! `ledhw`.

use serde::Serialize;

/// What the LED decision looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub shutting_down: bool,
    /// An essential boot step failed.
    pub failed: bool,
    pub config_error: bool,
    pub crash_loop: bool,
    /// Boot steps done and the services have had their first chance.
    pub booted: bool,
    pub network: bool,
    /// `serve` streams a real camera (not the test pattern).
    pub camera: bool,
    pub tunnel: Tunnel,
    pub viewers: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tunnel {
    /// Not configured (or kept off by a bad token).
    #[default]
    Off,
    Down,
    Up,
}

/// The states a parent can tell apart, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    ShuttingDown,
    Failed,
    ConfigError,
    CrashLoop,
    Booting,
    NoNetwork,
    NoCamera,
    TunnelDown,
    Watching,
    TunnelUp,
    Streaming,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::ShuttingDown => "shutting-down",
            State::Failed => "failed",
            State::ConfigError => "config-error",
            State::CrashLoop => "crash-loop",
            State::Booting => "booting",
            State::NoNetwork => "no-network",
            State::NoCamera => "no-camera",
            State::TunnelDown => "tunnel-down",
            State::Watching => "watching",
            State::TunnelUp => "tunnel-up",
            State::Streaming => "streaming",
        }
    }
}

/// How one LED behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blink {
    Off,
    On,
    /// `n` short flashes, then a pause; the whole cycle takes 3 s.
    Flashes(u8),
    /// On and off five times a second.
    Fast,
}

/// One LED setting for every LED there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    pub board: Blink,
    pub red: Blink,
    pub green: Blink,
    pub blue: Blink,
}

pub fn state(i: &Inputs) -> State {
    if i.shutting_down {
        State::ShuttingDown
    } else if i.failed {
        State::Failed
    } else if i.config_error {
        State::ConfigError
    } else if i.crash_loop {
        State::CrashLoop
    } else if !i.booted {
        State::Booting
    } else if !i.network {
        State::NoNetwork
    } else if !i.camera {
        State::NoCamera
    } else if i.tunnel == Tunnel::Down {
        State::TunnelDown
    } else if i.viewers > 0 {
        State::Watching
    } else if i.tunnel == Tunnel::Up {
        State::TunnelUp
    } else {
        State::Streaming
    }
}

/// The pattern for a state; `enabled = false` turns every LED off.
pub fn pattern(state: State, enabled: bool) -> Pattern {
    use Blink::*;
    let p = |board, red, green, blue| Pattern {
        board,
        red,
        green,
        blue,
    };
    if !enabled {
        return p(Off, Off, Off, Off);
    }
    match state {
        State::Booting => p(On, On, On, On),
        State::ShuttingDown => p(On, On, On, Off),
        State::Streaming => p(On, Off, On, Off),
        State::TunnelUp => p(On, Off, On, On),
        State::Watching => p(On, Off, Off, On),
        State::NoNetwork => p(Flashes(1), Flashes(1), Off, Off),
        State::NoCamera => p(Flashes(2), Flashes(2), Off, Off),
        State::TunnelDown => p(Flashes(3), Flashes(3), Off, Off),
        State::CrashLoop => p(Flashes(4), Flashes(4), Off, Off),
        State::ConfigError => p(Fast, Fast, Off, Off),
        State::Failed => p(Fast, On, Off, Off),
    }
}

const CYCLE_MS: u64 = 3000;
const FLASH_MS: u64 = 200;
const FAST_MS: u64 = 100;

/// Whether an LED is lit `t_ms` milliseconds into its pattern.
pub fn lit(blink: Blink, t_ms: u64) -> bool {
    match blink {
        Blink::Off => false,
        Blink::On => true,
        Blink::Fast => (t_ms / FAST_MS).is_multiple_of(2),
        Blink::Flashes(n) => {
            let t = t_ms % CYCLE_MS;
            let slot = t / FLASH_MS;
            slot < 2 * u64::from(n) && slot.is_multiple_of(2)
        }
    }
}

/// True when some LED of the pattern changes over time (the main loop
/// then wakes often enough to drive it).
pub fn animated(p: &Pattern) -> bool {
    [p.board, p.red, p.green, p.blue]
        .iter()
        .any(|b| matches!(b, Blink::Flashes(_) | Blink::Fast))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn well() -> Inputs {
        Inputs {
            booted: true,
            network: true,
            camera: true,
            ..Default::default()
        }
    }

    #[test]
    fn priorities() {
        let mut i = well();
        assert_eq!(state(&i), State::Streaming);
        i.tunnel = Tunnel::Up;
        assert_eq!(state(&i), State::TunnelUp);
        i.viewers = 2;
        assert_eq!(state(&i), State::Watching);
        i.tunnel = Tunnel::Down;
        assert_eq!(state(&i), State::TunnelDown);
        i.camera = false;
        assert_eq!(state(&i), State::NoCamera);
        i.network = false;
        assert_eq!(state(&i), State::NoNetwork);
        i.booted = false;
        assert_eq!(state(&i), State::Booting);
        i.crash_loop = true;
        assert_eq!(state(&i), State::CrashLoop);
        i.config_error = true;
        assert_eq!(state(&i), State::ConfigError);
        i.failed = true;
        assert_eq!(state(&i), State::Failed);
        i.shutting_down = true;
        assert_eq!(state(&i), State::ShuttingDown);
    }

    const ALL: [State; 11] = [
        State::ShuttingDown,
        State::Failed,
        State::ConfigError,
        State::CrashLoop,
        State::Booting,
        State::NoNetwork,
        State::NoCamera,
        State::TunnelDown,
        State::Watching,
        State::TunnelUp,
        State::Streaming,
    ];

    fn is_problem(s: State) -> bool {
        matches!(
            s,
            State::Failed
                | State::ConfigError
                | State::CrashLoop
                | State::NoNetwork
                | State::NoCamera
                | State::TunnelDown
        )
    }

    #[test]
    fn calm_when_well_blinking_only_for_problems() {
        for s in ALL {
            assert_eq!(animated(&pattern(s, true)), is_problem(s), "{s:?}");
        }
    }

    #[test]
    fn every_state_looks_different() {
        for (a, sa) in ALL.iter().enumerate() {
            for sb in ALL.iter().skip(a + 1) {
                assert_ne!(pattern(*sa, true), pattern(*sb, true), "{sa:?} {sb:?}");
            }
        }
    }

    #[test]
    fn disabled_is_dark() {
        for s in ALL {
            let p = pattern(s, false);
            assert!((0..6000).step_by(50).all(|t| {
                !lit(p.board, t) && !lit(p.red, t) && !lit(p.green, t) && !lit(p.blue, t)
            }));
        }
    }

    #[test]
    fn flash_counts() {
        for n in 1..=4u8 {
            let mut rises = 0;
            let mut was = false;
            for t in (0..CYCLE_MS).step_by(10) {
                let now = lit(Blink::Flashes(n), t);
                if now && !was {
                    rises += 1;
                }
                was = now;
            }
            assert_eq!(rises, n, "flashes({n})");
        }
        assert!(lit(Blink::Fast, 0) && !lit(Blink::Fast, 100) && lit(Blink::Fast, 200));
        assert!(lit(Blink::On, 12345) && !lit(Blink::Off, 0));
    }

    #[test]
    fn names_match_serde() {
        for s in ALL {
            let json = serde_json::to_string(&s).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
    }
}
