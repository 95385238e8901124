//! The state behind [`super::Media`]: the shared pipeline, the spare
//! branch, the sessions and their places, and the answer path from an
//! offer to a complete SDP answer. The [`super::supervisor`] thread does
//! everything that happens without a request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;

use babymon::config::Config;

use crate::serve::memory;

use super::branch::{Branch, Ice};
use super::keyframe::{self, KeyFrameLimiter};
use super::pipeline::{self, Shared};
use super::sessions::{self, Link};
use super::source::Want;
use super::{
    Answer, MediaError, MediaStatus, OfferError, SessionError, ViewerInfo, sdp, supervisor,
};

/// How long ICE gathering may take before the answer goes out anyway.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// Elements without which no viewer can be served.
const NEEDED: [&str; 6] = [
    "webrtcbin",
    "rtph264pay",
    "h264parse",
    "nicesrc",
    "dtlsdec",
    "tee",
];

/// What the config asks of the media side.
#[derive(Debug, Clone)]
pub struct Settings {
    pub want: Want,
    pub bitrate_kbps: u32,
    pub encoder: String,
    pub audio_enabled: bool,
    pub audio_device: String,
    pub max_viewers: u32,
    pub ice: Ice,
}

pub struct Session {
    pub branch: Branch,
    pub created: Instant,
    pub link: Link,
    pub transport: String,
    pub path: String,
    pub stats_at: Option<Instant>,
}

#[derive(Default)]
pub struct State {
    pub shared: Option<Shared>,
    /// Counts pipeline builds; a session answered against an older build
    /// is not kept.
    pub generation: u64,
    pub status: MediaStatus,
    pub camera_device: Option<String>,
    pub on_test_pattern: bool,
    pub last_restart: Option<Instant>,
    /// A camera that failed again soon after a restart is left alone
    /// until then; the test pattern stands in.
    pub camera_rest_until: Option<Instant>,
    /// The camera node that stopped answering while in use; not taken
    /// again until it is made anew (see `camera::is_unplugged`).
    pub unplugged: Option<super::camera::NodeId>,
    pub sessions: HashMap<String, Session>,
    /// Answers in progress, which hold a place.
    pub pending: usize,
    pub spare: Option<Branch>,
    pub stopped: bool,
}

/// What callbacks on GStreamer threads tell the supervisor.
#[derive(Debug)]
pub enum Event {
    Link(String, Link),
    Stats {
        id: String,
        transport: String,
        remote: Option<IpAddr>,
    },
    Spare,
}

pub struct Inner {
    pub settings: Settings,
    pub epoch: Instant,
    pub state: Mutex<State>,
    pub limiter: Arc<Mutex<KeyFrameLimiter>>,
    pub events: mpsc::Sender<Event>,
    /// Made at start so that the DTLS certificate exists before any viewer.
    _dtls: gst::Element,
}

impl Inner {
    pub fn start(config: &Config) -> Result<Arc<Inner>, MediaError> {
        set_registry();
        gst::init().map_err(|e| MediaError::Init(e.to_string()))?;
        for name in NEEDED {
            if gst::ElementFactory::find(name).is_none() {
                return Err(MediaError::MissingElement(name.into()));
            }
        }
        let audio_enabled = config.audio.enabled;
        if audio_enabled {
            for name in ["opusenc", "rtpopuspay"] {
                if gst::ElementFactory::find(name).is_none() {
                    return Err(MediaError::MissingElement(name.into()));
                }
            }
        }
        let started = Instant::now();
        // dtlsdec makes the process-wide certificate when created.
        // FIXME: the certificate is made anew at every start (12-22 s under
        // QEMU). Keeping it on /data is not possible on GStreamer 1.22:
        // webrtcbin has no certificate property, and every dtlsdec (its
        // own included) makes the generated certificate in its instance
        // init, before a stored PEM could be set on its `pem` property.
        let dtls = gst::ElementFactory::make("dtlsdec")
            .build()
            .map_err(|e| MediaError::Init(format!("dtlsdec: {e}")))?;
        let _pem = dtls.property::<Option<String>>("pem");
        log::info!(
            "dtls: certificate ready in {} ms",
            started.elapsed().as_millis()
        );

        let c = &config.camera;
        let settings = Settings {
            want: Want {
                source: c.source,
                device: c.device.clone(),
                width: c.width,
                height: c.height,
                framerate: c.framerate,
                rotation: c.rotation,
            },
            bitrate_kbps: c.bitrate_kbps,
            encoder: c.encoder.clone(),
            audio_enabled,
            audio_device: config.audio.device.clone(),
            max_viewers: config.viewer.max_viewers,
            ice: Ice {
                ports: config.viewer.ice_ports,
                addresses: config.viewer.ice_addresses.clone(),
            },
        };
        let (events, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            settings,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            limiter: Arc::new(Mutex::new(KeyFrameLimiter::new(keyframe::MIN_INTERVAL))),
            events,
            _dtls: dtls,
        });
        {
            let mut st = inner.lock();
            supervisor::build(&inner, &mut st).map_err(MediaError::Init)?;
            supervisor::prepare_spare(&inner, &mut st);
        }
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("media".into())
            .spawn(move || supervisor::run(worker, rx))
            .map_err(|e| MediaError::Init(format!("media thread: {e}")))?;
        Ok(inner)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the media side down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn status(&self) -> MediaStatus {
        let st = self.lock();
        let mut status = st.status.clone();
        status.playing = st.shared.as_ref().is_some_and(Shared::is_playing);
        status
    }

