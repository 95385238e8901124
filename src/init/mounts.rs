//! The early filesystems: `/proc`, `/sys`, `/dev` (devtmpfs), `/dev/pts`,
//! `/dev/shm`, `/run`, `/tmp`. A filesystem already mounted there (by the
//! kernel or an initramfs) is kept. The boot and data partitions are in
//! `blockdev`.

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};

#[derive(Debug, thiserror::Error)]
#[error("{fstype} on {target}: {errno}{hint}")]
pub struct MountError {
    pub fstype: &'static str,
    pub target: PathBuf,
    pub errno: nix::errno::Errno,
    pub hint: &'static str,
}

struct Spec {
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: &'static str,
    essential: bool,
    hint: &'static str,
}

/// Mount points listed in `proc/self/mountinfo` under `root`.
pub fn mounted(root: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap_or_default();
    parse_mountinfo(&text)
}

/// The mount points (field 5) of mountinfo text, with `\040` escapes undone.
pub fn parse_mountinfo(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ").replace("\\011", "\t")))
        .collect()
}

pub fn is_mounted(root: &Path, target: &Path) -> bool {
    mounted(root).iter().any(|m| m == target)
}

/// Mounts the early filesystems. Returns the essential failures; optional
/// ones are logged and skipped.
pub fn early(root: &Path, devtmpfs: bool, sysfs: bool) -> Vec<MountError> {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let specs = [
        Spec {
            target: "proc",
            fstype: "proc",
            flags: nodev,
            data: "",
            essential: true,
            hint: "",
        },
        Spec {
            target: "sys",
            fstype: "sysfs",
            flags: nodev,
            data: "",
            essential: sysfs,
            hint: "",
        },
        Spec {
            target: "dev",
            fstype: "devtmpfs",
            flags: MsFlags::MS_NOSUID,
            data: "mode=0755",
            essential: devtmpfs,
            hint: " (the kernel needs CONFIG_DEVTMPFS=y)",
        },
        Spec {
            target: "dev/pts",
            fstype: "devpts",
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            data: "mode=0620,ptmxmode=0666",
            essential: false,
            hint: "",
        },
        Spec {
            target: "dev/shm",
            fstype: "tmpfs",
            flags: nodev,
            data: "mode=1777",
            essential: false,
            hint: "",
        },
        Spec {
            target: "run",
            fstype: "tmpfs",
            flags: nodev,
            data: "mode=0755,size=16m",
            essential: true,
            hint: "",
        },
        Spec {
            target: "tmp",
            fstype: "tmpfs",
            flags: nodev,
            data: "mode=1777,size=64m",
            essential: false,
            hint: "",
        },
    ];
    let mut errors = Vec::new();
    for spec in &specs {
        if (spec.fstype == "sysfs" && !sysfs) || (spec.fstype == "devtmpfs" && !devtmpfs) {
            log::info!("{}: left as it is (test plan)", spec.target);
            continue;
        }
        let target = root.join(spec.target);
        let already = if spec.fstype == "proc" {
            target.join("self/mountinfo").exists()
        } else {
            is_mounted(root, &target)
        };
        if already {
            log::info!("{}: already mounted", target.display());
            continue;
        }
        let _ = std::fs::create_dir_all(&target);
        match mount(
            Some(spec.fstype),
            &target,
            Some(spec.fstype),
            spec.flags,
            Some(spec.data),
        ) {
            Ok(()) => log::info!("{}: {} mounted", target.display(), spec.fstype),
            Err(errno) => {
                let e = MountError {
                    fstype: spec.fstype,
                    target,
                    errno,
                    hint: spec.hint,
                };
                if spec.essential {
                    log::error!("{e}");
                    errors.push(e);
                } else {
                    log::warn!("{e}");
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_points() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n\
                    23 1 0:22 / /my\\040dir rw - tmpfs tmpfs rw\nshort line\n";
        assert_eq!(
            parse_mountinfo(text),
            vec![PathBuf::from("/proc"), PathBuf::from("/my dir")]
        );
    }
}
