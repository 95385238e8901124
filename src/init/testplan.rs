//! The test plan: an init-only TOML file, read only when `--test-plan` is
//! given, that turns off the boot steps touching the real machine and
//! replaces the service list with test commands. The device never has one.

use std::path::Path;

use serde::Deserialize;

/// Boot steps a test plan may turn off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// devtmpfs on /dev (a test root gets a plain folder).
    Devtmpfs,
    /// sysfs on /sys (a test root may hold a fake tree instead).
    Sysfs,
    Modules,
    Uevents,
    /// /boot and /data: block devices.
    Blockdev,
    Hostname,
    Sysctl,
    /// Ctrl-Alt-Del handed to init.
    Cad,
    Devperm,
    Clock,
    Watchdog,
    Leds,
    Input,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPlan {
    #[serde(default)]
    pub skip: Vec<Step>,
    /// When present, these are the services, in start order.
    #[serde(default)]
    pub service: Vec<TestService>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestService {
    pub name: String,
    pub command: Vec<String>,
    /// `ADDR:PORT/PATH` of a health probe.
    #[serde(default)]
    pub probe: Option<String>,
    #[serde(default)]
    pub needs_clock: bool,
    #[serde(default)]
    pub user: Option<String>,
}

impl TestPlan {
    pub fn load(path: &Path) -> Result<TestPlan, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let plan: TestPlan =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        if plan.service.iter().any(|s| s.command.is_empty()) {
            return Err(format!(
                "{}: a service has an empty command",
                path.display()
            ));
        }
        Ok(plan)
    }

    /// Every step off and no services: for a test run whose plan is bad.
    pub fn everything_off() -> TestPlan {
        use Step::*;
        TestPlan {
            skip: vec![
                Devtmpfs, Sysfs, Modules, Uevents, Blockdev, Hostname, Sysctl, Cad, Devperm, Clock,
                Watchdog, Leds, Input,
            ],
            service: Vec::new(),
        }
    }

    pub fn skips(&self, step: Step) -> bool {
        self.skip.contains(&step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown() {
        let p: TestPlan = toml::from_str(
            "skip = [\"clock\", \"sysctl\"]\n[[service]]\nname = \"a\"\ncommand = [\"/bin/true\"]\n",
        )
        .unwrap();
        assert!(p.skips(Step::Clock) && p.skips(Step::Sysctl) && !p.skips(Step::Modules));
        assert_eq!(p.service[0].command, vec!["/bin/true"]);
        assert!(toml::from_str::<TestPlan>("skip = [\"everything\"]").is_err());
        assert!(toml::from_str::<TestPlan>("surprise = 1").is_err());
        let off = TestPlan::everything_off();
        let all: TestPlan = toml::from_str(
            "skip = [\"devtmpfs\", \"sysfs\", \"modules\", \"uevents\", \"blockdev\", \"hostname\",
             \"sysctl\", \"cad\", \"devperm\", \"clock\", \"watchdog\", \"leds\", \"input\"]",
        )
        .unwrap();
        assert_eq!(off.skip, all.skip, "every step is off");
    }
}
