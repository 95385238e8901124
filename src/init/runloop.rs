//! The main loop: one `poll` over the signalfd, the uevent socket, the
//! input devices and the services' output pipes, with a timeout from the
//! next thing due. Each round reaps every exited child, starts what is due,
//! probes health, feeds the watchdog and updates the LEDs and status.

use std::os::fd::{AsFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, killpg};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::statefile::{ClockState, SystemState, WifiState};

use super::leds::{self, Tunnel};
use super::signals::{self, Power};
use super::supervisor::{Exit, Phase};
use super::testplan::Step;
use super::{Init, accounts, clock, devperm, run_dir, spawn, status, system};

const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
const STATUS_EVERY: Duration = Duration::from_secs(2);
const CLOCK_SAVE_EVERY: Duration = Duration::from_secs(3600);
/// cloudflared starts after this even without a synced clock.
const CLOCK_WAIT: Duration = Duration::from_secs(120);
/// Before this, and before `serve` is healthy, the LEDs say "booting".
const BOOT_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Ready {
    Signal,
    Uevent,
    Input(usize),
    Output(RawFd),
}

/// Timers and remembered facts of the loop.
struct Loop {
    last_probe: Option<Instant>,
    last_status: Option<Instant>,
    last_clock_save: Instant,
    led_state: Option<leds::State>,
    led_epoch: Instant,
    serve: Option<crate::statefile::ServeState>,
    clock_synced_logged: bool,
    clock_wait_logged: bool,
}

/// Runs until a power request; returns it.
pub(super) fn run(init: &mut Init, signals: &mut Option<SignalFd>) -> Power {
    let now = Instant::now();
    let mut lp = Loop {
        last_probe: None,
        last_status: None,
        last_clock_save: now,
        led_state: None,
        led_epoch: now,
        serve: None,
        clock_synced_logged: false,
        clock_wait_logged: false,
    };
    log::info!(
        "boot: done in {} ms, supervising",
        now.saturating_duration_since(init.started).as_millis()
    );
    loop {
        let now = Instant::now();
        init.watchdog.feed(now);
        reap(init, now);
        init.sup.tick(now);
        enforce_time_limits(init, now);
        start_due(init, &mut lp, now);
        probe(init, &mut lp, now);
        refresh(init, &mut lp, now);
        let timeout = next_timeout(init, &lp, now);
        for ready in wait(init, signals.as_ref(), timeout) {
            match ready {
                Ready::Signal => {
                    let Some(fd) = signals.as_mut() else { continue };
                    for sig in signals::read_all(fd) {
                        if let Some(power) = signals::power_for(sig) {
                            log::info!("signal {}: {}", signal_name(sig), power.name());
                            return power;
                        }
                    }
                }
                Ready::Uevent => uevents(init),
                Ready::Input(i) => {
                    if init.inputs.read(i) {
                        log::info!("power key pressed: power off");
                        return Power::Off;
                    }
                }
                Ready::Output(fd) => init.outputs.read(fd),
            }
        }
    }
}

fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.as_str().to_string())
}

/// Polls every source; returns what is ready. Never blocks past `timeout`.
fn wait(init: &Init, signals: Option<&SignalFd>, timeout: Duration) -> Vec<Ready> {
    let mut tags = Vec::new();
    let mut fds: Vec<PollFd> = Vec::new();
    if let Some(s) = signals {
        tags.push(Ready::Signal);
        fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
    }
    if let Some(u) = &init.uevents {
        tags.push(Ready::Uevent);
        fds.push(PollFd::new(u.as_fd(), PollFlags::POLLIN));
    }
    for (i, (_, f)) in init.inputs.devices.iter().enumerate() {
        tags.push(Ready::Input(i));
        fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
    }
    for (raw, fd) in init.outputs.polled() {
        tags.push(Ready::Output(raw));
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
    }
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(0) | Err(Errno::EINTR) => return Vec::new(),
        Err(e) => {
            log::warn!("poll: {e}");
            std::thread::sleep(Duration::from_millis(100));
            return Vec::new();
        }
        Ok(_) => {}
    }
    let mut ready: Vec<Ready> = fds
        .iter()
        .zip(tags)
        .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|(_, tag)| tag)
        .collect();
    // Inputs are read from the highest index down, so a closed device does
    // not shift the ones still to read.
    ready.sort_by_key(|r| match r {
        Ready::Input(i) => usize::MAX - i,
        _ => 0,
    });
    ready
}

fn next_timeout(init: &Init, lp: &Loop, now: Instant) -> Duration {
    let mut t = Duration::from_secs(1);
    if let Some(due) = init.sup.next_due() {
        t = t.min(due.saturating_duration_since(now));
    }
    let animated = lp
        .led_state
        .is_some_and(|s| leds::animated(&leds::pattern(s, init.loaded.config.leds.enabled)));
    if animated {
        t = t.min(Duration::from_millis(50));
    }
    t.max(Duration::from_millis(5))
}

