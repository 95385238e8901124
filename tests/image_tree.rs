//! The Buildroot external tree and the image scripts, checked without
//! Buildroot: every file a defconfig, the genimage layout or a script names
//! exists, and the boot files carry the settings the device depends on.
//! (With a Buildroot tree, scripts/check-buildroot checks the rest.)

use std::fs;
use std::path::{Path, PathBuf};

const BOARDS: &[&str] = &["rpi3", "rpi4", "rpi5", "rpizero2w"];
const EXTERNAL_VAR: &str = "$(BR2_EXTERNAL_BABYMON_PATH)";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn defconfig(board: &str) -> String {
    read(&format!("buildroot/configs/babymon_{board}_defconfig"))
}

/// The value of a `BR2_...="..."` string option, unquoted.
fn option<'a>(defconfig: &'a str, name: &str) -> Option<&'a str> {
    defconfig
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

#[test]
fn the_defconfigs_are_the_boards() {
    let mut found: Vec<String> = fs::read_dir(root().join("buildroot/configs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let expected: Vec<String> = BOARDS
        .iter()
        .map(|b| format!("babymon_{b}_defconfig"))
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn every_file_a_defconfig_names_exists() {
    let buildroot_dir = std::env::var_os("BUILDROOT_DIR").map(PathBuf::from);
    for board in BOARDS {
        let text = defconfig(board);
        let mut named = 0;
        for line in text.lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            if !value.starts_with('"') {
                continue;
            }
            for word in value.trim_matches('"').split_whitespace() {
                if let Some(rest) = word.strip_prefix(EXTERNAL_VAR) {
                    let path = root().join("buildroot").join(rest.trim_start_matches('/'));
                    assert!(
                        path.exists(),
                        "babymon_{board}_defconfig: {name} names {word}, which does not exist"
                    );
                    named += 1;
                } else if word.starts_with("board/") {
                    // Relative to the Buildroot tree.
                    if let Some(dir) = &buildroot_dir {
                        assert!(
                            dir.join(word).exists(),
                            "babymon_{board}_defconfig: {name} names {word}, not in {}",
                            dir.display()
                        );
                    }
                }
            }
        }
        assert!(
            named >= 7,
            "babymon_{board}_defconfig names only {named} files of ours"
        );
    }
}

#[test]
fn each_defconfig_takes_its_own_board_files_and_the_common_ones() {
    for board in BOARDS {
        let text = defconfig(board);
        let own = |file: &str| format!("{EXTERNAL_VAR}/board/{board}/{file}");
        let common = |file: &str| format!("{EXTERNAL_VAR}/board/common/{file}");
        let want = [
            ("BR2_PACKAGE_RPI_FIRMWARE_CONFIG_FILE", own("config.txt")),
            ("BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE", own("cmdline.txt")),
            ("BR2_ROOTFS_POST_BUILD_SCRIPT", common("post-build.sh")),
            ("BR2_ROOTFS_POST_IMAGE_SCRIPT", common("post-image.sh")),
            (
                "BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES",
                common("busybox.fragment"),
            ),
            ("BR2_ROOTFS_OVERLAY", format!("{EXTERNAL_VAR}/../overlay")),
        ];
        for (name, value) in want {
            assert_eq!(
                option(&text, name),
                Some(value.as_str()),
                "babymon_{board}_defconfig: {name}"
            );
        }
        let fragments = option(&text, "BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES").unwrap_or("");
        assert!(
            fragments.contains(&common("linux.fragment")),
            "{board}: {fragments}"
        );
        for line in [
            "BR2_DOWNLOAD_FORCE_CHECK_HASHES=y",
            "BR2_INIT_NONE=y",
            "BR2_TARGET_ROOTFS_SQUASHFS=y",
            "BR2_PACKAGE_BABYMON=y",
            "BR2_PACKAGE_CLOUDFLARED=y",
            "BR2_PACKAGE_WPA_SUPPLICANT=y",
            "BR2_PACKAGE_E2FSPROGS=y",
            "BR2_PACKAGE_CA_CERTIFICATES=y",
            "BR2_PACKAGE_HOST_GENIMAGE=y",
            "BR2_PACKAGE_HOST_BMAP_TOOLS=y",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "babymon_{board}_defconfig lacks {line}"
            );
        }
        assert!(
            text.starts_with("BR2_aarch64=y\n"),
            "{board} is not aarch64"
        );
    }
}

#[test]
fn the_boot_files_set_what_the_device_relies_on() {
    for board in BOARDS {
        let cmdline = read(&format!("buildroot/board/{board}/cmdline.txt"));
        assert_eq!(
            cmdline.lines().count(),
            1,
            "{board}: cmdline.txt must be one line"
        );
        let words: Vec<&str> = cmdline.split_whitespace().collect();
        for want in [
            "root=/dev/mmcblk0p2",
            "rootfstype=squashfs",
            "ro",
            "printk.devkmsg=on",
        ] {
            assert!(words.contains(&want), "{board}: cmdline.txt lacks {want}");
        }
        assert!(
            words.iter().any(|w| w.starts_with("panic=")),
            "{board}: no panic="
        );

        let config: Vec<String> = read(&format!("buildroot/board/{board}/config.txt"))
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_string)
            .collect();
        let has = |s: &str| config.iter().any(|l| l == s);
        assert!(
            has("arm_64bit=1") && has("kernel=Image"),
            "{board}: 64-bit Image"
        );
        assert!(has("dtparam=watchdog=on"), "{board}: watchdog");
        // The Pi 5 has its own power button, no H.264 block and no camera
        // port libcamera drives.
        let vc4 = *board != "rpi5";
        assert_eq!(
            has("dtoverlay=gpio-shutdown"),
            vc4,
            "{board}: gpio-shutdown"
        );
        assert_eq!(
            has("camera_auto_detect=1"),
            vc4,
            "{board}: camera_auto_detect"
        );
        assert_eq!(
            config.iter().any(|l| l.starts_with("gpu_mem=")),
            vc4,
            "{board}: gpu_mem"
        );
    }
}

