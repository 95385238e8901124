//! The media thread: watches the pipeline's bus and the camera device
//! (what it then does is [`super::recover`]'s), builds the pipeline on the
//! best source, looks for a camera now and then while on the test pattern, keeps
//! a spare branch ready, forces a key frame when a viewer connects, reads
//! how each viewer is connected, and ends sessions that failed or fell
//! silent.

use std::net::IpAddr;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;

use super::audio;
use super::branch::Branch;
use super::camera;
use super::encoder;
use super::engine::{Event, Inner, State};
use super::pipeline::{self, Shared};
use super::recover::{self, Trouble};
use super::sessions::{self, Link};
use super::source::{self, VideoSource};
use super::{EncoderInfo, VideoInfo};

/// How often the camera is looked for while the test pattern stands in.
const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// How often sessions are checked and their candidate pair read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const STATS_EVERY: Duration = Duration::from_secs(5);
/// How long a camera that keeps failing is left alone.
pub const CAMERA_REST: Duration = Duration::from_secs(30);

pub fn run(inner: Arc<Inner>, events: mpsc::Receiver<Event>) {
    let mut last_check = Instant::now();
    let mut last_scan = Instant::now();
    loop {
        match events.recv_timeout(Duration::from_millis(100)) {
            Ok(event) => handle(&inner, event),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if inner.lock().stopped {
            return;
        }
        match recover::bus_trouble(&inner) {
            Some(Trouble::Capture(reason)) => recover::switch_source(&inner, &reason),
            Some(Trouble::Pipeline(reason)) => recover::restart(&inner, &reason),
            None => {}
        }
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            check_sessions(&inner);
            let gone = inner
                .lock()
                .camera_device
                .clone()
                .filter(|d| !camera::present(d));
            if let Some(device) = gone {
                recover::switch_source(&inner, &format!("camera {device}: device gone"));
            }
        }
        if last_scan.elapsed() >= RESCAN_EVERY {
            last_scan = Instant::now();
            rescan(&inner);
        }
    }
}

fn handle(inner: &Inner, event: Event) {
    match event {
        Event::Spare => prepare_spare(inner, &mut inner.lock()),
        Event::Link(id, link) => {
            let mut st = inner.lock();
            let Some(session) = st.sessions.get_mut(&id) else {
                return;
            };
            if session.link == link {
                return;
            }
            session.link = link;
            log::info!("session {id}: {}", link.word());
            if link == Link::Connected {
                session.stats_at = None;
                if let Some(shared) = &st.shared {
                    // The viewer's first picture needs a key frame now.
                    inner
                        .limiter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .forced(Instant::now());
                    shared.force_key_frame();
                }
            }
        }
        Event::Stats {
            id,
            transport,
            remote,
        } => {
            let mut st = inner.lock();
            if let Some(session) = st.sessions.get_mut(&id) {
                let path = remote.map_or("", |r| sessions::path(r, &sessions::own_addresses()));
                if session.transport != transport || session.path != path {
                    log::info!("session {id}: connected over {transport}, path {path}");
                }
                session.transport = transport;
                session.path = path.to_string();
            }
        }
    }
}

/// The best video source there is now: the camera unless it rests after
/// failing or was unplugged, else the test pattern (with the reason).
pub fn choose_video(inner: &Inner, st: &mut State) -> (VideoSource, camera::Scan) {
    let s = &inner.settings;
    forget_replugged(st);
    let scan = camera::scan(
        s.want.width,
        s.want.height,
        s.want.framerate,
        st.unplugged.as_ref(),
    );
    let resting = st.camera_rest_until.is_some_and(|t| Instant::now() < t);
    let libcamera = gst::ElementFactory::find("libcamerasrc").is_some();
    let video = if resting {
        VideoSource::Test {
            reason: format!(
                "the camera failed twice within {}s; trying it again later",
                CAMERA_REST.as_secs()
            ),
        }
    } else {
        match (source::choose(&s.want, &scan, libcamera), &st.unplugged) {
            (VideoSource::Test { .. }, Some(u)) => VideoSource::Test {
                reason: format!(
                    "camera {} was unplugged; waiting for it to come back",
                    u.path
                ),
            },
            (chosen, _) => chosen,
        }
    };
    (video, scan)
}

