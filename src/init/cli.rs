//! The command line of `babymon-init`. On the device it takes no flags (the
//! kernel may pass words from its command line, which are ignored); the
//! flags exist for host-side tests.

use std::path::PathBuf;

pub const HELP: &str = "\
babymon-init: the PID 1 of a babymon device (installed as /sbin/init)

On the device it takes no flags. For host-side tests only, run it as PID 1
of new namespaces (unshare --pid --mount --uts --net --fork):

  --root DIR        do all work under DIR instead of / (proc, sys, dev, run,
                    tmp, boot, data and the config at DIR/boot/babymon.toml)
  --test-plan FILE  an init-only TOML file that turns off boot steps touching
                    the real machine and replaces the services:
                      skip = [\"devtmpfs\", \"sysfs\", \"modules\", \"uevents\",
                              \"blockdev\", \"hostname\", \"sysctl\", \"cad\",
                              \"devperm\", \"clock\", \"watchdog\", \"leds\",
                              \"input\"]
                      [[service]]
                      name = \"a\"
                      command = [\"/bin/sh\", \"/path/a.sh\"]
                      probe = \"127.0.0.1:8080/healthz\"   # optional
                      needs_clock = false                 # optional
                      user = \"nobody\"                     # optional
  --help            this text
  --version         the version

It refuses to run unless it is PID 1.";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub root: PathBuf,
    pub test_plan: Option<PathBuf>,
    pub help: bool,
    pub version: bool,
    /// Words that are not flags (from the kernel command line).
    pub ignored: Vec<String>,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        root: PathBuf::from("/"),
        ..Default::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--root" => o.root = PathBuf::from(it.next().ok_or("--root needs a folder")?),
            "--test-plan" => {
                o.test_plan = Some(PathBuf::from(it.next().ok_or("--test-plan needs a file")?))
            }
            "--help" | "-h" => o.help = true,
            "--version" => o.version = true,
            other => o.ignored.push(other.to_string()),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_kernel_words() {
        let o = parse(&args(&[
            "--root",
            "/tmp/r",
            "single",
            "--test-plan",
            "p.toml",
        ]))
        .unwrap();
        assert_eq!(o.root, PathBuf::from("/tmp/r"));
        assert_eq!(o.test_plan, Some(PathBuf::from("p.toml")));
        assert_eq!(o.ignored, vec!["single"]);
        assert_eq!(parse(&[]).unwrap().root, PathBuf::from("/"));
        assert!(parse(&args(&["--root"])).is_err());
    }
}
