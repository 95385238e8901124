//! How things stand, in three shapes: `GET /api/status` (JSON for the page
//! and for people), `GET /healthz` (for init's probe; says nothing private)
//! and `serve.json` in the run folder (for init's LEDs), rewritten on every
//! change and every few seconds.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{App, Slot, plain};
use crate::serve::media::{AudioInfo, EncoderInfo, MediaStatus, SourceInfo, VideoInfo, ViewerInfo};
use babymon::statefile::{self, SERVE_FILE, SYSTEM_FILE, ServeState, ViewerPath};

/// serve.json is rewritten at least this often, changed or not, so that
/// init can tell a stale file from a quiet one.
const REWRITE_EVERY: Duration = Duration::from_secs(5);
/// How often the pipeline and viewers are looked at for changes.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Characters of a session id shown in the status: enough to tell viewers
/// apart, too few to end someone else's session with.
const SHOWN_ID_CHARS: usize = 8;

#[derive(Serialize)]
struct Status {
    version: &'static str,
    uptime_s: u64,
    /// "playing", "starting" or "stopped" (as in serve.json).
    pipeline: &'static str,
    /// Why the pipeline is not running, when it failed to start.
    media_error: Option<String>,
    source: SourceInfo,
    encoder: EncoderInfo,
    video: VideoInfo,
    audio: AudioInfo,
    viewers: Viewers,
    /// What init last wrote to system.json; null off the device.
    system: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Viewers {
    count: usize,
    max: u32,
    list: Vec<Viewer>,
}

#[derive(Serialize)]
struct Viewer {
    id: String,
    state: String,
    transport: String,
    path: String,
    since_s: u64,
}

pub async fn api(State(app): State<App>) -> Response {
    let (media, media_error) = match app.slot() {
        Slot::Running(m) => (Some(m), None),
        Slot::Starting => (None, None),
        Slot::Failed(e) => (None, Some(e)),
    };
    let status = media.as_ref().map(|m| m.status()).unwrap_or_default();
    let viewers = media.as_ref().map(|m| m.viewers()).unwrap_or_default();
    let system = read_system(&app.run_dir.join(SYSTEM_FILE));
    let body = Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: app.started.elapsed().as_secs(),
        pipeline: pipeline_word(media.is_some(), media_error.is_some(), &status),
        media_error,
        source: status.source,
        encoder: status.encoder,
        video: status.video,
        audio: status.audio,
        viewers: Viewers {
            count: viewers.len(),
            max: app.max_viewers,
            list: viewers.into_iter().map(shown).collect(),
        },
        system,
    };
    let json = match serde_json::to_vec(&body) {
        Ok(json) => json,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &format!("status: {e}")),
    };
    let mut response = (StatusCode::OK, json).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn healthz(State(app): State<App>) -> Response {
    match app.media() {
        Ok(m) if m.status().playing => plain(StatusCode::OK, "playing"),
        Ok(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "starting"),
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "not playing"),
    }
}

fn shown(v: ViewerInfo) -> Viewer {
    Viewer {
        id: v.id.chars().take(SHOWN_ID_CHARS).collect(),
        state: v.state,
        transport: v.transport,
        path: v.path,
        since_s: v.since_s,
    }
}

fn pipeline_word(started: bool, failed: bool, status: &MediaStatus) -> &'static str {
    match (started, failed) {
        (true, _) if status.playing => "playing",
        (false, true) => "stopped",
        _ => "starting",
    }
}

fn read_system(path: &Path) -> Option<serde_json::Value> {
    match statefile::read::<serde_json::Value>(path) {
        Ok(v) => Some(v),
        Err(statefile::StateFileError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(e) => {
            log::debug!("status: {e}");
            None
        }
    }
}

/// serve.json as it should be now.
pub fn serve_state(app: &App) -> ServeState {
    let (media, failed) = match app.slot() {
        Slot::Running(m) => (Some(m), false),
        Slot::Starting => (None, false),
        Slot::Failed(_) => (None, true),
    };
    let status = media.as_ref().map(|m| m.status()).unwrap_or_default();
    let viewers = media.as_ref().map(|m| m.viewers()).unwrap_or_default();
    ServeState {
        source: match status.source.kind.as_str() {
            "" => String::new(),
            "test" => "test".into(),
            _ => "camera".into(),
        },
        device: status.source.device.clone(),
        pipeline: pipeline_word(media.is_some(), failed, &status).into(),
        viewers: viewers
            .into_iter()
            .map(|v| ViewerPath {
                id: v.id,
                transport: v.transport,
                path: v.path,
            })
            .collect(),
    }
}

/// Keeps serve.json up to date until `stop` fires, then writes it a last
/// time with the pipeline stopped. Does nothing while the folder is absent
/// (off the device).
pub async fn keep_serve_file(app: App, stop: tokio::sync::watch::Receiver<bool>) {
    let path = app.run_dir.join(SERVE_FILE);
    let mut stop = stop;
    let mut last: Option<(ServeState, Instant)> = None;
    loop {
        let stopping = *stop.borrow();
        let mut state = serve_state(&app);
        if stopping {
            state.pipeline = "stopped".into();
            state.viewers.clear();
        }
        let due = match &last {
            Some((old, at)) => *old != state || at.elapsed() >= REWRITE_EVERY,
            None => true,
        };
        if due && app.run_dir.is_dir() {
            if let Err(e) = statefile::write_atomic(&path, &state) {
                log::warn!("status: {e}");
            }
            last = Some((state, Instant::now()));
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = app.changed.notified() => {}
            _ = tokio::time::sleep(POLL_EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_words() {
        let playing = MediaStatus {
            playing: true,
            ..Default::default()
        };
        assert_eq!(pipeline_word(true, false, &playing), "playing");
        assert_eq!(
            pipeline_word(true, false, &MediaStatus::default()),
            "starting"
        );
        assert_eq!(
            pipeline_word(false, false, &MediaStatus::default()),
            "starting"
        );
        assert_eq!(
            pipeline_word(false, true, &MediaStatus::default()),
            "stopped"
        );
    }

    #[test]
    fn shown_ids_are_cut() {
        let v = shown(ViewerInfo {
            id: "0123456789abcdef".into(),
            ..Default::default()
        });
        assert_eq!(v.id, "01234567");
    }
}
