//! The files services need before they start: `/run/babymon` (shared with
//! `serve`), `serve`'s home and registry folder, the Wi-Fi config, and the
//! tunnel's token or credentials file, readable only by cloudflared.

use super::{Init, accounts, run_dir, services};

/// `/run/babymon`: root's, writable by the `babymon` group (for
/// `serve.json`), sticky so that `serve` cannot replace `system.json`;
/// `serve`'s home under it.
pub(super) fn prepare_run_dir(init: &Init) {
    use std::os::unix::fs::PermissionsExt;
    let dir = run_dir(init);
    let (passwd, groups) = accounts::read(&init.root);
    let babymon = accounts::find_user(&passwd, &groups, "babymon");
    let _ = std::fs::create_dir_all(dir.join("home"));
    if let Some(u) = &babymon {
        let _ = std::os::unix::fs::chown(&dir, Some(0), Some(u.gid));
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1775));
        let _ = std::os::unix::fs::chown(dir.join("home"), Some(u.uid), Some(u.gid));
        let _ = std::fs::set_permissions(dir.join("home"), std::fs::Permissions::from_mode(0o700));
    }
    if let (Some(u), true) = (&babymon, init.data_mounted) {
        // serve keeps its GStreamer registry across boots here.
        let gst = init.at("data/babymon/gstreamer");
        let made = std::fs::create_dir_all(&gst)
            .and_then(|()| std::os::unix::fs::chown(&gst, Some(u.uid), Some(u.gid)));
        if let Err(e) = made {
            log::warn!("{}: {e}", gst.display());
        }
    }
    let c = &init.loaded.config;
    if c.wifi.is_set() && !init.loaded.guard_failed("wifi") && init.plan.service.is_empty() {
        match services::wpa_conf(c) {
            Ok(text) => {
                if let Err(e) = services::write_private(
                    &init.at(services::WPA_CONF),
                    text.as_bytes(),
                    0o600,
                    None,
                ) {
                    log::error!("wifi: {}: {e}", services::WPA_CONF);
                }
            }
            Err(e) => log::error!("wifi: {e}"),
        }
    }
}

/// cloudflared's folder and its token (or credentials) file, readable only
/// by its user. The token is never logged.
pub(super) fn prepare_tunnel(init: &Init) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let (passwd, groups) = accounts::read(&init.root);
    let u = accounts::find_user(&passwd, &groups, "cloudflared")
        .ok_or("user cloudflared is not in /etc/passwd")?;
    let dir = init.at(services::TUNNEL_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let t = &init.loaded.config.tunnel;
    let (name, bytes) = if t.token.is_set() {
        ("token", t.token.expose().as_bytes().to_vec())
    } else {
        let src = init
            .at("boot")
            .join(t.credentials_file.trim_start_matches("/boot/"));
        let bytes = std::fs::read(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        ("credentials.json", bytes)
    };
    services::write_private(&dir.join(name), &bytes, 0o400, Some((u.uid, u.gid)))
        .map_err(|e| format!("{}: {e}", dir.join(name).display()))
}
