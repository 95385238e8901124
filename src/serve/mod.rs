//! `babymon serve`: one capture and one encoder shared by every viewer,
//! WHEP sessions, and the HTTP server with the viewer page and status.
//!
//! [`media`] owns GStreamer; [`http`] owns the sockets and the page. They
//! meet at [`media::Media`].

pub mod http;
pub mod media;
mod memory;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use log::LevelFilter;
use simplelog::{ConfigBuilder, WriteLogger};

use babymon::config::{self, Config, Severity};
use babymon::statefile;
use media::Media;

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

/// Runs `serve` until SIGTERM or SIGINT. Fails at once on a config whose
/// viewer password is bad (never "no password" instead) or on a port that
/// cannot be bound; a media side that fails to start is retried while the
/// page and `/api/status` say why.
pub fn run(options: Options) -> ExitCode {
    // Before any thread exists: it may set GST_REGISTRY.
    media::prepare_environment();
    memory::keep_heap_in_small_pages();
    init_logging();
    let Some(config) = load_config(options.config.as_deref()) else {
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = options
        .listen
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], config.viewer.port)));
    match runtime.block_on(serve(config, listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr, where init (or the terminal) collects them.
/// `BABYMON_LOG` (error, warn, info, debug, trace) sets the level.
fn init_logging() {
    let level = std::env::var("BABYMON_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let config = ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_time_format_rfc3339()
        .add_filter_allow_str("babymon")
        .build();
    // Only fails when a logger is set already, which leaves that one in use.
    let _ = WriteLogger::init(level, config, std::io::stderr());
}

/// The config to run with: defaults without a file, and every problem of
/// the file logged. `None` when `serve` must not start.
fn load_config(path: Option<&Path>) -> Option<Config> {
    let Some(path) = path else {
        log::info!("config: no file given, using the defaults");
        return Some(Config::default());
    };
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(e) => {
            log::error!("config: {e}");
            return None;
        }
    };
    for p in &loaded.problems {
        match p.severity {
            Severity::Error => log::error!("config: {}: {p}", path.display()),
            Severity::Unknown => log::warn!("config: {}: {p}", path.display()),
        }
    }
    if loaded.guard_failed("viewer") {
        log::error!(
            "config: {}: the viewer password could not be read; refusing to serve without it \
             (fix it, or set password = \"\" to let anyone on the network watch)",
            path.display()
        );
        return None;
    }
    log::info!(
        "config: {}: viewer password {}",
        path.display(),
        loaded.config.viewer.password.state()
    );
    Some(loaded.config)
}

/// Where system.json is read and serve.json written: `/run/babymon`, or
/// `BABYMON_RUN_DIR` (for tests and for running off the device).
fn run_dir() -> PathBuf {
    std::env::var_os("BABYMON_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(statefile::RUN_DIR))
}

async fn serve(config: Config, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    let bound = listener.local_addr().context("listening socket")?;
    log::info!("listening on http://{bound}");

    let app = http::Shared::new(&config, run_dir());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let starter = tokio::spawn(start_media(app.clone(), config, stop_rx.clone()));
    let state_file = tokio::spawn(http::keep_serve_file(app.clone(), stop_rx.clone()));

    let service = http::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let mut stop_server = stop_rx.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = stop_server.wait_for(|stop| *stop).await;
            })
            .await
    });

    let signal = wait_for_signal().await?;
    log::info!("{signal}: shutting down");
    let _ = stop_tx.send(true);
    // Open keep-alive connections may hold the server; do not wait forever.
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(Ok(Err(e))) => log::warn!("http: {e}"),
        Ok(_) => {}
        Err(_) => log::warn!("http: connections still open after {SHUTDOWN_GRACE:?}, closing"),
    }
    starter.abort();
    if let http::Slot::Running(media) = app.slot() {
        app.set_slot(http::Slot::Starting);
        tokio::task::spawn_blocking(move || media.shutdown())
            .await
            .context("media shutdown")?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), state_file).await;
    log::info!("stopped");
    Ok(())
}

const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Waits between two failed starts of the media side: doubling up to this.
const MEDIA_RETRY_MAX: Duration = Duration::from_secs(60);

/// Starts the media side, retrying with back-off while it fails (no
/// GStreamer plugin, no device yet); the page stays up meanwhile.
async fn start_media(app: http::App, config: Config, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut wait = Duration::from_secs(1);
    loop {
        let c = config.clone();
        match tokio::task::spawn_blocking(move || Media::start(&c)).await {
            Ok(Ok(media)) => {
                log::info!("media: started");
                if *stop.borrow() {
                    media.shutdown();
                    return;
                }
                app.set_slot(http::Slot::Running(media));
                return;
            }
            Ok(Err(e)) => {
                log::error!("media: {e}; trying again in {} s", wait.as_secs());
                app.set_slot(http::Slot::Failed(e.to_string()));
            }
            Err(e) => {
                log::error!(
                    "media: start panicked: {e}; trying again in {} s",
                    wait.as_secs()
                );
                app.set_slot(http::Slot::Failed(
                    "the media side crashed while starting".into(),
                ));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        wait = (wait * 2).min(MEDIA_RETRY_MAX);
    }
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