/// Builds the shared pipeline on the best source there is; on failure with
/// a camera, falls back to the test pattern.
pub fn build(inner: &Inner, st: &mut State) -> Result<(), String> {
    let s = &inner.settings;
    let exists = |name: &str| gst::ElementFactory::find(name).is_some();
    let (video, scan) = choose_video(inner, st);
    let enc = encoder::choose(&s.encoder, &exists, &scan.codecs)
        .ok_or("no H.264 encoder: install x264enc or openh264enc")?;
    let audio_src = audio::choose(
        s.audio_enabled,
        &s.audio_device,
        &audio::scan(),
        exists("alsasrc"),
    );
    let result = try_build(inner, &video, &enc, &audio_src);
    let (video, shared) = match result {
        Ok(shared) => (video, shared),
        Err(e) if !matches!(video, VideoSource::Test { .. }) => {
            let device = video.device().unwrap_or("libcamera");
            log::error!("camera {device}: {e}; using the test pattern");
            let test = VideoSource::Test {
                reason: format!("camera {device} failed"),
            };
            let shared = try_build(inner, &test, &enc, &audio_src)?;
            (test, shared)
        }
        Err(e) => return Err(e),
    };
    log_video(&video);
    log::info!("encoder: {} ({})", enc.name, enc.reason);
    log::info!(
        "audio: {}",
        audio_src
            .info()
            .device
            .unwrap_or_else(|| audio_src.info().kind)
    );
    let (width, height) = source::output_size(&s.want);
    st.status.encoder = EncoderInfo { ..enc };
    st.status.video = VideoInfo {
        width,
        height,
        framerate: s.want.framerate,
        bitrate_kbps: s.bitrate_kbps,
    };
    st.status.audio = audio_src.info();
    st.generation += 1;
    st.shared = Some(shared);
    take_source(st, &video);
    Ok(())
}

pub fn log_video(video: &VideoSource) {
    match video {
        VideoSource::Test { reason } => log::info!("video: test pattern ({reason})"),
        other => log::info!("video: {} {}", other.info().kind, other.info().format),
    }
}

/// Records `video` as the source in use.
pub fn take_source(st: &mut State, video: &VideoSource) {
    st.status.source = video.info();
    st.camera_device = video.device().map(String::from);
    st.on_test_pattern = matches!(video, VideoSource::Test { .. });
}

fn try_build(
    inner: &Inner,
    video: &VideoSource,
    enc: &EncoderInfo,
    audio_src: &audio::AudioSource,
) -> Result<Shared, String> {
    let s = &inner.settings;
    let video_text = source::video_description(video, &s.want);
    let (w, h) = source::output_size(&s.want);
    let enc_text = encoder::description(&enc.name, w, h, s.want.framerate, s.bitrate_kbps);
    let audio_text = source::audio_description(audio_src);
    let shared = pipeline::build(&video_text, &enc_text, audio_text.as_deref())
        .map_err(|e| e.to_string())?;
    // A camera that cannot start says so on the bus at once.
    match shared.pipeline.state(gst::ClockTime::from_seconds(5)) {
        (Err(_), _, _) => Err(bus_error(&shared).unwrap_or_else(|| "did not start".into())),
        _ => Ok(shared),
    }
}

/// Keeps one branch ready for the next offer.
pub fn prepare_spare(inner: &Inner, st: &mut State) {
    if st.spare.is_some() || st.stopped {
        return;
    }
    let Some(shared) = &st.shared else {
        return;
    };
    let audio = shared.audio_tee.is_some();
    match Branch::prepare(&shared.pipeline, audio, &inner.settings.ice, inner.epoch) {
        Ok(b) => st.spare = Some(b),
        Err(e) => log::warn!("spare branch: {e}"),
    }
}