#[test]
fn the_kernel_and_busybox_fragments_turn_on_what_init_needs() {
    let linux = read("buildroot/board/common/linux.fragment");
    for want in [
        "CONFIG_SQUASHFS=y",
        "CONFIG_WATCHDOG=y",
        "CONFIG_LEDS_CLASS=y",
        "CONFIG_USB_VIDEO_CLASS=m",
        "CONFIG_SND_USB_AUDIO=m",
        "CONFIG_VIDEO_CODEC_BCM2835=m",
        "CONFIG_BRCMFMAC=m",
        "CONFIG_KEYBOARD_GPIO=m",
        "CONFIG_MODULE_DECOMPRESS=y",
    ] {
        assert!(
            linux.lines().any(|l| l == want),
            "linux.fragment lacks {want}"
        );
    }
    let busybox = read("buildroot/board/common/busybox.fragment");
    for want in [
        "# CONFIG_INIT is not set",
        "CONFIG_NTPD=y",
        "CONFIG_UDHCPC=y",
        "CONFIG_MODPROBE=y",
    ] {
        assert!(
            busybox.lines().any(|l| l == want),
            "busybox.fragment lacks {want}"
        );
    }
}

#[test]
fn every_image_the_genimage_layout_names_is_made() {
    let layout = read("buildroot/board/common/genimage.cfg.in");
    let defined: Vec<&str> = layout
        .lines()
        .filter_map(|l| l.strip_prefix("image ")?.strip_suffix(" {"))
        .collect();
    assert!(defined.contains(&"babymon.img"), "{defined:?}");
    // Buildroot makes rootfs.squashfs (BR2_TARGET_ROOTFS_SQUASHFS=y in
    // each defconfig, checked above); the rest are made in this file.
    let used: Vec<&str> = layout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image = \"")?.strip_suffix('"'))
        .collect();
    assert_eq!(used, ["boot.vfat", "rootfs.squashfs", "data.ext4"]);
    for image in used {
        assert!(
            defined.contains(&image) || image == "rootfs.squashfs",
            "genimage.cfg.in uses {image}, which nothing makes"
        );
    }
    assert!(
        layout.contains("#BOOT_FILES#"),
        "post-image.sh fills in #BOOT_FILES#"
    );
    let post_image = read("buildroot/board/common/post-image.sh");
    assert!(post_image.contains("babymon.toml"));
    assert!(post_image.contains("$board_dir/genimage.cfg.in"));
}

/// Paths in scripts that name files of this repository: `scripts/x`,
/// `tests/x`, `buildroot/x`, `overlay/x`, and in the board scripts
/// `$board_dir/x` and `$TARGET_DIR/x` (which comes from overlay/).
#[test]
fn every_file_a_script_names_exists() {
    let mut scripts: Vec<PathBuf> = Vec::new();
    for dir in ["scripts", "buildroot/board/common", "tests"] {
        for entry in fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap_or_default();
            if path.is_file() && text.starts_with("#!") {
                scripts.push(path);
            }
        }
    }
    assert!(scripts.len() >= 8, "{scripts:?}");
    let mut checked = 0;
    for script in &scripts {
        let text = fs::read_to_string(script).unwrap();
        let words = text.split(|c: char| !(c.is_ascii_alphanumeric() || "/._-$".contains(c)));
        // A path at the end of a sentence keeps no full stop.
        for word in words.map(|w| w.trim_end_matches('.')) {
            let target = if let Some(rest) = word.strip_prefix("$board_dir/") {
                root().join("buildroot/board/common").join(rest)
            } else if let Some(rest) = word.strip_prefix("$TARGET_DIR/") {
                root().join("overlay").join(rest)
            } else if ["scripts/", "tests/", "buildroot/", "overlay/"]
                .iter()
                .any(|p| word.starts_with(p))
            {
                root().join(word)
            } else {
                continue;
            };
            // Made by the scripts or by npm: output, cache and vendor folders.
            let rest = word
                .trim_start_matches("$board_dir/")
                .trim_start_matches("$TARGET_DIR/");
            if rest.contains('$')
                || rest.ends_with('/')
                || rest.contains("/vendor")
                || rest.contains("node_modules")
            {
                continue;
            }
            assert!(
                target.exists(),
                "{} names {word}, which does not exist",
                script.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} paths checked");
}
