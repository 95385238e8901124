//! Kernel modules without udev: the `modalias` files under `/sys` at boot,
//! the `MODALIAS` of each uevent later, and the names the config lists,
//! looked up in the kernel's own `modules.alias` and `modules.dep`, loaded
//! with `finit_module` (compressed files through the kernel's own
//! decompressor).

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// `finit_module` flag: the file is compressed, the kernel unpacks it.
const MODULE_INIT_COMPRESSED_FILE: nix::libc::c_uint = 4;

/// The module tables of the running kernel.
#[derive(Debug, Default)]
pub struct Modules {
    dir: PathBuf,
    /// (pattern, module) from `modules.alias`, in file order.
    aliases: Vec<(String, String)>,
    /// module name -> (file relative to `dir`, dependencies by name).
    deps: HashMap<String, (String, Vec<String>)>,
    builtin: BTreeSet<String>,
    /// Modules loaded (or found loaded or built in) and those that failed.
    done: BTreeSet<String>,
}

/// `snd-aloop` and `snd_aloop` are the same module.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path such as `kernel/drivers/x/snd-aloop.ko.xz`.
fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    normalize(stem)
}

impl Modules {
    /// Reads the tables under `dir` (`/lib/modules/<release>`).
    pub fn load(dir: &Path) -> Result<Modules, std::io::Error> {
        let dep_text = std::fs::read_to_string(dir.join("modules.dep"))?;
        let alias_text = std::fs::read_to_string(dir.join("modules.alias")).unwrap_or_default();
        let builtin_text = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        let mut m = Modules::parse(&dep_text, &alias_text, &builtin_text);
        m.dir = dir.to_owned();
        Ok(m)
    }

    pub fn parse(dep: &str, alias: &str, builtin: &str) -> Modules {
        let mut m = Modules::default();
        for line in dep.lines() {
            let Some((file, rest)) = line.split_once(':') else {
                continue;
            };
            let deps = rest.split_whitespace().map(module_name).collect();
            m.deps
                .insert(module_name(file), (file.trim().to_string(), deps));
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                m.aliases.push((pattern.to_string(), normalize(module)));
            }
        }
        m.builtin = builtin.lines().map(module_name).collect();
        m
    }

    /// The modules whose aliases match `modalias`, without repeats.
    pub fn lookup(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if glob(pattern.as_bytes(), modalias.as_bytes()) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }

    /// Loads the modules a device's `modalias` names.
    pub fn load_alias(&mut self, modalias: &str) {
        for module in self.lookup(modalias) {
            self.load_module(&module);
        }
    }

    /// Loads a module only if this kernel has it as a module; quiet if not.
    pub fn load_if_present(&mut self, name: &str) {
        if self.deps.contains_key(&normalize(name)) {
            self.load_module(name);
        }
    }

    /// Loads one module and what it depends on; each is tried once.
    pub fn load_module(&mut self, name: &str) -> bool {
        let name = normalize(name);
        if self.done.contains(&name) {
            return true;
        }
        self.done.insert(name.clone());
        if self.builtin.contains(&name) {
            return true;
        }
        let Some((file, deps)) = self.deps.get(&name).cloned() else {
            log::warn!(
                "module {name}: not in {}; is it built for this kernel?",
                self.dir.join("modules.dep").display()
            );
            return false;
        };
        // modules.dep lists the deepest dependency last.
        for dep in deps.iter().rev() {
            self.load_module(dep);
        }
        let path = self.dir.join(&file);
        match finit(&path) {
            Ok(()) => {
                log::info!("module {name}: loaded");
                true
            }
            Err(nix::errno::Errno::EEXIST) => true,
            Err(e) => {
                let hint = if file.ends_with(".ko") {
                    ""
                } else {
                    " (a compressed module needs CONFIG_MODULE_DECOMPRESS)"
                };
                log::warn!("module {name}: {}: {e}{hint}", path.display());
                false
            }
        }
    }
}

fn finit(path: &Path) -> Result<(), nix::errno::Errno> {
    let file = File::open(path)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::ENOENT)))?;
    let flags = if path.extension().is_some_and(|e| e != "ko") {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    let params = c"";
    // SAFETY: finit_module reads the open file and a NUL-terminated string.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

/// Every `modalias` under `sys/devices`, without repeats, in a stable
/// order. Symlinks are not followed, so the walk ends.
pub fn scan_modaliases(sys: &Path) -> Vec<String> {
    let mut found = BTreeSet::new();
    walk(&sys.join("devices"), 0, &mut found);
    found.into_iter().collect()
}

fn walk(dir: &Path, depth: usize, found: &mut BTreeSet<String>) {
    if depth > 40 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), depth + 1, found);
        } else if kind.is_file()
            && entry.file_name() == "modalias"
            && let Ok(text) = std::fs::read_to_string(entry.path())
        {
            let alias = text.trim();
            if !alias.is_empty() {
                found.insert(alias.to_string());
            }
        }
    }
}

/// Shell-style matching as `modules.alias` uses it: `*`, `?` and `[...]`.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                t += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((matched, next)) = class(pattern, p, text.get(t).copied()) {
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                } else if text.get(t) == Some(&b'[') {
                    p += 1;
                    t += 1;
                    continue;
                }
            }
            Some(c) if Some(c) == text.get(t) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `*` take one more character.
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern.iter().skip(p).all(|c| *c == b'*')
}

