//! Shutdown, the mirror of boot: TERM to the services in reverse start
//! order (3 s for all of them together), KILL to those left, TERM and KILL
//! to every other process, save the clock, sync, unmount `/data`, and
//! `reboot(2)`. Within 5 s.

use std::time::{Duration, Instant};

use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::leds;
use super::runloop::{reap, save_clock, system_state};
use super::signals::Power;
use super::testplan::Step;
use super::{Init, blockdev, run_dir, status};

const SERVICES_GRACE: Duration = Duration::from_secs(3);
const OTHERS_GRACE: Duration = Duration::from_millis(700);
/// The least time a service gets between TERM and KILL.
const LAST_MOMENT: Duration = Duration::from_millis(100);
const STEP: Duration = Duration::from_millis(20);

/// Waits until `done` or `until`, reaping and keeping the log flowing.
fn wait_until(init: &mut Init, until: Instant, done: &dyn Fn(&Init) -> bool) -> bool {
    loop {
        let now = Instant::now();
        reap(init, now);
        init.outputs.drain();
        init.watchdog.feed(now);
        if done(init) {
            return true;
        }
        if now >= until {
            return false;
        }
        std::thread::sleep(STEP);
    }
}

/// Nothing but init is left (waitpid says there are no children).
fn no_children() -> bool {
    matches!(
        nix::sys::wait::waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG)
        ),
        Err(nix::errno::Errno::ECHILD)
    )
}

fn unit_name(init: &Init, i: usize) -> String {
    init.sup
        .units
        .get(i)
        .map(|u| u.spec.name.clone())
        .unwrap_or_default()
}

pub(super) fn shutdown(init: &mut Init, power: Power) -> ! {
    let start = Instant::now();
    log::info!(
        "shutdown: {}: stopping services in reverse order",
        power.name()
    );
    let pattern = leds::pattern(leds::State::ShuttingDown, init.loaded.config.leds.enabled);
    init.leds.show(&pattern, 0);
    init.sup.stop_all();
    let deadline = start + SERVICES_GRACE;
    for (i, pid) in init.sup.stop_order() {
        let name = unit_name(init, i);
        log::info!("{name}: stopping (TERM to its process group)");
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        // Once the budget is spent, each still gets a moment before KILL.
        let until = deadline.max(Instant::now() + LAST_MOMENT);
        let gone = wait_until(init, until, &|init| {
            init.sup.units.get(i).is_none_or(|u| u.pid() != Some(pid))
        });
        if gone {
            log::info!("{name}: stopped");
        }
    }
    for (i, pid) in init.sup.stop_order() {
        let name = unit_name(init, i);
        log::warn!(
            "{name}: still running after {} s, killing it",
            SERVICES_GRACE.as_secs()
        );
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    log::info!("shutdown: stopping every other process");
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let others = Instant::now() + OTHERS_GRACE;
    if !wait_until(init, others, &|_| no_children()) {
        let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
        wait_until(init, Instant::now() + OTHERS_GRACE, &|_| no_children());
    }
    status::write(
        &run_dir(init),
        &system_state(init, leds::State::ShuttingDown, Instant::now()),
    );
    save_clock(init);
    let synced = Instant::now();
    nix::unistd::sync();
    log::info!("shutdown: sync took {} ms", synced.elapsed().as_millis());
    if init.runs(Step::Blockdev) {
        blockdev::unmount_data(&init.root);
    }
    log::info!(
        "shutdown: {} now, {} ms after the request",
        power.name(),
        start.elapsed().as_millis()
    );
    let mode = match power {
        Power::Reboot => RebootMode::RB_AUTOBOOT,
        Power::Off => RebootMode::RB_POWER_OFF,
        Power::Halt => RebootMode::RB_HALT_SYSTEM,
    };
    let err = match reboot(mode) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    log::error!("shutdown: reboot(2) failed: {err}; waiting for the watchdog or the power cord");
    loop {
        reap(init, Instant::now());
        std::thread::sleep(Duration::from_secs(1));
    }
}
