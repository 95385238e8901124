//! The supervisor's decisions, as a pure state machine: when each service
//! starts, how long it waits after an exit, when it counts as healthy and
//! when it is in a crash loop. It never forks, sleeps or reads a clock: the
//! caller feeds it events with the time they happened. Spawning and killing
//! live in `services`.

use std::time::{Duration, Instant};

/// Restart timing, fixed for the device and shortened in unit tests only by
/// feeding time, never by changing these.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Healthy this long in one run resets the back-off.
    pub healthy_reset: Duration,
    /// Exits in a row without getting healthy that make a crash loop.
    pub crash_loop_exits: u32,
    /// A service without a probe is healthy after running this long.
    pub healthy_without_probe: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            healthy_reset: Duration::from_secs(60),
            crash_loop_exits: 5,
            healthy_without_probe: Duration::from_secs(60),
        }
    }
}

/// What the supervisor needs to know about one service.
#[derive(Debug, Clone, Default)]
pub struct UnitSpec {
    pub name: String,
    pub has_probe: bool,
    /// Starts only once the clock is right.
    pub needs_clock: bool,
    /// A job that runs to completion and again after this long (NTP): a
    /// clean exit is success, not a crash.
    pub every: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet (possibly waiting for the clock).
    Waiting,
    Running {
        pid: i32,
        since: Instant,
    },
    Healthy {
        pid: i32,
        since: Instant,
    },
    /// Exited; starts again at `until`.
    Backoff {
        until: Instant,
    },
    /// A periodic job that succeeded; runs again at `until`.
    Done {
        until: Instant,
    },
    /// Stopped for good (shutdown).
    Stopped,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub spec: UnitSpec,
    pub phase: Phase,
    /// The wait before the next restart.
    delay: Duration,
    unhealthy_exits: u32,
    pub crash_loop: bool,
    pub starts: u32,
    pub last_exit: Option<Exit>,
    /// Set once a periodic job has succeeded (the clock is synced).
    pub succeeded: bool,
}

impl Unit {
    pub fn restarts(&self) -> u32 {
        self.starts.saturating_sub(1)
    }

    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } | Phase::Healthy { pid, .. } => Some(pid),
            _ => None,
        }
    }

    pub fn is_healthy(&self) -> bool {
        matches!(self.phase, Phase::Healthy { .. })
    }

    /// The name shown in `system.json`.
    pub fn state_name(&self) -> &'static str {
        match self.phase {
            _ if self.crash_loop && !self.is_healthy() => "crash-loop",
            Phase::Waiting => "starting",
            Phase::Running { .. } => "running",
            Phase::Healthy { .. } => "healthy",
            Phase::Backoff { .. } => "backoff",
            Phase::Done { .. } => "done",
            Phase::Stopped => "stopped",
        }
    }
}

/// Every service, in start order.
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub units: Vec<Unit>,
    policy: Policy,
    /// Shutting down: nothing starts again, exits end in `Stopped`.
    stopping: bool,
}

impl Supervisor {
    pub fn new(specs: Vec<UnitSpec>, policy: Policy) -> Self {
        let units = specs
            .into_iter()
            .map(|spec| Unit {
                spec,
                phase: Phase::Waiting,
                delay: policy.first_delay,
                unhealthy_exits: 0,
                crash_loop: false,
                starts: 0,
                last_exit: None,
                succeeded: false,
            })
            .collect();
        Supervisor {
            units,
            policy,
            stopping: false,
        }
    }

    /// The services to start now, in start order.
    pub fn to_start(&self, now: Instant, clock_ok: bool) -> Vec<usize> {
        self.units
            .iter()
            .enumerate()
            .filter(|(_, u)| {
                let due = match u.phase {
                    Phase::Waiting => true,
                    Phase::Backoff { until } | Phase::Done { until } => now >= until,
                    _ => false,
                };
                due && (clock_ok || !u.spec.needs_clock)
            })
            .map(|(i, _)| i)
            .collect()
    }

    pub fn started(&mut self, i: usize, pid: i32, now: Instant) {
        if let Some(u) = self.units.get_mut(i) {
            u.phase = Phase::Running { pid, since: now };
            u.starts += 1;
        }
    }

    /// A start that failed (the program is missing, say) counts as an exit.
    pub fn start_failed(&mut self, i: usize, now: Instant) {
        if let Some(u) = self.units.get_mut(i) {
            u.starts += 1;
            u.phase = Phase::Running { pid: 0, since: now };
            self.exit_unit(i, Exit::Code(127), now);
        }
    }

    /// The result of a health probe.
    pub fn probed(&mut self, i: usize, ok: bool, now: Instant) {
        if let Some(u) = self.units.get_mut(i) {
            match u.phase {
                Phase::Running { pid, .. } if ok => {
                    u.phase = Phase::Healthy { pid, since: now };
                    u.unhealthy_exits = 0;
                    u.crash_loop = false;
                }
                Phase::Healthy { pid, .. } if !ok => {
                    // Healthy time restarts from zero once it passes again.
                    u.phase = Phase::Running { pid, since: now };
                }
                _ => {}
            }
        }
    }