    pub fn viewers(&self) -> Vec<ViewerInfo> {
        let st = self.lock();
        let mut list: Vec<ViewerInfo> = st
            .sessions
            .iter()
            .map(|(id, s)| ViewerInfo {
                id: id.clone(),
                state: s.link.word().into(),
                transport: s.transport.clone(),
                path: s.path.clone(),
                since_s: s.created.elapsed().as_secs(),
            })
            .collect();
        list.sort_by_key(|v| std::cmp::Reverse(v.since_s));
        list
    }

    pub fn answer(&self, offer: &str) -> Result<Answer, OfferError> {
        let posted = Instant::now();
        let offer = sdp::drop_mdns_candidates(offer);
        // What GStreamer's own parser refuses is not a usable offer either.
        if let Err(e) = gstreamer_sdp::SDPMessage::parse_buffer(offer.as_bytes()) {
            return Err(OfferError::NotSdp(format!(
                "GStreamer cannot parse it: {e}"
            )));
        }
        let (mut branch, plan, video_tee, audio_tee, generation) = {
            let mut st = self.lock();
            let Some(shared) = st.shared.as_ref().filter(|_| !st.stopped) else {
                return Err(OfferError::NotReady("no pipeline".into()));
            };
            let audio = shared.audio_tee.is_some();
            let (video_tee, audio_tee, pipeline) = (
                shared.video_tee.clone(),
                shared.audio_tee.clone(),
                shared.pipeline.clone(),
            );
            let plan = sdp::plan(&offer, audio)?;
            if st.sessions.len() + st.pending >= self.settings.max_viewers as usize {
                return Err(OfferError::Full {
                    max: self.settings.max_viewers,
                });
            }
            let branch = match st.spare.take() {
                Some(b) => b,
                None => Branch::prepare(&pipeline, audio, &self.settings.ice, self.epoch).map_err(
                    |reason| OfferError::Internal {
                        id: "-".into(),
                        reason,
                    },
                )?,
            };
            st.pending += 1;
            (branch, plan, video_tee, audio_tee, st.generation)
        };
        let _ = self.events.send(Event::Spare);
        let id = sessions::new_id();
        self.watch(&id, &branch);
        let result = branch.answer(
            &plan,
            &offer,
            &video_tee,
            audio_tee.as_ref(),
            GATHER_TIMEOUT,
        );

        let mut st = self.lock();
        st.pending -= 1;
        match result {
            Err(reason) => {
                drop(st);
                branch.remove();
                log::warn!("session {id}: cannot answer: {reason}");
                Err(OfferError::Internal { id, reason })
            }
            Ok(_) if st.generation != generation || st.stopped => {
                drop(st);
                branch.remove();
                Err(OfferError::NotReady("the pipeline restarted".into()))
            }
            Ok(sdp) => {
                st.sessions.insert(
                    id.clone(),
                    Session {
                        branch,
                        created: Instant::now(),
                        link: Link::Connecting,
                        transport: String::new(),
                        path: String::new(),
                        stats_at: None,
                    },
                );
                let count = st.sessions.len();
                drop(st);
                log::info!(
                    "session {id}: answered in {} ms (h264 pt {}), {count} viewers",
                    posted.elapsed().as_millis(),
                    plan.video.payload
                );
                Ok(Answer { id, sdp })
            }
        }
    }