fn bus_error(shared: &Shared) -> Option<String> {
    let bus = shared.pipeline.bus()?;
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(pipeline::describe_error(
            &msg,
            e.error().to_string(),
            e.debug().map(|d| d.to_string()),
        )),
        _ => None,
    }
}

/// Forgets the unplugged node once it is gone or made anew.
fn forget_replugged(st: &mut State) {
    if let Some(u) = &st.unplugged
        && !camera::is_unplugged(&u.path, Some(u))
    {
        log::info!("camera {}: its node was made anew", u.path);
        st.unplugged = None;
    }
}

/// While the test pattern stands in for a camera that was not found,
/// looks again; a camera that appears gets the pipeline.
fn rescan(inner: &Inner) {
    let s = &inner.settings;
    {
        let st = inner.lock();
        let resting = st.camera_rest_until.is_some_and(|t| Instant::now() < t);
        if s.want.source == babymon::config::Source::Test || !st.on_test_pattern || resting {
            return;
        }
    }
    let unplugged = {
        let mut st = inner.lock();
        forget_replugged(&mut st);
        st.unplugged.clone()
    };
    let scan = camera::scan(
        s.want.width,
        s.want.height,
        s.want.framerate,
        unplugged.as_ref(),
    );
    let libcamera = gst::ElementFactory::find("libcamerasrc").is_some();
    if let found @ (VideoSource::V4l2 { .. } | VideoSource::Libcamera { .. }) =
        source::choose(&s.want, &scan, libcamera)
    {
        recover::switch_source(
            inner,
            &format!("camera {} found", found.device().unwrap_or("libcamera")),
        );
    }
}

/// Ends sessions that failed or fell silent, and reads how the others are
/// connected.
fn check_sessions(inner: &Inner) {
    let mut ended = Vec::new();
    {
        let mut st = inner.lock();
        for (id, session) in st.sessions.iter_mut() {
            let silent = inner.silence(session);
            if let Some(reason) = sessions::verdict(session.link, session.created.elapsed(), silent)
            {
                ended.push((id.clone(), reason));
                continue;
            }
            let due = session.stats_at.is_none_or(|t| t.elapsed() >= STATS_EVERY);
            if session.link == Link::Connected && due {
                session.stats_at = Some(Instant::now());
                ask_stats(inner, id, &session.branch.webrtc);
            }
        }
    }
    for (id, reason) in ended {
        let _ = inner.end(&id, &reason);
    }
}

/// Asks webrtcbin for its stats; the answer comes back as an event.
fn ask_stats(inner: &Inner, id: &str, webrtc: &gst::Element) {
    let events = inner.events.clone();
    let id = id.to_string();
    let promise = gst::Promise::with_change_func(move |reply| {
        if let Ok(Some(stats)) = reply
            && let Some((transport, remote)) = selected_pair(stats)
        {
            let _ = events.send(Event::Stats {
                id,
                transport,
                remote,
            });
        }
    });
    webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
}

/// The transport and remote address of the selected candidate pair in a
/// webrtcbin stats structure.
fn selected_pair(stats: &gst::StructureRef) -> Option<(String, Option<IpAddr>)> {
    let entries: Vec<gst::Structure> = stats
        .iter()
        .filter_map(|(_, v)| v.get::<gst::Structure>().ok())
        .collect();
    let kind = |s: &gst::Structure| s.get::<gst_webrtc_type::WebRTCStatsType>("type").ok();
    let pair = entries
        .iter()
        .find(|s| kind(s) == Some(gst_webrtc_type::WebRTCStatsType::CandidatePair))?;
    let remote_id = pair.get::<String>("remote-candidate-id").ok()?;
    let remote = entries
        .iter()
        .find(|s| s.get::<String>("id").ok().as_deref() == Some(remote_id.as_str()))?;
    let protocol = remote.get::<String>("protocol").unwrap_or_default();
    let address = remote
        .get::<String>("address")
        .ok()
        .and_then(|a| a.parse::<IpAddr>().ok());
    Some((sessions::transport(&protocol).to_string(), address))
}

use gstreamer_webrtc as gst_webrtc_type;