    /// Time passing: probe-less services get healthy, and a healthy minute
    /// resets the back-off.
    pub fn tick(&mut self, now: Instant) {
        let policy = self.policy;
        for u in &mut self.units {
            match u.phase {
                Phase::Running { pid, since }
                    if !u.spec.has_probe
                        && u.spec.every.is_none()
                        && now.saturating_duration_since(since) >= policy.healthy_without_probe =>
                {
                    u.phase = Phase::Healthy { pid, since: now };
                    u.unhealthy_exits = 0;
                    u.crash_loop = false;
                }
                Phase::Healthy { since, .. }
                    if now.saturating_duration_since(since) >= policy.healthy_reset =>
                {
                    u.delay = policy.first_delay;
                }
                _ => {}
            }
        }
    }

    /// A child exited; returns the index of its service, if it was one.
    pub fn exited(&mut self, pid: i32, exit: Exit, now: Instant) -> Option<usize> {
        let i = self.units.iter().position(|u| u.pid() == Some(pid))?;
        self.exit_unit(i, exit, now);
        Some(i)
    }

    fn exit_unit(&mut self, i: usize, exit: Exit, now: Instant) {
        let policy = self.policy;
        let Some(u) = self.units.get_mut(i) else {
            return;
        };
        u.last_exit = Some(exit);
        if self.stopping {
            u.phase = Phase::Stopped;
            return;
        }
        if let (Some(every), Exit::Code(0)) = (u.spec.every, exit) {
            u.phase = Phase::Done { until: now + every };
            u.succeeded = true;
            u.delay = policy.first_delay;
            u.unhealthy_exits = 0;
            u.crash_loop = false;
            return;
        }
        if !u.is_healthy() {
            u.unhealthy_exits += 1;
        }
        // A job that cannot reach its server (NTP without internet) backs
        // off but is no crash loop.
        if u.unhealthy_exits >= policy.crash_loop_exits && u.spec.every.is_none() {
            u.crash_loop = true;
            u.delay = policy.max_delay;
        }
        u.phase = Phase::Backoff {
            until: now + u.delay,
        };
        u.delay = (u.delay * 2).min(policy.max_delay);
    }

    /// Running services in the order to stop them: the reverse of starting.
    pub fn stop_order(&self) -> Vec<(usize, i32)> {
        self.units
            .iter()
            .enumerate()
            .rev()
            .filter_map(|(i, u)| u.pid().filter(|p| *p > 0).map(|p| (i, p)))
            .collect()
    }

    /// From now on nothing starts again.
    pub fn stop_all(&mut self) {
        self.stopping = true;
        for u in &mut self.units {
            if u.pid().is_none() {
                u.phase = Phase::Stopped;
            }
        }
    }

    /// The earliest time something is due (a restart, a periodic job).
    pub fn next_due(&self) -> Option<Instant> {
        self.units
            .iter()
            .filter_map(|u| match u.phase {
                Phase::Backoff { until } | Phase::Done { until } => Some(until),
                _ => None,
            })
            .min()
    }

    pub fn any_crash_loop(&self) -> bool {
        self.units.iter().any(|u| u.crash_loop && !u.is_healthy())
    }

