//! `babymon-init`, the device's PID 1. [`main`] reads as the boot script:
//! each step in order, each logged; the main loop (in `runloop`) then
//! supervises the services until a power request, and `shutdown` mirrors
//! the boot. Essential steps that fail leave init running in a safe state
//! (the failure pattern on the LEDs, the reason on the console, the serial
//! shell if the config asks for one); optional ones warn and carry on.
//!
//! Nothing here may panic on outside input: PID 1 dying panics the kernel.

mod accounts;
mod blockdev;
mod cli;
mod clock;
mod devperm;
mod health;
mod input;
mod ledhw;
mod leds;
mod logsink;
mod modules;
mod mounts;
mod run;
mod runfiles;
mod runloop;
mod services;
mod shutdown;
mod signals;
mod spawn;
mod status;
mod supervisor;
mod system;
mod testplan;
mod uevent;
mod watchdog;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::config::{self, Loaded, Problem, Severity};
use crate::statefile::RUN_DIR;

use services::ServiceSpec;
use supervisor::{Policy, Supervisor};
use testplan::{Step, TestPlan};

/// Everything init knows while it runs.
pub(crate) struct Init {
    root: PathBuf,
    plan: TestPlan,
    /// Reasons essential steps failed; non-empty means the safe state.
    failed: Vec<String>,
    loaded: Loaded,
    data_mounted: bool,
    clock_source: &'static str,
    modules: Option<modules::Modules>,
    uevents: Option<OwnedFd>,
    inputs: input::Inputs,
    watchdog: watchdog::Watchdog,
    leds: ledhw::Hardware,
    specs: Vec<ServiceSpec>,
    sup: Supervisor,
    outputs: spawn::Outputs,
    started: Instant,
}

