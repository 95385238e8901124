//! The HTTP side of `serve`: the router, the state every handler shares and
//! the checks every request passes (the `Host` header, then the password
//! where one guards the path). WHEP, status, the password and the page each
//! live in their own file; the media side is reached only through
//! [`Media`].

mod auth;
mod host;
mod limiter;
mod page;
mod status;
mod whep;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

use super::media::Media;
use babymon::config::Config;

pub use status::keep_serve_file;

/// What every handler shares.
pub type App = Arc<Shared>;

pub struct Shared {
    slot: RwLock<Slot>,
    auth: auth::Auth,
    hostname: String,
    max_viewers: u32,
    started: Instant,
    /// Where system.json is read and serve.json written.
    run_dir: PathBuf,
    /// Woken when sessions come or go, so serve.json follows at once.
    changed: Notify,
}

/// The media side as the HTTP side sees it.
#[derive(Clone)]
pub enum Slot {
    Starting,
    Running(Media),
    /// The last start failed; the reason, for `/api/status`.
    Failed(String),
}

impl Shared {
    pub fn new(config: &Config, run_dir: PathBuf) -> App {
        Arc::new(Shared {
            slot: RwLock::new(Slot::Starting),
            auth: auth::Auth::new(config.viewer.password.clone()),
            hostname: config.system.hostname.clone(),
            max_viewers: config.viewer.max_viewers,
            started: Instant::now(),
            run_dir,
            changed: Notify::new(),
        })
    }

    pub fn set_slot(&self, slot: Slot) {
        *self.slot.write().unwrap_or_else(|p| p.into_inner()) = slot;
        self.changed.notify_one();
    }

    pub fn slot(&self) -> Slot {
        self.slot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The running media side, or why there is none.
    fn media(&self) -> Result<Media, String> {
        match self.slot() {
            Slot::Running(m) => Ok(m),
            Slot::Starting => Err("the camera pipeline is starting".into()),
            Slot::Failed(e) => Err(e),
        }
    }
}

/// Every route of the server.
pub fn router(app: App) -> Router {
    let guarded = Router::new()
        .route("/whep", post(whep::offer))
        .route(
            "/whep/{id}",
            axum::routing::delete(whep::end).patch(whep::candidates),
        )
        .route("/api/status", get(status::api))
        .layer(middleware::from_fn_with_state(app.clone(), auth::require));
    Router::new()
        .route("/", get(page::index))
        .route("/login", post(page::login))
        .route("/viewer.js", get(page::script))
        .route("/viewer.css", get(page::style))
        .merge(guarded)
        .layer(middleware::from_fn_with_state(app.clone(), check_host))
        .route("/healthz", get(status::healthz))
        .layer(DefaultBodyLimit::max(whep::MAX_BODY))
        .layer(middleware::map_response(common_headers))
        .with_state(app)
}

/// Refuses a `Host` that is not this device (DNS rebinding). `/healthz` is
/// routed outside this check: it says nothing private and init probes it.
async fn check_host(State(app): State<App>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    match host::check(host, &app.hostname) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            log::info!(
                "http: refused {} {}: {reason}",
                request.method(),
                request.uri().path()
            );
            plain(StatusCode::FORBIDDEN, &reason)
        }
    }
}

async fn common_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    response
}

/// A short plain-text response: the reason for a refusal, or a word.
pub fn plain(status: StatusCode, text: &str) -> Response {
    let mut response = (status, format!("{text}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
