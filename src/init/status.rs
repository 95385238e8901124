//! init's view for the parent: `system.json` under `/run/babymon`, written
//! atomically; and `serve.json`, read back for the LEDs.

use std::path::Path;

use crate::config::{Loaded, Severity};
use crate::statefile::{self, ServeState, ServiceState, SystemState};

use super::supervisor::Supervisor;

/// Config problems as lines for the console and `system.json`: line, key
/// and the fix. Unknown keys are included, marked as ignored.
pub fn config_lines(loaded: &Loaded) -> Vec<String> {
    loaded
        .problems
        .iter()
        .map(|p| match p.severity {
            Severity::Error => format!("{p}"),
            Severity::Unknown => format!("{p} (ignored)"),
        })
        .collect()
}

/// Each supervised service's state, then the ones that are not available
/// on this root (shown as such, never started).
pub fn services(sup: &Supervisor, not_available: &[&str]) -> Vec<ServiceState> {
    let running = sup.units.iter().map(|u| ServiceState {
        name: u.spec.name.clone(),
        state: u.state_name().into(),
        pid: u.pid(),
        restarts: u.restarts(),
        last_exit: u.last_exit.map(|e| e.to_string()),
    });
    let missing = not_available.iter().map(|name| ServiceState {
        name: (*name).into(),
        state: NOT_AVAILABLE.into(),
        ..Default::default()
    });
    running.chain(missing).collect()
}

/// The state of a service whose program this root does not have.
pub const NOT_AVAILABLE: &str = "not available";

pub fn write(run_dir: &Path, state: &SystemState) {
    let path = run_dir.join(statefile::SYSTEM_FILE);
    if let Err(e) = statefile::write_atomic(&path, state) {
        log::warn!("status: {e}");
    }
}

/// `serve.json`, or `None` when `serve` has not written one (yet).
pub fn read_serve(run_dir: &Path) -> Option<ServeState> {
    statefile::read(&run_dir.join(statefile::SERVE_FILE)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    #[test]
    fn a_missing_ntp_client_shows_as_not_available() {
        use super::super::supervisor::{Policy, UnitSpec};
        let serve = UnitSpec {
            name: "serve".into(),
            has_probe: true,
            needs_clock: false,
            every: None,
        };
        let sup = Supervisor::new(vec![serve], Policy::default());
        let list = services(&sup, &["ntp"]);
        let names: Vec<_> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["serve", "ntp"]);
        assert_eq!(list[1].state, "not available");
        assert_eq!((list[1].pid, list[1].restarts), (None, 0));
        assert_ne!(list[0].state, "not available");
        let json = serde_json::to_value(&list[1]).unwrap();
        assert_eq!(json["state"], "not available");
    }

    #[test]
    fn config_errors_reach_status_with_line_key_and_fix() {
        let loaded = parse("[camera]\nwidth = \"wide\"\n[tunnel]\ntoken = 5\ncolour = 1\n");
        let lines = config_lines(&loaded);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("line 2: camera.width: ")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("line 4: tunnel.token: ")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("line 5: tunnel.colour: ") && l.ends_with("(ignored)"))
        );
        assert!(loaded.guard_failed("tunnel"));
        let json = serde_json::to_string(&SystemState {
            config_errors: lines,
            ..Default::default()
        })
        .unwrap();
        assert!(json.contains("camera.width"));
    }
}
