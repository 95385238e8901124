//! What can be checked of `babymon-init` without running it: the
//! libraries its binary needs (none of the media stack) and the absence of
//! panicking calls in its code outside tests.

use std::path::Path;
use std::process::Command;

const INIT: &str = env!("CARGO_BIN_EXE_babymon-init");

#[test]
fn links_no_gstreamer_glib_or_libnice() {
    let out = Command::new("readelf")
        .args(["-d", INIT])
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = text.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        !needed.is_empty() || text.contains("no dynamic section"),
        "{text}"
    );
    for bad in [
        "libgst",
        "libglib",
        "libgobject",
        "libgio",
        "libnice",
        "libsoup",
        "libssl",
    ] {
        assert!(
            !needed.iter().any(|l| l.contains(bad)),
            "babymon-init needs {bad}: {needed:?}"
        );
    }
    println!("babymon-init needs: {needed:?}");
}

/// PID 1 must not panic: no `unwrap`, `expect`, `panic!`, `unreachable!`,
/// `todo!` or `unimplemented!` in `src/init` outside its tests.
#[test]
fn init_code_has_no_panicking_calls() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/init");
    let mut found = Vec::new();
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rs") || name == "proptests.rs" {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(e.path()).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            for bad in [
                ".unwrap()",
                ".expect(",
                "panic!",
                "unreachable!",
                "todo!",
                "unimplemented!",
            ] {
                if line.contains(bad) {
                    found.push(format!("{name}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(files >= 20, "src/init has {files} files");
    assert!(
        found.is_empty(),
        "panicking calls in PID 1 code:\n{}",
        found.join("\n")
    );
}
