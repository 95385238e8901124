//! The shared half of the pipeline: one capture, one H.264 encoder and one
//! Opus encoder, each ending in a `tee` that viewers' branches hang from.
//! Built in one function that returns `Result`; [`Shared::stop`] sets it to
//! `Null`, and dropping it does too.

use gst::prelude::*;
use gstreamer as gst;

/// Why the shared pipeline could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline {0:?}: {1}")]
    Parse(String, String),
    #[error("pipeline: element {0} missing after build")]
    Missing(&'static str),
    #[error("pipeline: cannot start: {0}")]
    Start(String),
}

pub struct Shared {
    pub pipeline: gst::Pipeline,
    pub video_tee: gst::Element,
    pub audio_tee: Option<gst::Element>,
    stopped: bool,
}

/// Builds the shared pipeline from the capture text (`source`), the
/// encoder text (`encoder`) and the audio text, then sets it playing.
pub fn build(video: &str, encoder: &str, audio: Option<&str>) -> Result<Shared, PipelineError> {
    let mut text = format!(
        "{video} ! {encoder} ! h264parse config-interval=-1 ! \
         video/x-h264,stream-format=byte-stream,alignment=au ! tee name=vtee allow-not-linked=true"
    );
    if let Some(audio) = audio {
        text.push(' ');
        text.push_str(audio);
    }
    log::debug!("pipeline: {text}");
    let element =
        gst::parse::launch(&text).map_err(|e| PipelineError::Parse(text.clone(), e.to_string()))?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| PipelineError::Parse(text.clone(), "not a pipeline".into()))?;
    let mut shared = Shared {
        video_tee: pipeline
            .by_name("vtee")
            .ok_or(PipelineError::Missing("vtee"))?,
        audio_tee: None,
        pipeline,
        stopped: false,
    };
    if audio.is_some() {
        shared.audio_tee = Some(
            shared
                .pipeline
                .by_name("atee")
                .ok_or(PipelineError::Missing("atee"))?,
        );
    }
    if log::log_enabled!(log::Level::Debug)
        && let Some(pad) = shared.video_tee.static_pad("sink")
    {
        pad.add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                && !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
            {
                log::debug!("video: key frame at {:?}", b.pts());
            }
            gst::PadProbeReturn::Ok
        });
    }
    shared
        .pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| PipelineError::Start(format!("{e}: {}", first_error(&shared.pipeline))))?;
    Ok(shared)
}

impl Shared {
    /// Asks the encoder for a key frame (with SPS and PPS) now.
    pub fn force_key_frame(&self) {
        if let Some(pad) = self.video_tee.static_pad("sink") {
            let sent = pad.push_event(force_key_unit_event());
            log::debug!("video: key frame asked (event handled: {sent})");
        }
    }

    pub fn is_playing(&self) -> bool {
        !self.stopped && self.pipeline.current_state() == gst::State::Playing
    }

    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            let _ = self.pipeline.set_state(gst::State::Null);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An upstream force-key-unit event as `gst_video_event_new_upstream_
/// force_key_unit` makes it: any running time, with headers.
pub fn force_key_unit_event() -> gst::Event {
    let s = gst::Structure::builder("GstForceKeyUnit")
        .field("running-time", u64::MAX)
        .field("all-headers", true)
        .field("count", 0u32)
        .build();
    gst::event::CustomUpstream::new(s)
}

/// True for a force-key-unit event (a viewer's PLI or FIR on its way up).
pub fn is_force_key_unit(event: &gst::EventRef) -> bool {
    event
        .structure()
        .is_some_and(|s| s.name() == "GstForceKeyUnit")
}

/// The first error waiting on the bus, for a start that failed at once.
fn first_error(pipeline: &gst::Pipeline) -> String {
    let Some(bus) = pipeline.bus() else {
        return "no bus".into();
    };
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        if let gst::MessageView::Error(e) = msg.view() {
            return describe_error(
                &msg,
                e.error().to_string(),
                e.debug().map(|d| d.to_string()),
            );
        }
    }
    "no error on the bus".into()
}

/// A bus error as a log line wants it: the element's path, the message
/// and the debug text.
pub fn describe_error(msg: &gst::Message, error: String, debug: Option<String>) -> String {
    let path = msg
        .src()
        .map_or_else(|| "?".to_string(), |s| s.path_string().to_string());
    match debug {
        Some(d) => format!("{path}: {error} ({d})"),
        None => format!("{path}: {error}"),
    }
}
