//! Device nodes that an unprivileged `serve` must open: devtmpfs makes them
//! root's with mode 0600, and without udev init hands them to the `video`
//! and `audio` groups, at boot and on every uevent.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The group a device node under `/dev` belongs to (`video0`,
/// `snd/pcmC0D0c`, `dma_heap/linux,cma`).
pub fn group_for(devname: &str) -> Option<&'static str> {
    let video_prefixes = [
        "video",
        "media",
        "v4l-subdev",
        "vchiq",
        "vcsm",
        "rpivid",
        "dma_heap/",
    ];
    if video_prefixes.iter().any(|p| devname.starts_with(p)) {
        Some("video")
    } else if devname.starts_with("snd/") {
        Some("audio")
    } else {
        None
    }
}

/// Gives one node its group and mode 0660 (0664 would add nothing).
pub fn fix(dev: &Path, devname: &str, gid_of: &dyn Fn(&str) -> Option<u32>) {
    let Some(gid) = group_for(devname).and_then(gid_of) else {
        return;
    };
    let path = dev.join(devname);
    let owned = std::os::unix::fs::chown(&path, None, Some(gid));
    let moded = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660));
    if let Err(e) = owned.and(moded) {
        log::warn!("device {}: {e}", path.display());
    }
}

/// Fixes every node under `dev` (one level of folders down).
pub fn fix_all(dev: &Path, gid_of: &dyn Fn(&str) -> Option<u32>) -> usize {
    let mut count = 0;
    for name in names(dev, "") {
        if group_for(&name).is_some() {
            fix(dev, &name, gid_of);
            count += 1;
        }
    }
    count
}

fn names(dev: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dev.join(prefix)) else {
        return out;
    };
    for e in entries.flatten() {
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        match e.file_type() {
            Ok(t) if t.is_dir() && prefix.is_empty() => out.extend(names(dev, &format!("{name}/"))),
            Ok(t) if !t.is_dir() && !t.is_symlink() => out.push(name),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups() {
        assert_eq!(group_for("video0"), Some("video"));
        assert_eq!(group_for("media1"), Some("video"));
        assert_eq!(group_for("v4l-subdev2"), Some("video"));
        assert_eq!(group_for("dma_heap/linux,cma"), Some("video"));
        assert_eq!(group_for("snd/pcmC0D0c"), Some("audio"));
        assert_eq!(group_for("snd/controlC0"), Some("audio"));
        assert_eq!(group_for("mmcblk0p3"), None);
        assert_eq!(group_for("console"), None);
    }

    #[test]
    fn fixes_modes_in_a_fake_dev() {
        let dev = std::env::temp_dir().join(format!("babymon-dev-{}", std::process::id()));
        std::fs::create_dir_all(dev.join("snd")).unwrap();
        for n in ["video0", "snd/pcmC0D0c", "null"] {
            std::fs::write(dev.join(n), "").unwrap();
            std::fs::set_permissions(dev.join(n), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let gid = nix::unistd::getgid().as_raw();
        let fixed = fix_all(&dev, &|_| Some(gid));
        assert_eq!(fixed, 2);
        let mode = |n: &str| std::fs::metadata(dev.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode("video0"), mode("snd/pcmC0D0c"), mode("null")),
            (0o660, 0o660, 0o600)
        );
        std::fs::remove_dir_all(&dev).unwrap();
    }
}