impl Init {
    fn new(root: PathBuf, plan: TestPlan) -> Init {
        Init {
            root,
            plan,
            failed: Vec::new(),
            loaded: missing_config("not read yet".into()),
            data_mounted: false,
            clock_source: "rtc",
            modules: None,
            uevents: None,
            inputs: input::Inputs::default(),
            watchdog: watchdog::Watchdog::off(),
            leds: ledhw::Hardware::none(),
            specs: Vec::new(),
            sup: Supervisor::new(Vec::new(), Policy::default()),
            outputs: spawn::Outputs::default(),
            started: Instant::now(),
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn runs(&self, step: Step) -> bool {
        !self.plan.skips(step)
    }

    fn fail(&mut self, reason: String) {
        logsink::console(&format!("[ERROR] boot failed: {reason}"));
        self.failed.push(reason);
    }

    fn gid(&self, group: &str) -> Option<u32> {
        let (_, groups) = accounts::read(&self.root);
        accounts::find_group(&groups, group)
    }

    /// Step 1: the early filesystems, then the log to the console and kmsg.
    fn mount_early(&mut self) {
        log::info!("boot: mounting proc, sys, dev, run and tmp");
        let errors = mounts::early(
            &self.root,
            self.runs(Step::Devtmpfs),
            self.runs(Step::Sysfs),
        );
        logsink::open_devices(&self.root);
        for e in errors {
            self.fail(e.to_string());
        }
        let run = self.at(RUN_DIR);
        if let Err(e) = std::fs::create_dir_all(&run) {
            self.fail(format!("{}: {e}", run.display()));
        }
    }

    /// Step 2: modules for the hardware that is there, and uevents for what
    /// comes later.
    fn load_modules(&mut self) {
        if self.runs(Step::Uevents) {
            match uevent::open() {
                Ok(fd) => self.uevents = Some(fd),
                Err(e) => log::warn!(
                    "uevents: netlink socket: {e}; devices plugged in later get no module"
                ),
            }
        }
        if !self.runs(Step::Modules) {
            log::info!("boot: modules left alone (test plan)");
            return;
        }
        let release =
            std::fs::read_to_string(self.at("proc/sys/kernel/osrelease")).unwrap_or_default();
        let dir = self.at("lib/modules").join(release.trim());
        match modules::Modules::load(&dir) {
            Ok(mut m) => {
                let aliases = modules::scan_modaliases(&self.at("sys"));
                log::info!("boot: loading modules for {} device aliases", aliases.len());
                for alias in &aliases {
                    m.load_alias(alias);
                }
                self.modules = Some(m);
            }
            Err(e) => log::warn!(
                "modules: {}: {e}; no module is loaded (run depmod for this kernel)",
                dir.display()
            ),
        }
    }

    /// The modules the config names (virtual devices announce no alias).
    fn load_config_modules(&mut self) {
        let names = self.loaded.config.system.modules.clone();
        if let Some(m) = self.modules.as_mut() {
            for name in names {
                m.load_module(&name);
            }
        }
    }

    /// Step 3: `/boot` read-only and `/data` read-write.
    fn mount_partitions(&mut self) -> Result<(), String> {
        if !self.runs(Step::Blockdev) {
            log::info!("boot: partitions left alone (test plan)");
            self.data_mounted = self.at("data").is_dir();
            return Ok(());
        }
        if let Some(m) = self.modules.as_mut() {
            // Filesystems and code pages are modules on some kernels (Debian's).
            for name in blockdev::FS_MODULES {
                m.load_if_present(name);
            }
        }
        let cmdline = std::fs::read_to_string(self.at("proc/cmdline")).unwrap_or_default();
        let devs = blockdev::devices(&cmdline);
        log::info!(
            "boot: mounting {} on /boot and {} on /data",
            devs.boot,
            devs.data
        );
        let gid = self.gid("babymon");
        let boot = blockdev::mount_boot(&self.root, &devs.boot, gid).map_err(|e| e.to_string());
        match blockdev::mount_data(&self.root, &devs.data) {
            Ok(()) => self.data_mounted = true,
            Err(e) => log::warn!("{e}; carrying on without /data"),
        }
        boot
    }

    /// Step 4: the config, its problems on the console.
    fn read_config(&mut self, boot: Result<(), String>) {
        let path = self.at(config::DEVICE_PATH);
        self.loaded = match boot {
            Err(e) => missing_config(format!("boot partition: {e}")),
            Ok(()) => match config::load(&path) {
                Ok(loaded) => loaded,
                Err(e) => missing_config(format!("{e}; put babymon.toml on the boot partition")),
            },
        };
        log::info!(
            "boot: config {} read, {} problems",
            path.display(),
            self.loaded.problems.len()
        );
        for (p, line) in self
            .loaded
            .problems
            .iter()
            .zip(status::config_lines(&self.loaded))
        {
            match p.severity {
                Severity::Error => log::error!("config: {line}"),
                Severity::Unknown => log::warn!("config: {line}"),
            }
        }
        for (section, what) in [("tunnel", "the tunnel"), ("wifi", "Wi-Fi")] {
            if self.loaded.guard_failed(section) && !self.loaded.unreadable {
                log::error!("config: {what} stays off until [{section}] is fixed");
            }
        }
    }

    /// Step 5: hostname, loopback, socket buffers, Ctrl-Alt-Del, devices.
    fn configure_system(&mut self) {
        log::info!("boot: hostname, network loopback, sysctls, device groups");
        if self.runs(Step::Hostname) {
            system::set_hostname(&self.loaded.config.system.hostname);
        }
        system::loopback_up();
        if self.runs(Step::Sysctl) {
            system::socket_buffers(&self.at("proc"));
        }
        if self.runs(Step::Cad) {
            system::cad_to_init();
        }
        if self.runs(Step::Devperm) {
            let (_, groups) = accounts::read(&self.root);
            let gid_of = |g: &str| accounts::find_group(&groups, g);
            let n = devperm::fix_all(&self.at("dev"), &gid_of);
            log::info!("devices: {n} nodes given to the video and audio groups");
        }
        if self.runs(Step::Input) {
            self.inputs.scan(&self.at("dev/input"));
        }
        if self.runs(Step::Watchdog) {
            self.watchdog = watchdog::Watchdog::open(&self.at("dev"));
        }
        if self.runs(Step::Leds) {
            self.leds = ledhw::Hardware::open(&self.at("sys"), &self.loaded.config.leds);
        }
    }

    /// Step 6: the clock, from the saved time or the build time.
    fn set_clock(&mut self) {
        if !self.runs(Step::Clock) {
            log::info!("boot: clock left alone (test plan)");
            self.clock_source = "host";
            return;
        }
        let saved = clock::read_saved(&self.at("data"));
        let d = clock::decide(clock::now(), saved, clock::build_time());
        self.clock_source = d.source;
        match d.set_to {
            Some(t) => match clock::set(t) {
                Ok(()) => log::info!(
                    "boot: clock set to {t} from the {} time; ntp will correct it",
                    d.source
                ),
                Err(e) => log::warn!("clock: cannot set it to {t}: {e}"),
            },
            None => log::info!(
                "boot: clock kept at {} (it knows better than the saved time)",
                clock::now()
            ),
        }
    }

    /// Step 7: the service list and the files the services need.
    fn plan_services(&mut self) {
        let specs = if !self.failed.is_empty() {
            // The safe state: only the serial shell, when asked for.
            services::plan(&self.loaded, &services::Machine::default())
                .into_iter()
                .filter(|s| s.console)
                .collect()
        } else if !self.plan.service.is_empty() {
            services::from_test_plan(&self.plan)
        } else {
            let (ethernet, wireless) = system::interfaces(&self.at("sys"));
            let config_path = self
                .at(config::DEVICE_PATH)
                .exists()
                .then(|| PathBuf::from(config::DEVICE_PATH));
            let machine = services::Machine {
                ethernet,
                wireless,
                data_mounted: self.data_mounted,
                ntpd_link: self.at("usr/sbin/ntpd").exists(),
                config_path,
            };
            services::plan(&self.loaded, &machine)
        };
        runfiles::prepare_run_dir(self);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        log::info!("boot: services in start order: {}", names.join(", "));
        self.sup = Supervisor::new(
            specs.iter().map(ServiceSpec::unit).collect(),
            Policy::default(),
        );
        self.specs = specs;
    }
}

/// A config that could not be read: the defaults, with the reason as an
/// error (so guarded services stay off).
fn missing_config(message: String) -> Loaded {
    Loaded {
        config: config::Config::default(),
        problems: vec![Problem {
            line: 0,
            key: String::new(),
            message,
            severity: Severity::Error,
        }],
        unreadable: true,
    }
}

/// The init program. Returns only when it is not PID 1 (or for `--help`).
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match cli::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("babymon-init: {e}\n{}", cli::HELP);
            cli::Options::default()
        }
    };
    if opts.help {
        println!("{}", cli::HELP);
        return ExitCode::SUCCESS;
    }
    if opts.version {
        println!("babymon-init {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!("babymon-init: not PID 1; it only runs as init (see --help for the test flags)");
        return ExitCode::from(2);
    }
    logsink::init();
    log::info!("babymon-init {} starting", env!("CARGO_PKG_VERSION"));
    if !opts.ignored.is_empty() {
        log::info!("kernel arguments ignored: {}", opts.ignored.join(" "));
    }
    let mut signals = match signals::block() {
        Ok(fd) => Some(fd),
        Err(e) => {
            logsink::console(&format!("[ERROR] signals: cannot block them: {e}"));
            None
        }
    };
    let root = if opts.root.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        opts.root.clone()
    };
    let plan = match &opts.test_plan {
        Some(path) => {
            log::warn!("test plan {}: a test run, not a device", path.display());
            TestPlan::load(path)
        }
        None if root != std::path::Path::new("/") => {
            Err("--root needs --test-plan (the steps that touch the machine must be named)".into())
        }
        None => Ok(TestPlan::default()),
    };
    let mut init = Init::new(root, TestPlan::default());
    match plan {
        Ok(plan) => init.plan = plan,
        Err(e) => {
            // A test run whose plan is unknown must not touch the machine.
            init.plan = TestPlan::everything_off();
            init.fail(format!("test plan: {e}"));
        }
    }
    if signals.is_none() {
        init.failed.push("signals could not be blocked".into());
    }
    init.mount_early(); //        1. proc, sys, dev, run, tmp; log to console and kmsg
    init.load_modules(); //       2. modules from modalias; uevents from now on
    let boot = init.mount_partitions(); // 3. /boot read-only, /data read-write
    init.read_config(boot); //    4. /boot/babymon.toml
    init.load_config_modules(); //   the modules the config names
    init.configure_system(); //   5. hostname, lo, sysctls, CAD, device groups
    init.set_clock(); //          6. the clock
    init.plan_services(); //      7. the services, then the main loop
    let power = runloop::run(&mut init, &mut signals);
    shutdown::shutdown(&mut init, power)
}

/// Where `serve` may write and init reads, made at boot.
fn run_dir(init: &Init) -> PathBuf {
    init.at(RUN_DIR)
}

#[cfg(test)]
mod proptests;
