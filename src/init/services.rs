//! Which services the device runs, with their exact command lines, users
//! and probes, built from the config (or a test plan); and the files some
//! of them need first (the Wi-Fi config, the tunnel token file). Starting
//! and watching processes is in `spawn`; restart policy in `supervisor`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, Loaded};

use super::health::Probe;
use super::supervisor::UnitSpec;
use super::testplan::TestPlan;

pub const BABYMON: &str = "/usr/bin/babymon";
pub const CLOUDFLARED: &str = "/usr/bin/cloudflared";
pub const WPA_SUPPLICANT: &str = "/usr/sbin/wpa_supplicant";
pub const BUSYBOX: &str = "/bin/busybox";
pub const SHELL: &str = "/bin/sh";
pub const METRICS: &str = "127.0.0.1:20241";
/// cloudflared's folder under `/run`, readable only by its user.
pub const TUNNEL_DIR: &str = "run/babymon/cloudflared";
pub const WPA_CONF: &str = "run/babymon/wpa_supplicant.conf";
const NTP_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub name: String,
    pub argv: Vec<String>,
    /// Runs as this user of `/etc/passwd`; root when `None`.
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    pub probe: Option<Probe>,
    pub needs_clock: bool,
    /// A job run again this long after it succeeds.
    pub every: Option<Duration>,
    /// Killed when it runs longer (jobs only).
    pub time_limit: Option<Duration>,
    /// Runs on the console (the serial shell) instead of into the log.
    pub console: bool,
}

impl ServiceSpec {
    fn new(name: &str, argv: &[&str]) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            user: None,
            env: Vec::new(),
            probe: None,
            needs_clock: false,
            every: None,
            time_limit: None,
            console: false,
        }
    }

    pub fn unit(&self) -> UnitSpec {
        UnitSpec {
            name: self.name.clone(),
            has_probe: self.probe.is_some(),
            needs_clock: self.needs_clock,
            every: self.every,
        }
    }
}

/// What the plan depends on besides the config.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub ethernet: Vec<String>,
    pub wireless: Vec<String>,
    pub data_mounted: bool,
    /// `/usr/sbin/ntpd` exists (else `busybox ntpd` is used).
    pub ntpd_link: bool,
    /// The config file exists and is passed to `serve`.
    pub config_path: Option<PathBuf>,
}

/// The services in start order: network, NTP, `serve`, the tunnel, the
/// serial shell.
pub fn plan(loaded: &Loaded, m: &Machine) -> Vec<ServiceSpec> {
    let c: &Config = &loaded.config;
    let mut out = Vec::new();
    if let Some(eth) = m.ethernet.first() {
        out.push(dhcp(eth));
    }
    if c.wifi.is_set() && !loaded.guard_failed("wifi") {
        let iface = m.wireless.first().map_or("wlan0", String::as_str);
        let conf = format!("/{WPA_CONF}");
        out.push(ServiceSpec::new(
            "wpa_supplicant",
            &[
                WPA_SUPPLICANT,
                "-i",
                iface,
                "-c",
                &conf,
                "-D",
                "nl80211,wext",
            ],
        ));
        out.push(dhcp(iface));
    }
    let mut ntp = if m.ntpd_link {
        ServiceSpec::new("ntp", &["/usr/sbin/ntpd", "-n", "-q"])
    } else {
        ServiceSpec::new("ntp", &[BUSYBOX, "ntpd", "-n", "-q"])
    };
    for server in &c.system.ntp_servers {
        ntp.argv.push("-p".into());
        ntp.argv.push(server.clone());
    }
    ntp.every = Some(NTP_EVERY);
    ntp.time_limit = Some(Duration::from_secs(60));
    out.push(ntp);

    let mut serve = ServiceSpec::new("serve", &[BABYMON, "serve"]);
    if let Some(path) = &m.config_path {
        serve.argv.push("--config".into());
        serve.argv.push(path.to_string_lossy().into_owned());
    }
    serve.user = Some("babymon".into());
    let registry = if m.data_mounted {
        "/data/babymon/gstreamer/registry.bin"
    } else {
        "/run/babymon/home/gstreamer-registry.bin"
    };
    serve.env = vec![
        ("GST_REGISTRY".into(), registry.into()),
        ("HOME".into(), "/run/babymon/home".into()),
    ];
    serve.probe = Probe::parse(&format!("127.0.0.1:{}/healthz", c.viewer.port));
    out.push(serve);

    if c.tunnel.is_set() && !loaded.guard_failed("tunnel") {
        let mut argv = vec![
            CLOUDFLARED.to_string(),
            "tunnel".into(),
            "--no-autoupdate".into(),
            "--metrics".into(),
            METRICS.into(),
            "run".into(),
        ];
        if c.tunnel.token.is_set() {
            argv.extend(["--token-file".into(), format!("/{TUNNEL_DIR}/token")]);
        } else {
            argv.extend([
                "--credentials-file".into(),
                format!("/{TUNNEL_DIR}/credentials.json"),
                c.tunnel.tunnel_id.clone(),
            ]);
        }
        out.push(ServiceSpec {
            argv,
            user: Some("cloudflared".into()),
            env: vec![("HOME".into(), format!("/{TUNNEL_DIR}"))],
            probe: Probe::parse(&format!("{METRICS}/ready")),
            needs_clock: true,
            ..ServiceSpec::new("cloudflared", &[])
        });
    }
    if c.system.serial_shell {
        out.push(ServiceSpec {
            console: true,
            ..ServiceSpec::new("shell", &[SHELL, "-l"])
        });
    }
    out
}

