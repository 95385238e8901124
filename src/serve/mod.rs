//! `babymon serve`: one capture and one encoder shared by every viewer,
//! WHEP sessions, and the HTTP server with the viewer page and status.
//!
//! [`media`] owns GStreamer; [`http`] owns the sockets and the page. They
//! meet at [`media::Media`].

pub mod http;
pub mod media;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line options of `babymon serve`.
#[derive(Debug, Default)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |flag: &str| {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match arg.as_str() {
                "--config" => options.config = Some(PathBuf::from(value("--config")?)),
                "--listen" => {
                    let v = value("--listen")?;
                    let addr = v.parse().map_err(|_| {
                        format!("--listen {v:?}: not an ADDR:PORT such as 0.0.0.0:8080")
                    })?;
                    options.listen = Some(addr);
                }
                other => return Err(format!("serve: unknown option {other:?}")),
            }
        }
        Ok(options)
    }
}

pub fn run(options: Options) -> ExitCode {
    // FIXME: filled in with the media pipeline and the HTTP server.
    let _ = options;
    ExitCode::FAILURE
}
