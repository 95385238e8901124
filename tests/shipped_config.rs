//! The `babymon.toml` that ships on the SD card's boot partition, checked
//! against the config code: it names every known key and no other, each
//! with a comment, its values are the defaults, its switched-off examples
//! are valid, and the real `babymon check-config` accepts it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use babymon::config::{self, Config, keys};

/// Where the image build takes the file from (post-image.sh copies it to
/// the boot partition).
const SHIPPED: &str = "overlay/usr/share/babymon/babymon.toml";

fn shipped_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED)
}

fn shipped() -> String {
    let path = shipped_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One key line of the file: `name = value`, or `#name = value` for a key
/// shipped switched off (explanations are `# text`, with a space).
struct KeyLine {
    line: usize,
    name: String,
    enabled: bool,
}

fn key_lines(text: &str) -> Vec<KeyLine> {
    let mut section = String::new();
    let mut found = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            continue;
        }
        let (enabled, body) = match line.strip_prefix('#') {
            Some(rest) => (false, rest),
            None => (true, line),
        };
        let Some((key, _)) = body.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            continue;
        }
        found.push(KeyLine {
            line: i + 1,
            name: format!("{section}.{key}"),
            enabled,
        });
    }
    found
}

/// The file with every switched-off key switched on.
fn all_enabled(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_known_key_is_in_the_shipped_file_and_no_other() {
    let text = shipped();
    let in_file: Vec<String> = key_lines(&text).into_iter().map(|k| k.name).collect();
    let unique: BTreeSet<&String> = in_file.iter().collect();
    assert_eq!(
        unique.len(),
        in_file.len(),
        "a key appears twice: {in_file:?}"
    );

    let known: BTreeSet<&str> = keys::KEYS.iter().map(|k| k.name).collect();
    let missing: Vec<&&str> = known
        .iter()
        .filter(|k| !unique.iter().any(|f| f.as_str() == **k))
        .collect();
    let unknown: Vec<&&String> = unique
        .iter()
        .filter(|f| !known.contains(f.as_str()))
        .collect();
    assert!(missing.is_empty(), "{SHIPPED} lacks the keys {missing:?}");
    assert!(
        unknown.is_empty(),
        "{SHIPPED} has keys the code does not know: {unknown:?}"
    );
}

#[test]
fn every_key_has_a_comment_with_its_default() {
    let text = shipped();
    let lines: Vec<&str> = text.lines().collect();
    for key in key_lines(&text) {
        let above = lines[key.line - 2];
        assert!(
            above.starts_with("# ") && above.contains("default"),
            "{SHIPPED}:{}: {} needs a comment line above it saying what it does and its default, found {above:?}",
            key.line,
            key.name
        );
    }
}

#[test]
fn the_shipped_values_are_the_defaults() {
    let loaded = config::parse(&shipped());
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.config, Config::default());
    // The keys shipped switched off are exactly those with no default value.
    let off: Vec<String> = key_lines(&shipped())
        .into_iter()
        .filter(|k| !k.enabled)
        .map(|k| k.name)
        .collect();
    assert_eq!(off, ["wifi.country", "leds.red", "leds.green", "leds.blue"]);
}

#[test]
fn the_switched_off_examples_are_valid_when_switched_on() {
    let text = all_enabled(&shipped());
    let loaded = config::parse(&text);
    // An SSID is needed once the country is set; that is the only rule the
    // examples alone cannot meet.
    let problems: Vec<_> = loaded
        .problems
        .iter()
        .filter(|p| p.key != "wifi.ssid")
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(loaded.config.wifi.country, "GB");
    assert_eq!(loaded.config.leds.red, Some(17));
    assert_eq!(loaded.config.leds.blue, Some(22));
}

/// The per-board changes that post-image.sh makes (the defconfig's
/// BR2_ROOTFS_POST_SCRIPT_ARGS, `key=value` pairs) give a valid file.
#[test]
fn board_changes_to_the_shipped_file_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut boards = 0;
    for entry in std::fs::read_dir(root.join("buildroot/configs")).unwrap() {
        let path = entry.unwrap().path();
        let defconfig = std::fs::read_to_string(&path).unwrap();
        let Some(args) = defconfig
            .lines()
            .find_map(|l| l.strip_prefix("BR2_ROOTFS_POST_SCRIPT_ARGS="))
        else {
            continue;
        };
        boards += 1;
        let mut text = shipped();
        for pair in args.trim_matches('"').split_whitespace() {
            let (key, value) = pair.split_once('=').expect("key=value");
            let prefix = format!("{key} = ");
            let line = text
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("{}: {key} is not a key of {SHIPPED}", path.display()))
                .to_string();
            text = text.replacen(&line, &format!("{prefix}{value}"), 1);
        }
        let loaded = config::parse(&text);
        assert!(
            loaded.problems.is_empty(),
            "{}: {:?}",
            path.display(),
            loaded.problems
        );
        assert_ne!(loaded.config, Config::default(), "{}", path.display());
    }
    assert!(
        boards >= 1,
        "the Zero 2 W defconfig sets a lower resolution"
    );
}

fn check_config(file: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_babymon"))
        .arg("check-config")
        .arg(file)
        .output()
        .expect("run babymon check-config");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let (ok, out) = check_config(&shipped_path());
    assert!(ok, "{out}");
    assert!(out.trim_end().ends_with(": ok"), "{out}");
}

#[test]
fn check_config_finds_a_mistake_in_an_edited_copy() {
    // The same file as a parent might get it wrong: a 3-letter country
    // code switched on, on a known line.
    let text = shipped().replace("#country = \"GB\"", "country = \"GBR\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("country = "))
        .unwrap()
        + 1;
    let copy = std::env::temp_dir().join(format!("babymon-shipped-{}.toml", std::process::id()));
    std::fs::write(&copy, text).unwrap();
    let (ok, out) = check_config(&copy);
    std::fs::remove_file(&copy).ok();
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(":{line}: error: wifi.country:")),
        "{out}"
    );
}
