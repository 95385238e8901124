//! One-shot helper commands at boot (`e2fsck`, `mkfs.ext4`), each with a
//! time limit and its output logged line by line under its name.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{program}: cannot start: {source}")]
    Start {
        program: String,
        source: std::io::Error,
    },
    #[error("{program}: still running after {secs} s, killed")]
    Timeout { program: String, secs: u64 },
}

/// Runs `argv` to its end or to `limit`; returns its exit code (or 128 +
/// signal).
pub fn run(argv: &[&str], limit: Duration) -> Result<i32, RunError> {
    let (program, args) = argv.split_first().map_or(("", &[][..]), |(p, a)| (*p, a));
    let name = program.rsplit('/').next().unwrap_or(program).to_string();
    let mut cmd = Command::new(program);
    // SAFETY: only a system call on no shared data between fork and exec.
    unsafe {
        cmd.pre_exec(super::spawn::unblock_signals);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RunError::Start {
            program: program.to_string(),
            source,
        })?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    for fd in [
        out.as_ref().map(|o| o.as_raw_fd()),
        err.as_ref().map(|e| e.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    let start = Instant::now();
    let mut text = Vec::new();
    let status = loop {
        let mut buf = [0u8; 4096];
        for pipe in [
            out.as_mut().map(|o| o as &mut dyn Read),
            err.as_mut().map(|e| e as &mut dyn Read),
        ]
        .into_iter()
        .flatten()
        {
            if let Ok(n) = pipe.read(&mut buf) {
                text.extend_from_slice(buf.get(..n).unwrap_or(&[]));
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(50)),
            _ => break None,
        }
    };
    for line in String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        log::info!("{name}: {line}");
    }
    match status {
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            Ok(s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(RunError::Timeout {
                program: program.to_string(),
                secs: limit.as_secs(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_timeouts() {
        assert_eq!(
            run(
                &["/bin/sh", "-c", "echo hi; exit 3"],
                Duration::from_secs(5)
            )
            .unwrap(),
            3
        );
        assert!(matches!(
            run(&["/bin/sh", "-c", "sleep 5"], Duration::from_millis(200)),
            Err(RunError::Timeout { .. })
        ));
        assert!(matches!(
            run(&["/no/such/program"], Duration::from_secs(1)),
            Err(RunError::Start { .. })
        ));
    }
}
