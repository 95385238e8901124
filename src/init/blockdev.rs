//! The boot partition (FAT, read-only at `/boot`) and the data partition
//! (ext4, read-write at `/data`): which devices (kernel command line, Pi
//! defaults), waiting for them to appear, and repairing or remaking `/data`
//! when it does not mount. The device works without `/data`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::mounts;
use super::run;

pub const BOOT_DEFAULT: &str = "/dev/mmcblk0p1";
pub const DATA_DEFAULT: &str = "/dev/mmcblk0p3";
/// Modules the partitions may need, loaded when the kernel has them as
/// modules (the Pi's kernel has them built in).
pub const FS_MODULES: [&str; 6] = [
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_iso8859_1",
    "nls_utf8",
    "ext4",
];
const E2FSCK: &str = "/sbin/e2fsck";
const MKFS: &str = "/sbin/mkfs.ext4";

/// How long a device may take to show up (an SD card or USB disk probes
/// after init starts).
const DEVICE_WAIT: Duration = Duration::from_secs(5);

/// Boot and data devices from the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices {
    pub boot: String,
    pub data: String,
}

pub fn devices(cmdline: &str) -> Devices {
    let mut d = Devices {
        boot: BOOT_DEFAULT.into(),
        data: DATA_DEFAULT.into(),
    };
    for word in cmdline.split_whitespace() {
        if let Some(v) = word.strip_prefix("babymon.boot=") {
            d.boot = v.into();
        } else if let Some(v) = word.strip_prefix("babymon.data=") {
            d.data = v.into();
        }
    }
    d
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{device}: did not appear within {} s (check babymon.boot= / babymon.data= on the kernel command line)", DEVICE_WAIT.as_secs())]
    Missing { device: String },
    #[error("{device} on {target}: {errno}{hint}")]
    Mount {
        device: String,
        target: PathBuf,
        errno: nix::errno::Errno,
        hint: &'static str,
    },
}

fn wait_for(device: &Path) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEVICE_WAIT {
        if device.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    device.exists()
}

/// Maps a device name to its path under `root` (`/dev/x` -> `ROOT/dev/x`).
fn under(root: &Path, device: &str) -> PathBuf {
    root.join(device.trim_start_matches('/'))
}

/// The device's path under `root` once it has appeared, or `None` when
/// `target` is mounted already (by the kernel or an initramfs).
fn device_to_mount(
    root: &Path,
    device: &str,
    target: &Path,
) -> Result<Option<PathBuf>, BlockError> {
    if mounts::is_mounted(root, target) {
        log::info!("{}: already mounted", target.display());
        return Ok(None);
    }
    let dev = under(root, device);
    if !wait_for(&dev) {
        return Err(BlockError::Missing {
            device: device.into(),
        });
    }
    Ok(Some(dev))
}

/// Mounts the boot partition read-only, readable by the `babymon` group
/// (`serve` reads the config) and nobody else.
pub fn mount_boot(root: &Path, device: &str, gid: Option<u32>) -> Result<(), BlockError> {
    let target = root.join("boot");
    let Some(dev) = device_to_mount(root, device, &target)? else {
        return Ok(());
    };
    let data = match gid {
        Some(g) => format!("fmask=0137,dmask=0027,gid={g}"),
        None => "fmask=0133,dmask=0022".into(),
    };
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some(&dev),
        &target,
        Some("vfat"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|errno| BlockError::Mount {
        device: device.into(),
        target: target.clone(),
        errno,
        hint: " (the kernel needs vfat and nls_cp437, nls_iso8859_1 built in or loaded)",
    })?;
    log::info!("{}: {device} mounted read-only", target.display());
    Ok(())
}

fn mount_data_once(dev: &Path, target: &Path) -> nix::Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
    mount(Some(dev), target, Some("ext4"), flags, Some(""))
}

/// Mounts `/data`; on failure checks and repairs it, and if that fails too
/// makes a new filesystem (it holds nothing that cannot be made again).
pub fn mount_data(root: &Path, device: &str) -> Result<(), BlockError> {
    let target = root.join("data");
    let Some(dev) = device_to_mount(root, device, &target)? else {
        return Ok(());
    };
    let _ = std::fs::create_dir_all(&target);
    let dev_s = dev.to_string_lossy().into_owned();
    let first = match mount_data_once(&dev, &target) {
        Ok(()) => {
            log::info!("{}: {device} mounted", target.display());
            return Ok(());
        }
        Err(e) => e,
    };
    log::warn!(
        "{}: {device} did not mount ({first}); checking it",
        target.display()
    );
    let fsck = run::run(&[E2FSCK, "-p", &dev_s], Duration::from_secs(120));
    match &fsck {
        Ok(code) if *code < 4 => {
            if mount_data_once(&dev, &target).is_ok() {
                log::info!("{}: {device} repaired and mounted", target.display());
                return Ok(());
            }
        }
        Ok(code) => log::warn!("{device}: e2fsck could not repair it (exit {code})"),
        Err(e) => log::warn!("{e}"),
    }
    log::warn!("{device}: making a new ext4 filesystem (the saved clock and logs are lost)");
    match run::run(
        &[MKFS, "-F", "-q", "-L", "babymon-data", &dev_s],
        Duration::from_secs(180),
    ) {
        Ok(0) => {}
        Ok(code) => log::warn!("{device}: mkfs.ext4 failed (exit {code})"),
        Err(e) => log::warn!("{e}"),
    }
    mount_data_once(&dev, &target).map_err(|errno| BlockError::Mount {
        device: device.into(),
        target: target.clone(),
        errno,
        hint: " (the kernel needs ext4; /sbin/e2fsck and /sbin/mkfs.ext4 come from e2fsprogs)",
    })?;
    log::info!("{}: {device} made anew and mounted", target.display());
    Ok(())
}

/// Unmounts `/data` at shutdown (read-only remount if it is busy).
pub fn unmount_data(root: &Path) {
    let target = root.join("data");
    if !mounts::is_mounted(root, &target) {
        return;
    }
    match umount2(&target, MntFlags::empty()) {
        Ok(()) => log::info!("{}: unmounted", target.display()),
        Err(e) => {
            log::warn!("{}: {e}; remounting read-only", target.display());
            let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            if let Err(e) = mount(None::<&str>, &target, None::<&str>, flags, None::<&str>) {
                log::warn!("{}: read-only remount: {e}", target.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_and_defaults() {
        assert_eq!(
            devices("console=ttyAMA0 root=/dev/vda ro"),
            Devices {
                boot: BOOT_DEFAULT.into(),
                data: DATA_DEFAULT.into()
            }
        );
        assert_eq!(
            devices("babymon.boot=/dev/vdb babymon.data=/dev/vdc panic=-1"),
            Devices {
                boot: "/dev/vdb".into(),
                data: "/dev/vdc".into()
            }
        );
        assert_eq!(
            under(Path::new("/r"), "/dev/vdb"),
            PathBuf::from("/r/dev/vdb")
        );
    }
}
