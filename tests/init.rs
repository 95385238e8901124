//! `babymon-init` as PID 1 of new PID, mount, UTS and network namespaces
//! (`unshare --pid --mount --uts --net --fork`, with `--map-root-user` when
//! not root), on a test root with small shell services. A test plan turns
//! off every step that would touch the host (clock, sysctls, watchdog,
//! modules, block devices, device nodes); the hostname is set inside the
//! new UTS namespace only. Mounting FAT and the power key need a kernel
//! that has them: they are checked in the VM, not here.

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INIT: &str = env!("CARGO_BIN_EXE_babymon-init");

struct Root {
    dir: PathBuf,
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Root {
    fn new(name: &str, config: &str, services: &[(&str, &str)]) -> Root {
        let dir = std::env::temp_dir().join(format!("babymon-init-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in [
            "proc",
            "sys/class/leds/ACT",
            "dev",
            "run",
            "tmp",
            "boot",
            "data",
            "etc",
            "svc",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlay/etc");
        for f in ["passwd", "group"] {
            std::fs::copy(overlay.join(f), dir.join("etc").join(f)).unwrap();
        }
        // Stand-ins for device nodes (devtmpfs is not mounted in a test).
        std::fs::create_dir_all(dir.join("dev/snd")).unwrap();
        for node in ["video0", "snd/pcmC0D0c", "mmcblk0"] {
            std::fs::write(dir.join("dev").join(node), "").unwrap();
            std::fs::set_permissions(dir.join("dev").join(node), Permissions::from_mode(0o600))
                .unwrap();
        }
        std::fs::write(dir.join("sys/class/leds/ACT/trigger"), "mmc0\n").unwrap();
        std::fs::write(dir.join("sys/class/leds/ACT/brightness"), "1\n").unwrap();
        std::fs::write(dir.join("boot/babymon.toml"), config).unwrap();
        let mut plan = String::from(
            "skip = [\"devtmpfs\", \"sysfs\", \"modules\", \"uevents\", \"blockdev\", \"sysctl\",\n\
             \"cad\", \"clock\", \"watchdog\", \"input\"]\n",
        );
        for (name, body) in services {
            let script = dir.join("svc").join(format!("{name}.sh"));
            let text = format!("set -u\nexport OUT={}\n{body}\n", dir.display());
            std::fs::write(&script, text).unwrap();
            plan.push_str(&format!(
                "[[service]]\nname = \"{name}\"\ncommand = [\"/bin/sh\", \"{}\"]\n",
                script.display()
            ));
            if *name == "web" {
                plan.push_str(&format!("probe = \"127.0.0.1:{WEB_PORT}/\"\n"));
            }
        }
        std::fs::write(dir.join("plan.toml"), plan).unwrap();
        Root { dir }
    }

    fn start(&self) -> Child {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--mount", "--uts", "--net", "--fork"]);
        if !nix_root() {
            cmd.arg("--map-root-user");
        }
        cmd.arg(INIT)
            .arg("--root")
            .arg(&self.dir)
            .arg("--test-plan")
            .arg(self.dir.join("plan.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("init.log")).unwrap());
        cmd.spawn().expect("unshare (util-linux) must be installed")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn log(&self) -> String {
        self.read("init.log")
    }
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

/// Whether `gid` exists in this process's user namespace (and so in the
/// one init runs in).
fn maps_gid(gid: u32) -> bool {
    nix_root()
        && std::fs::read_to_string("/proc/self/gid_map")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                f.len() == 3 && f[0] <= u64::from(gid) && u64::from(gid) < f[0] + f[2]
            })
}

/// The host pid of init: the child of the unshare process.
fn init_pid(unshare: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let kids = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        if let Some(pid) = kids.split_whitespace().next().and_then(|p| p.parse().ok()) {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("unshare {unshare} started no child");
}

/// Processes whose parent is `parent`, with their state letter.
fn children(parent: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) S ppid ...
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = after.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent {
            out.push((pid, state));
        }
    }
    out
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to the test's init by its host pid.
fn send(pid: u32, signal: Signal) {
    let raw = i32::try_from(pid).expect("a pid fits in i32");
    nix::sys::signal::kill(Pid::from_raw(raw), signal)
        .unwrap_or_else(|e| panic!("{signal} to init ({pid}): {e}"));
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("init did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A service with a health probe: a real HTTP server inside init's own
/// network namespace, probed over its loopback.
const WEB_PORT: u16 = 18080;
const WEB: &str = "exec python3 -m http.server 18080 --bind 127.0.0.1 --directory \"$OUT/svc\"";

const LONG_RUNNING: &str = r#"trap 'echo NAME >> "$OUT/stopped"; exit 0' TERM
echo "hello from NAME"
while :; do sleep 0.1; done"#;

#[test]
fn supervises_restarts_reaps_and_powers_off_in_order() {
    let a = LONG_RUNNING.replace("NAME", "a");
    let c = LONG_RUNNING.replace("NAME", "c");
    let hostname = r#"uname -n > "$OUT/hostname"; grep SigBlk /proc/self/status > "$OUT/sigblk""#
        .to_string()
        + "\n"
        + &LONG_RUNNING.replace("NAME", "orphans");
    let orphans =
        format!("( setsid sh -c 'sleep 0.3; echo done > \"$OUT/orphan-done\"' & )\n{hostname}");
    let crash = r#"date +%s.%N >> "$OUT/crash-times"; echo "crashing"; exit 1"#;
    let config = "[system]\nhostname = \"nursery-test\"\n[camera]\nwidth = \"wide\"\n";
    let root = Root::new(
        "main",
        config,
        &[
            ("a", &a),
            ("crash", crash),
            ("orphans", &orphans),
            ("c", &c),
            ("web", WEB),
        ],
    );
    let mut unshare = root.start();
    let init = init_pid(unshare.id());

    // Restarts with growing delays: 1 s, 2 s, 4 s.
    wait_for("four crashes", Duration::from_secs(20), || {
        root.read("crash-times").lines().count() >= 4
    });
    let times: Vec<f64> = root
        .read("crash-times")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    println!("restart gaps: {gaps:?}");
    // Lower bounds are exact; upper bounds leave room for a busy machine.
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(*gap >= want - 0.05 && *gap < want + 1.5, "gaps {gaps:?}");
    }
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "growing delays {gaps:?}"
    );

    // The hostname was set in the test's own UTS namespace.
    assert_eq!(root.read("hostname").trim(), "nursery-test");
    // serve's one folder on /data, owned by its user (uid 1000 in the
    // overlay's passwd) when this namespace can give files that uid.
    let serve_data = std::fs::metadata(root.dir.join("data/babymon/serve"));
    if nix_root() {
        let meta = serve_data.expect("init makes /data/babymon/serve");
        assert_eq!(
            (meta.uid(), meta.permissions().mode() & 0o777),
            (1000, 0o700)
        );
    }
    // Camera and sound nodes go to the video and audio groups, 0660.
    let node = |n: &str| std::fs::metadata(root.dir.join("dev").join(n)).unwrap();
    let mode = |n: &str| node(n).permissions().mode() & 0o777;
    assert_eq!(
        (mode("video0"), mode("snd/pcmC0D0c"), mode("mmcblk0")),
        (0o660, 0o660, 0o600)
    );
    if maps_gid(44) && maps_gid(29) {
        // A user namespace that maps only root cannot give nodes group 44.
        assert_eq!((node("video0").gid(), node("snd/pcmC0D0c").gid()), (44, 29));
    }
    // Services do not inherit init's blocked signals.
    assert_eq!(root.read("sigblk").trim(), "SigBlk:\t0000000000000000");
    // The orphaned grandchild ran and was reaped: no zombie under init.
    wait_for("the orphan", Duration::from_secs(5), || {
        root.dir.join("orphan-done").exists()
    });
    std::thread::sleep(Duration::from_millis(300));
    let zombies: Vec<_> = children(init)
        .into_iter()
        .filter(|(_, s)| *s == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombies under init: {zombies:?}");

    // system.json lives on init's own /run: read it through its root.
    let status_path = format!(
        "/proc/{init}/root{}/run/babymon/system.json",
        root.dir.display()
    );
    let read_status = || -> serde_json::Value {
        let text = std::fs::read_to_string(&status_path).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    };
    let crash_of = |status: &serde_json::Value| -> serde_json::Value {
        let services = status["services"].as_array().cloned().unwrap_or_default();
        services
            .into_iter()
            .find(|s| s["name"] == "crash")
            .unwrap_or_default()
    };
    // It is written every 2 s.
    wait_for(
        "system.json with three restarts",
        Duration::from_secs(5),
        || crash_of(&read_status())["restarts"].as_u64() >= Some(3),
    );
    let status = read_status();
    let errors = status["config_errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("line 4: camera.width: ")),
        "{errors:?}"
    );
    assert_eq!(status["leds"], "config-error");
    // The probed service turns healthy once its probe passes (every 5 s).
    wait_for("web healthy", Duration::from_secs(8), || {
        let status = read_status();
        let services = status["services"].as_array().cloned().unwrap_or_default();
        services
            .iter()
            .any(|s| s["name"] == "web" && s["state"] == "healthy")
    });
    let crash_state = crash_of(&status);
    assert_eq!(status["services"][0]["name"], "a");
    assert_eq!(status["services"][0]["state"], "running");
    assert_eq!(crash_state["last_exit"], "exit 1");
    // The board LED: trigger off, blinking fast for the config error.
    assert_eq!(root.read("sys/class/leds/ACT/trigger"), "none");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        // A plain file here (sysfs in the device) may be read mid-write.
        let b = root.read("sys/class/leds/ACT/brightness");
        if !b.is_empty() {
            seen.insert(b);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec!["0", "1"],
        "fast blinking\n{}",
        root.log()
    );

    // Power off: services stop in reverse order, then reboot(2) ends the
    // namespace's init with SIGINT.
    let asked = Instant::now();
    send(init, Signal::SIGUSR2);
    let status = wait_exit(&mut unshare, Duration::from_secs(10));
    let took = asked.elapsed();
    println!("power off took {took:?}; unshare ended with {status:?}");
    let log = root.log();
    assert_eq!(
        status.signal(),
        Some(2),
        "init must end through reboot(2): {status:?}\n{log}"
    );
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?}\n{log}"
    );
    assert_eq!(root.read("stopped"), "c\norphans\na\n", "stop order\n{log}");
    let web = log.find("web: stopping").expect("web stopped");
    let c_stop = log.find("c: stopping").expect("c stopped");
    assert!(web < c_stop, "web started last, so it stops first");
    assert!(log.contains("a: hello from a"), "{log}");
    assert!(log.contains("crash: crashing"), "{log}");
    assert!(log.contains("line 4: camera.width: "), "{log}");
    assert!(log.contains("shutdown: power off now"), "{log}");
}

#[test]
fn sigterm_reboots_and_kills_a_service_that_ignores_term() {
    let a = LONG_RUNNING.replace("NAME", "a");
    let stubborn = r#"trap 'echo stubborn >> "$OUT/stopped"' TERM
echo "hello from stubborn"
while :; do sleep 0.1; done"#;
    let root = Root::new("reboot", "", &[("a", &a), ("stubborn", stubborn)]);
    let mut unshare = root.start();
    let init = init_pid(unshare.id());
    wait_for("both services", Duration::from_secs(10), || {
        let log = root.log();
        log.contains("a: hello from a") && log.contains("stubborn: hello from stubborn")
    });
    let asked = Instant::now();
    send(init, Signal::SIGTERM);
    let status = wait_exit(&mut unshare, Duration::from_secs(10));
    let took = asked.elapsed();
    let log = root.log();
    println!("reboot with a stubborn service took {took:?}");
    // In a PID namespace, reboot(RESTART) ends init with SIGHUP.
    assert_eq!(status.signal(), Some(1), "{status:?}\n{log}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(
        log.contains("stubborn: still running after 3 s, killing it"),
        "{log}"
    );
    // stubborn got TERM first (and ignored it), then a got its TERM.
    assert!(
        root.read("stopped").starts_with("stubborn\n"),
        "{}",
        root.read("stopped")
    );
    assert!(log.contains("shutdown: reboot now"), "{log}");
}

#[test]
fn bad_test_plan_leaves_init_running_in_the_safe_state() {
    let a = LONG_RUNNING.replace("NAME", "a");
    let root = Root::new("safe", "", &[("a", &a)]);
    std::fs::write(root.dir.join("plan.toml"), "skip = [\"nothing-known\"]\n").unwrap();
    let mut unshare = root.start();
    let init = init_pid(unshare.id());
    let status_path = format!(
        "/proc/{init}/root{}/run/babymon/system.json",
        root.dir.display()
    );
    wait_for(
        "the failed state in system.json",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&status_path).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            v["leds"] == "failed"
                && v["boot_errors"].as_array().is_some_and(|e| {
                    e.iter()
                        .any(|l| l.as_str().is_some_and(|l| l.starts_with("test plan")))
                })
        },
    );
    let text = std::fs::read_to_string(&status_path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["config_errors"].as_array().map(Vec::len),
        Some(0),
        "a boot failure is not a config error: {text}"
    );
    let log = root.log();
    assert!(log.contains("[ERROR] boot failed: test plan"), "{log}");
    assert!(
        !log.contains("hello from a"),
        "no service runs in the safe state\n{log}"
    );
    // Nothing that touches the machine ran: not even the fake nodes changed.
    let mode = std::fs::metadata(root.dir.join("dev/video0"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // It still answers power requests.
    send(init, Signal::SIGUSR2);
    let status = wait_exit(&mut unshare, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(2), "{status:?}\n{}", root.log());
}

#[test]
fn refuses_to_run_unless_pid_1() {
    let out = Command::new(INIT)
        .args(["--root", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not PID 1"));
    let help = Command::new(INIT).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--test-plan FILE"));
}
