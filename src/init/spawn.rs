//! Starting a service's process: its own session and process group, its
//! user and groups, a clean environment, and its output through one pipe
//! that the main loop reads line by line into the log under the service's
//! name. The serial shell gets the console instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::unistd::{Gid, Uid};

use super::accounts;
use super::services::ServiceSpec;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{service}: user {user} is not in {root}/etc/passwd")]
    NoUser {
        service: String,
        user: String,
        root: String,
    },
    #[error("{service}: {program}: {source}")]
    Exec {
        service: String,
        program: String,
        source: std::io::Error,
    },
}

const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// Starts `spec`; returns its pid and the read end of its output pipe.
pub fn spawn(spec: &ServiceSpec, root: &Path) -> Result<(i32, Option<File>), SpawnError> {
    let program = spec.argv.first().cloned().unwrap_or_default();
    let exec_err = |source| SpawnError::Exec {
        service: spec.name.clone(),
        program: program.clone(),
        source,
    };
    let mut cmd = Command::new(&program);
    cmd.args(spec.argv.iter().skip(1))
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8");
    let mut ids: Option<(Uid, Gid, Vec<Gid>)> = None;
    match &spec.user {
        Some(name) => {
            let (passwd, group) = accounts::read(root);
            let u =
                accounts::find_user(&passwd, &group, name).ok_or_else(|| SpawnError::NoUser {
                    service: spec.name.clone(),
                    user: name.clone(),
                    root: root.display().to_string(),
                })?;
            cmd.env("USER", &u.name)
                .env("LOGNAME", &u.name)
                .env("HOME", &u.home);
            ids = Some((
                Uid::from_raw(u.uid),
                Gid::from_raw(u.gid),
                u.groups.iter().map(|g| Gid::from_raw(*g)).collect(),
            ));
        }
        None => {
            cmd.env("HOME", "/").env("USER", "root");
        }
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd.current_dir("/");
    let mut output = None;
    if spec.console {
        let console = root.join("dev/console");
        let open = || File::options().read(true).write(true).open(&console);
        let (a, b, c) = (
            open().map_err(exec_err)?,
            open().map_err(exec_err)?,
            open().map_err(exec_err)?,
        );
        cmd.stdin(a).stdout(b).stderr(c);
    } else {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| exec_err(e.into()))?;
        let write2: OwnedFd = write.try_clone().map_err(exec_err)?;
        cmd.stdin(Stdio::null()).stdout(write).stderr(write2);
        let _ = nix::fcntl::fcntl(
            read.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        output = Some(File::from(read));
    }
    let console = spec.console;
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe system calls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // init blocks the signals it reads from its signalfd; a child
            // must not inherit that mask, or TERM would not stop it.
            unblock_signals()?;
            nix::unistd::setsid()?;
            if console && nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some((uid, gid, groups)) = &ids {
                nix::unistd::setgroups(groups)?;
                nix::unistd::setgid(*gid)?;
                nix::unistd::setuid(*uid)?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(exec_err)?;
    // The child is reaped by the main loop's waitpid(-1), never through
    // `Child`, which is dropped here without waiting.
    let pid = i32::try_from(child.id()).unwrap_or(0);
    drop(cmd);
    Ok((pid, output))
}

/// Clears the signal mask (in a child, between fork and exec).
pub fn unblock_signals() -> std::io::Result<()> {
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )?;
    Ok(())
}

/// Service output pipes, read without blocking, split into lines.
#[derive(Default)]
pub struct Outputs {
    pipes: HashMap<RawFd, (String, File, Vec<u8>)>,
}

/// Longest line logged; the rest is cut.
const MAX_LINE: usize = 1000;

impl Outputs {
    pub fn add(&mut self, name: &str, file: File) {
        self.pipes
            .insert(file.as_raw_fd(), (name.to_string(), file, Vec::new()));
    }

    /// Each pipe's number and a borrow of it, for `poll`.
    pub fn polled(&self) -> Vec<(RawFd, BorrowedFd<'_>)> {
        self.pipes
            .iter()
            .map(|(raw, (_, f, _))| (*raw, f.as_fd()))
            .collect()
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.pipes.keys().copied().collect()
    }

    /// Reads what `fd` has and logs each whole line; closes it at its end.
    pub fn read(&mut self, fd: RawFd) {
        let mut buf = [0u8; 4096];
        let Some((name, file, line)) = self.pipes.get_mut(&fd) else {
            return;
        };
        let mut closed = false;
        for _ in 0..16 {
            match file.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    for &b in buf.get(..n).unwrap_or(&[]) {
                        if b == b'\n' {
                            log::info!("{name}: {}", String::from_utf8_lossy(line));
                            line.clear();
                        } else if line.len() < MAX_LINE {
                            line.push(b);
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            if !line.is_empty() {
                log::info!("{name}: {}", String::from_utf8_lossy(line));
            }
            self.pipes.remove(&fd);
        }
    }

    /// Reads every pipe once (at shutdown, so last words are kept).
    pub fn drain(&mut self) {
        for fd in self.fds() {
            self.read(fd);
        }
    }
}