/// Reaps every exited child, services and orphans alike.
pub(super) fn reap(init: &mut Init, now: Instant) -> usize {
    let mut count = 0;
    for _ in 0..10_000 {
        let (pid, exit) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Exit::Signal(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(e) => {
                log::warn!("waitpid: {e}");
                break;
            }
        };
        count += 1;
        if let Some(i) = init.sup.exited(pid.as_raw(), exit, now) {
            // Helpers the service left in its group go with it.
            let _ = killpg(pid, Signal::SIGTERM);
            let Some(u) = init.sup.units.get(i) else {
                continue;
            };
            match u.phase {
                Phase::Backoff { until } => log::warn!(
                    "{}: {exit} after attempt {}, restarting in {} s{}",
                    u.spec.name,
                    u.starts,
                    until.saturating_duration_since(now).as_secs(),
                    if u.crash_loop { " (crash loop)" } else { "" }
                ),
                _ => log::info!("{}: {exit}", u.spec.name),
            }
        }
    }
    count
}

fn enforce_time_limits(init: &mut Init, now: Instant) {
    for (u, spec) in init.sup.units.iter().zip(&init.specs) {
        if let (Phase::Running { pid, since }, Some(limit)) = (u.phase, spec.time_limit)
            && pid > 0
            && now.saturating_duration_since(since) > limit
        {
            log::warn!(
                "{}: still running after {} s, killing it",
                u.spec.name,
                limit.as_secs()
            );
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Whether services that need a right clock may start.
fn clock_ok(init: &Init, lp: &mut Loop, now: Instant) -> bool {
    if matches!(init.clock_source, "rtc" | "host") || ntp_synced(init) {
        return true;
    }
    // With no NTP client nothing will set it: waiting would only delay.
    let no_ntp = init.not_available.contains(&"ntp");
    if no_ntp || now.saturating_duration_since(init.started) >= CLOCK_WAIT {
        if !lp.clock_wait_logged {
            if no_ntp {
                log::info!(
                    "clock: no ntp client; services that need a right clock start without it"
                );
            } else {
                log::warn!(
                    "clock: not synced after {} s; starting the tunnel anyway",
                    CLOCK_WAIT.as_secs()
                );
            }
            lp.clock_wait_logged = true;
        }
        return true;
    }
    false
}

fn ntp_synced(init: &Init) -> bool {
    init.sup.find("ntp").is_some_and(|u| u.succeeded)
}

fn start_due(init: &mut Init, lp: &mut Loop, now: Instant) {
    let ok = clock_ok(init, lp, now);
    for i in init.sup.to_start(now, ok) {
        let Some(spec) = init.specs.get(i).cloned() else {
            continue;
        };
        if spec.name == "cloudflared"
            && init.plan.service.is_empty()
            && let Err(e) = super::runfiles::prepare_tunnel(init)
        {
            log::error!("cloudflared: {e}; the tunnel stays off until this is fixed");
            init.sup.start_failed(i, now);
            continue;
        }
        let attempt = init.sup.units.get(i).map_or(1, |u| u.starts + 1);
        match spawn::spawn(&spec, &init.root) {
            Ok((pid, output)) => {
                log::info!("{}: attempt {attempt}, started as pid {pid}", spec.name);
                init.sup.started(i, pid, now);
                if let Some(out) = output {
                    init.outputs.add(&spec.name, out);
                }
            }
            Err(e) => {
                init.sup.start_failed(i, now);
                let wait = match init.sup.units.get(i).map(|u| u.phase) {
                    Some(Phase::Backoff { until }) => {
                        until.saturating_duration_since(now).as_secs()
                    }
                    _ => 0,
                };
                log::warn!("{e}; trying again in {wait} s");
            }
        }
    }
}

fn probe(init: &mut Init, lp: &mut Loop, now: Instant) {
    if lp
        .last_probe
        .is_some_and(|t| now.saturating_duration_since(t) < PROBE_EVERY)
    {
        return;
    }
    lp.last_probe = Some(now);
    for i in 0..init.specs.len() {
        let (Some(spec), Some(u)) = (init.specs.get(i), init.sup.units.get(i)) else {
            continue;
        };
        let Some(probe) = &spec.probe else { continue };
        if u.pid().is_none() {
            continue;
        }
        let was = u.is_healthy();
        let ok = probe.check(PROBE_TIMEOUT);
        init.sup.probed(i, ok, now);
        if ok != was {
            let what = if ok { "healthy" } else { "no longer healthy" };
            log::info!("{}: {what} ({}{})", spec.name, probe.addr, probe.path);
        }
    }
}

fn led_inputs(init: &Init, lp: &Loop, now: Instant) -> leds::Inputs {
    let serve_healthy = init.sup.find("serve").is_some_and(|u| u.is_healthy());
    let serve = lp.serve.as_ref();
    let tunnel = match init.sup.find("cloudflared") {
        None => Tunnel::Off,
        Some(u) if u.is_healthy() => Tunnel::Up,
        Some(_) => Tunnel::Down,
    };
    leds::Inputs {
        shutting_down: false,
        failed: !init.failed.is_empty(),
        config_error: init.loaded.errors().next().is_some(),
        crash_loop: init.sup.any_crash_loop(),
        booted: serve_healthy || now.saturating_duration_since(init.started) >= BOOT_GRACE,
        network: !system::links_up(&init.at("sys")).is_empty(),
        camera: serve.is_some_and(|s| s.source == "camera" && s.pipeline == "playing"),
        tunnel,
        viewers: serve.map_or(0, |s| s.viewers.len()),
    }
}

/// LEDs every round; status, the serve file and the saved clock on timers.
fn refresh(init: &mut Init, lp: &mut Loop, now: Instant) {
    let due = lp
        .last_status
        .is_none_or(|t| now.saturating_duration_since(t) >= STATUS_EVERY);
    if due {
        lp.serve = status::read_serve(&run_dir(init));
    }
    let state = leds::state(&led_inputs(init, lp, now));
    if lp.led_state != Some(state) {
        log::info!("leds: {}", state.name());
        lp.led_state = Some(state);
        lp.led_epoch = now;
    }
    let pattern = leds::pattern(state, init.loaded.config.leds.enabled);
    let t = u64::try_from(now.saturating_duration_since(lp.led_epoch).as_millis()).unwrap_or(0);
    init.leds.show(&pattern, t);
    if ntp_synced(init) && !lp.clock_synced_logged {
        log::info!("clock: synced over ntp");
        lp.clock_synced_logged = true;
        save_clock(init);
    }
    if now.saturating_duration_since(lp.last_clock_save) >= CLOCK_SAVE_EVERY {
        lp.last_clock_save = now;
        save_clock(init);
    }
    if due || lp.last_status.is_none() {
        lp.last_status = Some(now);
        status::write(&run_dir(init), &system_state(init, state, now));
    }
}

pub(super) fn save_clock(init: &Init) {
    if !init.runs(Step::Clock) || !init.data_mounted {
        return;
    }
    if let Err(e) = clock::save(&init.at("data")) {
        log::warn!("clock: saving it on /data: {e}");
    }
}

pub(super) fn system_state(init: &Init, state: leds::State, now: Instant) -> SystemState {
    let c = &init.loaded.config;
    let tunnel = match init.sup.find("cloudflared") {
        None => "off",
        Some(u) if u.is_healthy() => "up",
        Some(u) if u.starts == 0 => "starting",
        Some(_) => "down",
    };
    let wifi = c.wifi.is_set().then(|| {
        let (_, wireless) = system::interfaces(&init.at("sys"));
        let iface = wireless.first().cloned().unwrap_or_else(|| "wlan0".into());
        let text = std::fs::read_to_string(init.at("proc/net/wireless")).unwrap_or_default();
        WifiState {
            ssid: c.wifi.ssid.clone(),
            connected: system::links_up(&init.at("sys")).contains(&iface),
            signal_dbm: system::wifi_signal(&text, &iface),
        }
    });
    SystemState {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: now.saturating_duration_since(init.started).as_secs(),
        services: status::services(&init.sup, &init.not_available),
        leds: state.name().into(),
        tunnel: tunnel.into(),
        wifi,
        clock: ClockState {
            synced: matches!(init.clock_source, "rtc" | "host") || ntp_synced(init),
            source: if ntp_synced(init) {
                "ntp"
            } else {
                init.clock_source
            }
            .into(),
            unix_s: clock::now(),
        },
        temperature_c: system::temperature(&init.at("sys")),
        addresses: system::addresses(),
        config_errors: status::config_lines(&init.loaded),
        boot_errors: init.failed.clone(),
    }
}

fn uevents(init: &mut Init) {
    let Some(fd) = init.uevents.as_ref() else {
        return;
    };
    let events = super::uevent::read_all(fd);
    for ev in events {
        if ev.action != "add" {
            continue;
        }
        if let (Some(alias), Some(m)) = (&ev.modalias, init.modules.as_mut()) {
            m.load_alias(alias);
        }
        if let Some(name) = &ev.devname {
            if init.runs(Step::Devperm) {
                let (_, groups) = accounts::read(&init.root);
                devperm::fix(&init.at("dev"), name, &|g| accounts::find_group(&groups, g));
            }
            if name.starts_with("input/event") && init.runs(Step::Input) {
                let dir = init.at("dev/input");
                init.inputs.scan(&dir);
            }
        }
    }
}
