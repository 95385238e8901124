//! The media side of `serve`: camera and microphone, the one shared encoder,
//! and a `webrtcbin` per viewer. This module owns GStreamer; the HTTP side
//! talks to it only through [`Media`].

mod advertise;
mod audio;
mod branch;
mod camera;
mod encoder;
mod engine;
mod format;
mod keyframe;
mod pipeline;
mod recover;
mod sdp;
mod sessions;
mod source;
mod supervisor;

use std::sync::Arc;

use serde::Serialize;

use babymon::config::Config;

/// What is being captured, as `/api/status` shows it under `source`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SourceInfo {
    /// "v4l2", "libcamera" or "test".
    pub kind: String,
    /// The device path (such as `/dev/video0`), or null for the test pattern.
    pub device: Option<String>,
    /// What the camera delivers, such as "MJPG 1280x720@30" or "I420".
    pub format: String,
}

/// The H.264 encoder in use and why it was chosen.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct EncoderInfo {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub bitrate_kbps: u32,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AudioInfo {
    /// "alsa", "test" or "off".
    pub kind: String,
    pub device: Option<String>,
}

/// A snapshot of the pipeline for `/api/status` and `/healthz`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MediaStatus {
    pub source: SourceInfo,
    pub encoder: EncoderInfo,
    pub video: VideoInfo,
    pub audio: AudioInfo,
    /// True while the shared pipeline is in PLAYING.
    pub playing: bool,
    /// How many times the pipeline was rebuilt (a camera lost, an error).
    pub restarts: u32,
}

/// One viewer's session as `serve` sees it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ViewerInfo {
    pub id: String,
    /// "connecting", "connected" or "failed".
    pub state: String,
    /// "udp" or "tcp" once ICE has chosen a pair, else "".
    pub transport: String,
    /// "tunnel" when the remote address is one of this machine's own (as
    /// cloudflared re-originates flows), "lan" otherwise, "" before ICE.
    pub path: String,
    pub since_s: u64,
}

/// The SDP answer to a viewer's offer, and the id of its new session.
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: String,
    pub sdp: String,
}

/// Why an offer was refused. The HTTP side maps these to status codes:
/// `Full` and `NotReady` to 503, `Internal` to 500, the rest to 400.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error("not an SDP offer: {0}")]
    NotSdp(String),
    #[error(
        "the offer has no H.264 video that babymon can send (constrained baseline, packetization-mode 1)"
    )]
    NoH264,
    #[error("the offer has no Opus audio")]
    NoOpus,
    #[error("the offer wants to send {0}; babymon only sends")]
    WantsToSend(String),
    #[error("the viewer limit of {max} is reached")]
    Full { max: u32 },
    #[error("the media pipeline is not ready: {0}")]
    NotReady(String),
    #[error("session {id}: {reason}")]
    Internal { id: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session {0}: no such session")]
    NotFound(String),
    #[error("session {id}: bad candidate: {reason}")]
    BadCandidate { id: String, reason: String },
    #[error("session {id}: {reason}")]
    Internal { id: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("gstreamer: {0}")]
    Init(String),
    #[error("element {0}: not found; install the GStreamer plugin that provides it")]
    MissingElement(String),
}

/// A handle on the running media side; cheap to clone, shared by all HTTP
/// handlers.
#[derive(Clone)]
pub struct Media {
    inner: Arc<engine::Inner>,
}

/// Points `GST_REGISTRY` at `/data` (or `/run/babymon`) when it is unset.
/// [`Media::start`] does it too; calling this first thing in `main`, before
/// any thread starts, keeps the environment change race-free.
pub fn prepare_environment() {
    engine::set_registry();
}

impl Media {
    /// Probes camera, microphone and encoder, builds the shared pipeline and
    /// sets it playing. Camera loss later is handled inside: the pipeline is
    /// rebuilt on the next source found.
    pub fn start(config: &Config) -> Result<Media, MediaError> {
        engine::Inner::start(config).map(|inner| Media { inner })
    }

    pub fn status(&self) -> MediaStatus {
        self.inner.status()
    }

    pub fn viewers(&self) -> Vec<ViewerInfo> {
        self.inner.viewers()
    }

    /// Answers a WHEP offer: checks it, adds a viewer branch, gathers ICE
    /// (host and passive TCP candidates) and returns the complete answer.
    pub async fn answer(&self, offer: String) -> Result<Answer, OfferError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.answer(&offer))
            .await
            .unwrap_or_else(|e| {
                Err(OfferError::Internal {
                    id: "-".into(),
                    reason: format!("answer task: {e}"),
                })
            })
    }

    /// Adds the viewer's late candidates from an
    /// `application/trickle-ice-sdpfrag` body.
    pub async fn add_candidates(&self, id: &str, sdpfrag: String) -> Result<(), SessionError> {
        self.on_session(id, move |inner, id| inner.add_candidates(id, &sdpfrag))
            .await
    }

    /// Ends a session and frees its place.
    pub async fn end(&self, id: &str) -> Result<(), SessionError> {
        self.on_session(id, |inner, id| inner.end(id, "ended by the viewer"))
            .await
    }

    /// Runs `work` on session `id` off the async workers: it takes the
    /// media lock and waits on GStreamer state changes.
    async fn on_session<F>(&self, id: &str, work: F) -> Result<(), SessionError>
    where
        F: FnOnce(&engine::Inner, &str) -> Result<(), SessionError> + Send + 'static,
    {
        let (inner, owned) = (self.inner.clone(), id.to_string());
        tokio::task::spawn_blocking(move || work(&inner, &owned))
            .await
            .unwrap_or_else(|e| {
                Err(SessionError::Internal {
                    id: id.into(),
                    reason: format!("session task: {e}"),
                })
            })
    }

    /// Stops every session and sets the pipeline to `Null`.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

#[cfg(test)]
mod tests;
