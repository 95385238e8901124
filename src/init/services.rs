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
/// `serve`'s own folder under `/data/babymon`, made by init for its user.
pub const SERVE_DATA_NAME: &str = "serve";
/// Where `serve` keeps its GStreamer registry across boots.
pub const SERVE_REGISTRY: &str = "/data/babymon/serve/gstreamer-registry.bin";
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

/// The NTP client found on the root filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NtpClient {
    /// `/usr/sbin/ntpd` (a busybox link on the Pi image).
    Link,
    /// The `ntpd` applet of `/bin/busybox`, which has no link.
    BusyboxApplet,
    /// None: Debian's busybox, or a Buildroot busybox without the applet.
    #[default]
    Missing,
}

impl NtpClient {
    /// Decides from whether `/usr/sbin/ntpd` exists and from the output of
    /// `busybox --list` (`None` when busybox is missing or failed).
    pub fn decide(ntpd_link: bool, busybox_list: Option<&str>) -> NtpClient {
        if ntpd_link {
            NtpClient::Link
        } else if busybox_list.is_some_and(|l| l.lines().any(|a| a.trim() == "ntpd")) {
            NtpClient::BusyboxApplet
        } else {
            NtpClient::Missing
        }
    }
}

/// What the plan depends on besides the config.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub ethernet: Vec<String>,
    pub wireless: Vec<String>,
    /// `/data` is mounted and `serve`'s folder on it is ready.
    pub data_mounted: bool,
    /// The NTP client this root has, if any.
    pub ntp: NtpClient,
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
    let ntp = match m.ntp {
        NtpClient::Link => Some(ServiceSpec::new("ntp", &["/usr/sbin/ntpd", "-n", "-q"])),
        NtpClient::BusyboxApplet => Some(ServiceSpec::new("ntp", &[BUSYBOX, "ntpd", "-n", "-q"])),
        // Not started at all: a missing program would only crash-loop.
        NtpClient::Missing => None,
    };
    if let Some(mut ntp) = ntp {
        for server in &c.system.ntp_servers {
            ntp.argv.push("-p".into());
            ntp.argv.push(server.clone());
        }
        ntp.every = Some(NTP_EVERY);
        ntp.time_limit = Some(Duration::from_secs(60));
        out.push(ntp);
    }

    let mut serve = ServiceSpec::new("serve", &[BABYMON, "serve"]);
    if let Some(path) = &m.config_path {
        serve.argv.push("--config".into());
        serve.argv.push(path.to_string_lossy().into_owned());
    }
    serve.user = Some("babymon".into());
    let registry = if m.data_mounted {
        SERVE_REGISTRY
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

/// `wpa_supplicant.conf` text. The SSID is written in hex so that any name
/// works, and the password as the key WPA derives from it (so no password
/// lies in `/run`, and a quote or a line break in it needs no escaping).
// FIXME: a WPA3-only (SAE) network cannot be joined: SAE needs the
// password itself (`sae_password`, `key_mgmt=SAE`), not the derived key.
// WPA2 and WPA2/WPA3 transition networks work.
pub fn wpa_conf(c: &Config) -> String {
    let ssid = c.wifi.ssid.as_bytes();
    let key = if c.wifi.password.is_set() {
        format!("\tpsk={}\n", hex(&wpa_psk(c.wifi.password.expose(), ssid)))
    } else {
        "\tkey_mgmt=NONE\n".to_string()
    };
    let country = if c.wifi.country.is_empty() {
        String::new()
    } else {
        format!("country={}\n", c.wifi.country)
    };
    format!(
        "ctrl_interface=/run/wpa_supplicant\n{country}network={{\n\tssid={}\n\tscan_ssid=1\n{key}}}\n",
        hex(ssid)
    )
}

/// The WPA pre-shared key of IEEE 802.11i: PBKDF2-HMAC-SHA1 of the
/// password, salted with the SSID, 4096 rounds, 32 bytes.
pub fn wpa_psk(password: &str, ssid: &[u8]) -> [u8; 32] {
    pbkdf2::pbkdf2_hmac_array::<sha1::Sha1, 32>(password.as_bytes(), ssid, 4096)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
            ntp: NtpClient::Link,
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
        let conf = wpa_conf(&loaded.config);
        assert!(conf.contains("ssid=486f6d65\n") && conf.contains("country=DE\n"));
        // Python's hashlib.pbkdf2_hmac("sha1", b"correct horse", b"Home", 4096, 32).
        assert!(
            conf.contains(
                "\tpsk=474ba82aa7ecbb0ee0d6a6f625529213ba1e52c48f85417392be8654a469b297\n"
            ),
            "{conf}"
        );
        assert!(!conf.contains("correct horse"), "{conf}");
    }

    #[test]
    fn wpa_psk_matches_ieee_802_11i_vectors() {
        let cases = [
            (
                "password",
                "IEEE",
                "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e",
            ),
            (
                "ThisIsAPassword",
                "ThisIsASSID",
                "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af",
            ),
        ];
        for (password, ssid, want) in cases {
            assert_eq!(hex(&wpa_psk(password, ssid.as_bytes())), want, "{ssid}");
        }
    }

    #[test]
    fn a_password_with_a_quote_or_line_break_becomes_a_key_too() {
        let loaded = parse("[wifi]\nssid = \"Home\"\npassword = \"say \\\"hi\\\"\\nok\"\n");
        assert_eq!(loaded.errors().count(), 0);
        let conf = wpa_conf(&loaded.config);
        // hashlib.pbkdf2_hmac("sha1", b'say "hi"\nok', b"Home", 4096, 32).
        assert!(
            conf.contains(
                "\tpsk=7955503435f52af5a3b4a0bfe0115146345a1b6ce81f4ddf4d8826694ec93be2\n"
            ),
            "{conf}"
        );
        assert_eq!(conf.lines().count(), 6, "{conf}");
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
    fn ntp_client_decision() {
        use NtpClient::*;
        let with = "[\n[[\nash\nntpd\nudhcpc\n";
        let without = "[\n[[\nash\nntpdate\nudhcpc\n";
        assert_eq!(NtpClient::decide(true, None), Link);
        assert_eq!(NtpClient::decide(true, Some(without)), Link);
        assert_eq!(NtpClient::decide(false, Some(with)), BusyboxApplet);
        assert_eq!(NtpClient::decide(false, Some(without)), Missing);
        assert_eq!(NtpClient::decide(false, Some("")), Missing);
        assert_eq!(NtpClient::decide(false, None), Missing);
        let loaded = parse("");
        let argv = |ntp| {
            let m = Machine { ntp, ..machine() };
            plan(&loaded, &m)
                .into_iter()
                .find(|s| s.name == "ntp")
                .map(|s| s.argv)
        };
        assert_eq!(
            argv(Link).unwrap()[..3],
            ["/usr/sbin/ntpd", "-n", "-q"].map(String::from)
        );
        assert_eq!(
            argv(BusyboxApplet).unwrap()[..4],
            ["/bin/busybox", "ntpd", "-n", "-q"].map(String::from)
        );
        assert_eq!(argv(Missing), None, "no NTP service without a client");
        let m = Machine {
            ntp: Missing,
            ..machine()
        };
        assert_eq!(names(&plan(&loaded, &m)), vec!["dhcp-eth0", "serve"]);
    }

    #[test]
    fn defaults_have_no_wifi_tunnel_or_shell() {
        let m = Machine {
            ntp: NtpClient::BusyboxApplet,
            ..Default::default()
        };
        let p = plan(&parse(""), &m);
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
