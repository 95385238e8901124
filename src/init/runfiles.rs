//! The files services need before they start: `/run/babymon` (shared with
//! `serve`), `serve`'s home, the Wi-Fi config, and the
//! tunnel's token or credentials file, readable only by cloudflared; and
//! the one folder on `/data` that `serve` may write.

use std::path::{Path, PathBuf};

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
    let c = &init.loaded.config;
    if c.wifi.is_set() && !init.loaded.guard_failed("wifi") && init.plan.service.is_empty() {
        let text = services::wpa_conf(c);
        if let Err(e) =
            services::write_private(&init.at(services::WPA_CONF), text.as_bytes(), 0o600, None)
        {
            log::error!("wifi: {}: {e}", services::WPA_CONF);
        }
    }
}

/// `serve`'s folder on `/data`, when `/data` is mounted; true when it is
/// ready for `serve` to write.
pub(super) fn serve_data_ready(init: &Init) -> bool {
    if !init.data_mounted {
        return false;
    }
    let (passwd, groups) = accounts::read(&init.root);
    let Some(u) = accounts::find_user(&passwd, &groups, "babymon") else {
        log::warn!("user babymon is not in /etc/passwd; serve keeps nothing on /data");
        return false;
    };
    match prepare_serve_data(&init.at("data"), u.uid, u.gid) {
        Ok(dir) => {
            log::info!("boot: {} made for serve", dir.display());
            true
        }
        Err(e) => {
            log::warn!("{e}; serve's GStreamer registry stays under /run");
            false
        }
    }
}

/// `/data/babymon` (root's, 0755) and in it `serve`'s own folder
/// (`services::SERVE_DATA`, 0700, owned by the `babymon` user), where it
/// keeps its GStreamer registry across boots. A folder left by an older
/// layout is removed, so that `/data` holds only what init means to keep.
pub(super) fn prepare_serve_data(data: &Path, uid: u32, gid: u32) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let named = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| format!("{}: {e}", p.display())
    };
    let top = data.join("babymon");
    std::fs::create_dir_all(&top).map_err(named(&top))?;
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).map_err(named(&top))?;
    let old = top.join("gstreamer");
    if old.is_dir() {
        let _ = std::fs::remove_dir_all(&old);
    }
    let dir = top.join(services::SERVE_DATA_NAME);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(named(&dir)(e)),
    }
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(named(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(named(&dir))?;
    Ok(dir)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn serve_data_folder_is_owned_by_serve_and_old_layout_goes() {
        let data = std::env::temp_dir().join(format!("babymon-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(data.join("babymon/gstreamer")).unwrap();
        std::fs::write(data.join("babymon/gstreamer/registry.bin"), "old").unwrap();
        std::fs::write(data.join("babymon/clock"), "1").unwrap();
        let me = nix::unistd::Uid::current().as_raw();
        let my_gid = nix::unistd::Gid::current().as_raw();
        let dir = prepare_serve_data(&data, me, my_gid).unwrap();
        assert_eq!(dir, data.join("babymon/serve"));
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (me, my_gid));
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        let top = std::fs::metadata(data.join("babymon")).unwrap();
        assert_eq!(top.permissions().mode() & 0o777, 0o755);
        let mut left: Vec<_> = std::fs::read_dir(data.join("babymon"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["clock", "serve"]);
        // A second boot finds it in place.
        std::fs::write(dir.join("gstreamer-registry.bin"), "kept").unwrap();
        prepare_serve_data(&data, me, my_gid).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("gstreamer-registry.bin")).unwrap(),
            "kept"
        );
        // A file where the folder should be is an error naming it.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, "").unwrap();
        let e = prepare_serve_data(&data, me, my_gid).unwrap_err();
        assert!(e.contains("babymon/serve"), "{e}");
        std::fs::remove_dir_all(&data).unwrap();
    }
}