    pub fn find(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.spec.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str) -> UnitSpec {
        UnitSpec {
            name: name.into(),
            ..Default::default()
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Runs one crash: start at `now`, exit at once; returns the restart time.
    fn crash(s: &mut Supervisor, now: Instant, pid: i32) -> Instant {
        assert_eq!(s.to_start(now, true), vec![0], "due at {now:?}");
        s.started(0, pid, now);
        s.exited(pid, Exit::Code(1), now);
        match s.units[0].phase {
            Phase::Backoff { until } => until,
            p => panic!("not backing off: {p:?}"),
        }
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_crash_loop_after_five() {
        let mut s = Supervisor::new(vec![unit("serve")], Policy::default());
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for pid in 1..=8 {
            let next = crash(&mut s, now, pid);
            delays.push((next - now).as_secs());
            assert!(s.to_start(next - Duration::from_millis(1), true).is_empty());
            assert_eq!(s.units[0].crash_loop, pid >= 5, "after exit {pid}");
            now = next;
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 60, 60, 60, 60]);
        assert_eq!(s.units[0].state_name(), "crash-loop");
        assert_eq!(s.units[0].restarts(), 7);
        assert!(s.any_crash_loop());
    }

    #[test]
    fn delay_keeps_growing_without_crash_loop_before_five() {
        let mut s = Supervisor::new(vec![unit("a")], Policy::default());
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for pid in 1..=4 {
            let next = crash(&mut s, now, pid);
            delays.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(delays, vec![1, 2, 4, 8]);
        assert!(!s.any_crash_loop());
    }

    #[test]
    fn healthy_minute_resets_backoff_and_health_ends_crash_loop() {
        let mut spec = unit("serve");
        spec.has_probe = true;
        let mut s = Supervisor::new(vec![spec], Policy::default());
        let mut now = Instant::now();
        for pid in 1..=6 {
            now = crash(&mut s, now, pid);
        }
        assert!(s.any_crash_loop());
        s.started(0, 100, now);
        s.probed(0, true, now + secs(2));
        assert!(!s.any_crash_loop(), "health ends the crash loop");
        assert_eq!(s.units[0].state_name(), "healthy");
        // Healthy for less than a minute: the back-off stays long.
        s.tick(now + secs(30));
        s.exited(100, Exit::Signal(9), now + secs(30));
        let Phase::Backoff { until } = s.units[0].phase else {
            panic!("not backing off");
        };
        assert_eq!(until - (now + secs(30)), secs(60));
        // Healthy for a minute: back to one second.
        now = until;
        s.started(0, 101, now);
        s.probed(0, true, now);
        s.tick(now + secs(61));
        s.exited(101, Exit::Code(1), now + secs(61));
        let Phase::Backoff { until } = s.units[0].phase else {
            panic!("not backing off");
        };
        assert_eq!(until - (now + secs(61)), secs(1));
        assert_eq!(s.units[0].last_exit, Some(Exit::Code(1)));
    }

    #[test]
    fn probe_less_service_is_healthy_after_a_minute() {
        let mut s = Supervisor::new(vec![unit("wpa")], Policy::default());
        let now = Instant::now();
        s.started(0, 7, now);
        s.tick(now + secs(59));
        assert_eq!(s.units[0].state_name(), "running");
        s.tick(now + secs(60));
        assert_eq!(s.units[0].state_name(), "healthy");
    }

    #[test]
    fn start_order_waits_for_clock_and_stop_order_is_reversed() {
        let mut tunnel = unit("cloudflared");
        tunnel.needs_clock = true;
        let specs = vec![
            unit("wpa"),
            unit("ntp"),
            unit("serve"),
            tunnel,
            unit("shell"),
        ];
        let mut s = Supervisor::new(specs, Policy::default());
        let now = Instant::now();
        assert_eq!(s.to_start(now, false), vec![0, 1, 2, 4]);
        for (pid, i) in [(10, 0), (11, 1), (12, 2), (14, 4)] {
            s.started(i, pid, now);
        }
        assert!(s.to_start(now, false).is_empty());
        assert_eq!(s.to_start(now, true), vec![3]);
        s.started(3, 13, now);
        let order: Vec<i32> = s.stop_order().into_iter().map(|(_, p)| p).collect();
        assert_eq!(order, vec![14, 13, 12, 11, 10]);
        s.stop_all();
        s.exited(12, Exit::Signal(15), now);
        assert_eq!(
            s.units[2].phase,
            Phase::Stopped,
            "no restart while stopping"
        );
        assert!(s.to_start(now + secs(120), true).is_empty());
    }

    #[test]
    fn periodic_job_success_is_not_a_crash() {
        let mut ntp = unit("ntp");
        ntp.every = Some(secs(3600));
        let mut s = Supervisor::new(vec![ntp], Policy::default());
        let now = Instant::now();
        s.started(0, 5, now);
        s.exited(5, Exit::Code(0), now + secs(3));
        assert!(s.units[0].succeeded);
        assert_eq!(s.units[0].state_name(), "done");
        assert!(s.to_start(now + secs(3602), true).is_empty());
        assert_eq!(s.to_start(now + secs(3603), true), vec![0]);
        assert_eq!(s.next_due(), Some(now + secs(3603)));
    }

    #[test]
    fn failing_periodic_job_backs_off_without_crash_loop() {
        let mut ntp = unit("ntp");
        ntp.every = Some(secs(3600));
        let mut s = Supervisor::new(vec![ntp], Policy::default());
        let mut now = Instant::now();
        let mut delays = Vec::new();
        for pid in 1..=7 {
            let next = crash(&mut s, now, pid);
            delays.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60]);
        assert!(!s.any_crash_loop());
        assert_eq!(s.units[0].state_name(), "backoff");
    }

    #[test]
    fn failed_start_backs_off_like_an_exit() {
        let mut s = Supervisor::new(vec![unit("x")], Policy::default());
        let now = Instant::now();
        s.start_failed(0, now);
        assert_eq!(s.units[0].last_exit, Some(Exit::Code(127)));
        assert_eq!(s.next_due(), Some(now + secs(1)));
        assert_eq!(s.exited(0, Exit::Code(1), now), None, "pid 0 is no child");
    }
}