fn dhcp(iface: &str) -> ServiceSpec {
    ServiceSpec::new(
        &format!("dhcp-{iface}"),
        &[BUSYBOX, "udhcpc", "-f", "-i", iface],
    )
}

/// The services a test plan names, instead of the device's.
pub fn from_test_plan(plan: &TestPlan) -> Vec<ServiceSpec> {
    plan.service
        .iter()
        .map(|s| ServiceSpec {
            argv: s.command.clone(),
            user: s.user.clone(),
            probe: s.probe.as_deref().and_then(Probe::parse),
            needs_clock: s.needs_clock,
            ..ServiceSpec::new(&s.name, &[])
        })
        .collect()
}

/// `wpa_supplicant.conf` text. The SSID is hex so that any name works; a
/// password with a quote or a line break cannot be written quoted.
pub fn wpa_conf(c: &Config) -> Result<String, &'static str> {
    let hex: String = c.wifi.ssid.bytes().map(|b| format!("{b:02x}")).collect();
    let pass = c.wifi.password.expose();
    if pass.contains(['"', '\n', '\r']) {
        // FIXME: write such a password as a PSK (PBKDF2 of SSID and password).
        return Err(
            "the Wi-Fi password has a quote or a line break, which wpa_supplicant cannot take quoted",
        );
    }
    let key = if c.wifi.password.is_set() {
        format!("\tpsk=\"{pass}\"\n")
    } else {
        "\tkey_mgmt=NONE\n".to_string()
    };
    let country = if c.wifi.country.is_empty() {
        String::new()
    } else {
        format!("country={}\n", c.wifi.country)
    };
    Ok(format!(
        "ctrl_interface=/run/wpa_supplicant\n{country}network={{\n\tssid={hex}\n\tscan_ssid=1\n{key}}}\n"
    ))
}

/// Writes `text` to `path` with `mode`, owned by `owner` (uid, gid).
pub fn write_private(
    path: &Path,
    text: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(text)?;
    }
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn names(s: &[ServiceSpec]) -> Vec<&str> {
        s.iter().map(|s| s.name.as_str()).collect()
    }

    fn machine() -> Machine {
        Machine {
            ethernet: vec!["eth0".into()],
            wireless: vec!["wlan0".into()],
            config_path: Some("/boot/babymon.toml".into()),
            ..Default::default()
        }
    }

    #[test]
    fn full_device_plan() {
        let loaded = parse(
            "[wifi]\nssid = \"Home\"\npassword = \"correct horse\"\ncountry = \"DE\"\n\
             [tunnel]\ntoken = \"eyJhIjoiYiJ9\"\n[system]\nserial_shell = true\n",
        );
        assert!(loaded.errors().next().is_none(), "{:?}", loaded.problems);
        let p = plan(&loaded, &machine());
        assert_eq!(
            names(&p),
            vec![
                "dhcp-eth0",
                "wpa_supplicant",
                "dhcp-wlan0",
                "ntp",
                "serve",
                "cloudflared",
                "shell"
            ]
        );
        let cf = &p[5];
        assert_eq!(
            cf.argv,
            vec![
                "/usr/bin/cloudflared",
                "tunnel",
                "--no-autoupdate",
                "--metrics",
                "127.0.0.1:20241",
                "run",
                "--token-file",
                "/run/babymon/cloudflared/token"
            ]
        );
        assert!(
            !cf.argv.iter().any(|a| a.contains("eyJ")),
            "token never on a command line"
        );
        assert!(cf.needs_clock && cf.user.as_deref() == Some("cloudflared"));
        assert_eq!(cf.probe, Probe::parse("127.0.0.1:20241/ready"));
        let serve = &p[4];
        assert_eq!(
            serve.argv,
            vec![
                "/usr/bin/babymon",
                "serve",
                "--config",
                "/boot/babymon.toml"
            ]
        );
        assert_eq!(serve.user.as_deref(), Some("babymon"));
        assert_eq!(serve.probe, Probe::parse("127.0.0.1:8080/healthz"));
        assert!(p[3].every.is_some() && p[3].argv.contains(&"time.cloudflare.com".to_string()));
        assert!(p[6].console);
        let conf = wpa_conf(&loaded.config).unwrap();
        assert!(conf.contains("ssid=486f6d65\n") && conf.contains("country=DE\n"));
        assert!(conf.contains("psk=\"correct horse\""));
    }

    #[test]
    fn bad_token_keeps_tunnel_off() {
        let loaded = parse("[tunnel]\ntoken = 12\n");
        assert!(loaded.guard_failed("tunnel"));
        let p = plan(&loaded, &machine());
        assert!(!names(&p).contains(&"cloudflared"));
        assert!(names(&p).contains(&"serve"));
    }

    #[test]
    fn defaults_have_no_wifi_tunnel_or_shell() {
        let p = plan(&parse(""), &Machine::default());
        assert_eq!(names(&p), vec!["ntp", "serve"]);
        assert_eq!(p[1].argv, vec!["/usr/bin/babymon", "serve"]);
        assert!(p[1].env.contains(&(
            "GST_REGISTRY".into(),
            "/run/babymon/home/gstreamer-registry.bin".into()
        )));
    }

    #[test]
    fn private_file_mode() {
        let dir = std::env::temp_dir().join(format!("babymon-priv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        write_private(&path, b"secret", 0o400, None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