/// Matches `c` against the class starting at `pattern[start] == b'['`;
/// returns whether it matched and where the class ends, or `None` for an
/// unclosed class (then `[` is literal).
fn class(pattern: &[u8], start: usize, c: Option<u8>) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &x = pattern.get(i)?;
        if x == b']' && !first {
            break;
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|e| *e != b']') {
            let hi = *pattern.get(i + 2)?;
            if c.is_some_and(|c| x <= c && c <= hi) {
                matched = true;
            }
            i += 3;
        } else {
            if c == Some(x) {
                matched = true;
            }
            i += 1;
        }
    }
    Some((matched != negate && c.is_some(), i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_modprobe() {
        assert!(glob(
            b"usb:v*p*d*dc*dsc*dp*ic0Eisc01ip00in*",
            b"usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00"
        ));
        assert!(!glob(
            b"usb:v*p*d*dc*dsc*dp*ic0Eisc02ip00in*",
            b"usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00"
        ));
        assert!(glob(
            b"of:N*T*Cbrcm,bcm2835-codec",
            b"of:NcodecT(null)Cbrcm,bcm2835-codec"
        ));
        assert!(glob(
            b"pci:v00001AF4d00001000sv*sd*bc*sc*i*",
            b"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(
            glob(b"a[0-9]c", b"a5c") && !glob(b"a[!0-9]c", b"a5c") && glob(b"a[!0-9]c", b"axc")
        );
        assert!(glob(b"*", b"") && glob(b"a?c", b"abc") && !glob(b"abc", b"abcd"));
        assert!(glob(b"x[", b"x[") && !glob(b"", b"a"));
        assert!(glob(b"**a**", b"bab"));
    }

    const DEP: &str = "\
kernel/drivers/media/test-drivers/vivid/vivid.ko.xz: kernel/drivers/media/v4l2-core/videodev.ko.xz kernel/drivers/media/mc/mc.ko.xz
kernel/drivers/media/v4l2-core/videodev.ko.xz: kernel/drivers/media/mc/mc.ko.xz
kernel/drivers/media/mc/mc.ko.xz:
kernel/sound/drivers/snd-aloop.ko:
kernel/drivers/media/usb/uvc/uvcvideo.ko.xz: kernel/drivers/media/v4l2-core/videodev.ko.xz
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias usb:v*p*d*dc*dsc*dp*ic0Eisc01ip00in* uvcvideo
alias usb:v*p*d*dc*dsc*dp*ic0Eisc01ip01in* uvcvideo
alias platform:snd_aloop snd-aloop
";

    #[test]
    fn tables_resolve_aliases_and_names() {
        let m = Modules::parse(DEP, ALIAS, "kernel/fs/vfat/vfat.ko\n");
        assert_eq!(
            m.lookup("usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00"),
            vec!["uvcvideo"]
        );
        assert!(
            m.lookup("usb:v046Dp0825d0012dc00dsc00dp00ic01isc01ip00in00")
                .is_empty()
        );
        assert_eq!(m.lookup("platform:snd_aloop"), vec!["snd_aloop"]);
        let (file, deps) = m.deps.get("vivid").unwrap();
        assert!(file.ends_with("vivid.ko.xz"));
        assert_eq!(deps, &vec!["videodev".to_string(), "mc".to_string()]);
        assert!(m.deps.contains_key("snd_aloop"));
        assert!(m.builtin.contains("vfat"));
    }

    #[test]
    fn unknown_module_fails_once_without_loading() {
        let mut m = Modules::parse(DEP, ALIAS, "kernel/fs/vfat/vfat.ko\n");
        assert!(!m.load_module("no-such-module"));
        assert!(m.load_module("no_such_module"), "tried once only");
        assert!(m.load_module("vfat"), "built in");
    }

    #[test]
    fn modalias_scan_on_a_fake_sys() {
        let root = std::env::temp_dir().join(format!("babymon-sys-{}", std::process::id()));
        let usb = root.join("devices/platform/soc/usb1/1-1/1-1:1.0");
        let codec = root.join("devices/platform/soc/codec");
        std::fs::create_dir_all(&usb).unwrap();
        std::fs::create_dir_all(&codec).unwrap();
        std::fs::create_dir_all(root.join("devices/virtual/empty")).unwrap();
        std::fs::write(
            usb.join("modalias"),
            "usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00\n",
        )
        .unwrap();
        std::fs::write(
            codec.join("modalias"),
            "of:NcodecT(null)Cbrcm,bcm2835-codec\n",
        )
        .unwrap();
        std::fs::write(root.join("devices/virtual/empty/modalias"), "\n").unwrap();
        // A symlink loop must not be followed.
        std::os::unix::fs::symlink(root.join("devices"), usb.join("loop")).unwrap();
        std::fs::write(usb.join("uevent"), "MODALIAS=ignored\n").unwrap();
        let found = scan_modaliases(&root);
        assert_eq!(
            found,
            vec![
                "of:NcodecT(null)Cbrcm,bcm2835-codec".to_string(),
                "usb:v046Dp0825d0012dcEFdsc02dp01ic0Eisc01ip00in00".to_string(),
            ]
        );
        let m = Modules::parse(DEP, ALIAS, "");
        let wanted: Vec<String> = found.iter().flat_map(|a| m.lookup(a)).collect();
        assert_eq!(wanted, vec!["uvcvideo"]);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