    /// Hooks a branch to the supervisor: connection state changes, and the
    /// key-frame limiter on the viewer's requests.
    fn watch(&self, id: &str, branch: &Branch) {
        let events = self.events.clone();
        let sid = id.to_string();
        branch
            .webrtc
            .connect_notify(Some("connection-state"), move |w, _| {
                use gstreamer_webrtc::WebRTCPeerConnectionState as S;
                let link = match w.property::<S>("connection-state") {
                    S::Connected | S::Disconnected => Link::Connected,
                    S::Failed => Link::Failed,
                    S::Closed => Link::Closed,
                    _ => Link::Connecting,
                };
                let _ = events.send(Event::Link(sid.clone(), link));
            });
        if let Some(pad) = branch.video_queue_sink() {
            let limiter = self.limiter.clone();
            // A viewer's first request always passes: it cannot show
            // anything before a key frame reaches it.
            let first = std::sync::atomic::AtomicBool::new(true);
            pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                let Some(gst::PadProbeData::Event(event)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                if !pipeline::is_force_key_unit(event) {
                    return gst::PadProbeReturn::Ok;
                }
                let mut l = limiter.lock().unwrap_or_else(|p| p.into_inner());
                if first.swap(false, Ordering::Relaxed) {
                    l.forced(Instant::now());
                    return gst::PadProbeReturn::Ok;
                }
                if l.request(Instant::now()) {
                    gst::PadProbeReturn::Ok
                } else {
                    // Handled: the event is consumed here and goes no
                    // further (Drop on an event trips a GStreamer 1.22 bug).
                    log::debug!("key frame request held back ({} so far)", l.dropped());
                    gst::PadProbeReturn::Handled
                }
            });
        }
    }

    pub fn add_candidates(&self, id: &str, frag: &str) -> Result<(), SessionError> {
        let candidates =
            sdp::fragment_candidates(frag).map_err(|reason| SessionError::BadCandidate {
                id: id.into(),
                reason,
            })?;
        let st = self.lock();
        let session = st
            .sessions
            .get(id)
            .ok_or_else(|| SessionError::NotFound(id.into()))?;
        for (mline, candidate) in candidates {
            session
                .branch
                .webrtc
                .emit_by_name::<()>("add-ice-candidate", &[&mline, &candidate]);
        }
        Ok(())
    }

    pub fn end(&self, id: &str, reason: &str) -> Result<(), SessionError> {
        let (mut session, count) = {
            let mut st = self.lock();
            let s = st
                .sessions
                .remove(id)
                .ok_or_else(|| SessionError::NotFound(id.into()))?;
            (s, st.sessions.len())
        };
        session.branch.remove();
        log::info!(
            "session {id}: ended after {}s ({reason}), {count} viewers",
            session.created.elapsed().as_secs()
        );
        drop(session);
        memory::give_back_freed();
        Ok(())
    }

    pub fn shutdown(&self) {
        let (sessions, spare, shared) = {
            let mut st = self.lock();
            st.stopped = true;
            (
                std::mem::take(&mut st.sessions),
                st.spare.take(),
                st.shared.take(),
            )
        };
        for (_, mut s) in sessions {
            s.branch.remove();
        }
        drop(spare);
        if let Some(mut shared) = shared {
            shared.stop();
        }
        log::info!("media: stopped");
    }

    /// Milliseconds since the viewer's last packet, `None` if none came.
    pub fn silence(&self, session: &Session) -> Option<Duration> {
        let last = session.branch.last_rx.load(Ordering::Relaxed);
        (last > 0).then(|| {
            self.epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last))
        })
    }
}

/// Points `GST_REGISTRY` at a writable place that lasts (the root is
/// read-only on the device) unless it is set already.
pub fn set_registry() {
    if std::env::var_os("GST_REGISTRY").is_some() {
        return;
    }
    let data = std::path::Path::new("/data");
    let run = std::path::Path::new("/run/babymon");
    let dir = if writable(data) {
        data
    } else if writable(run) || (std::fs::create_dir_all(run).is_ok() && writable(run)) {
        run
    } else {
        // Neither exists off the device (a laptop as a user): GStreamer's
        // own default under $HOME is right there.
        return;
    };
    let path = dir.join("gstreamer-registry.bin");
    log::debug!("gstreamer: registry {}", path.display());
    // SAFETY: before gst::init; `prepare_environment` lets the program do
    // it before any thread exists, after which this branch is not taken.
    unsafe { std::env::set_var("GST_REGISTRY", &path) };
}

fn writable(dir: &std::path::Path) -> bool {
    dir.is_dir() && nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok()
}
