//! The shared half of the pipeline: one capture, one H.264 encoder and one
//! Opus encoder, each ending in a `tee` that viewers' branches hang from.
//! The capture (camera or test pattern, up to raw video) is a bin of its
//! own in front of the encoder, so that a failed camera can be swapped for
//! another source while the encoder, the tees and every viewer stay.
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
    #[error("capture {0:?}: {1}")]
    Capture(String, String),
}

pub struct Shared {
    pub pipeline: gst::Pipeline,
    pub video_tee: gst::Element,
    pub audio_tee: Option<gst::Element>,
    /// The camera or test pattern, up to raw video; none between a stop
    /// and the next start.
    capture: Option<gst::Bin>,
    /// Where the capture's raw video enters the encoder.
    video_in: gst::Pad,
    stopped: bool,
}

/// Builds the shared pipeline from the capture text (`video`), the
/// encoder text (`encoder`) and the audio text, then sets it playing.
pub fn build(video: &str, encoder: &str, audio: Option<&str>) -> Result<Shared, PipelineError> {
    let mut text = format!(
        "identity name=video_in silent=true ! {encoder} ! h264parse config-interval=-1 ! \
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
    let video_in = pipeline
        .by_name("video_in")
        .and_then(|e| e.static_pad("sink"))
        .ok_or(PipelineError::Missing("video_in"))?;
    // A capture that ends (a camera gone, a source that stops) ends its own
    // stream only: the encoder and the viewers wait for the next source,
    // and the capture's end is told on the bus as the capture's error.
    video_in.add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        |pad, info| match &info.data {
            Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::Eos => {
                if let Some(capture) = pad.peer().and_then(|p| p.parent_element()) {
                    let _ = capture.post_message(
                        gst::message::Error::builder(
                            gst::StreamError::Failed,
                            "the capture ended its stream",
                        )
                        .src(&capture)
                        .build(),
                    );
                }
                gst::PadProbeReturn::Handled
            }
            _ => gst::PadProbeReturn::Ok,
        },
    );
    let capture = capture_bin(video)?;
    let mut shared = Shared {
        video_tee: pipeline
            .by_name("vtee")
            .ok_or(PipelineError::Missing("vtee"))?,
        audio_tee: None,
        capture: Some(capture.clone()),
        video_in,
        pipeline,
        stopped: false,
    };
    shared.attach(&capture)?;
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

/// The capture text as a bin with one `src` pad.
fn capture_bin(video: &str) -> Result<gst::Bin, PipelineError> {
    log::debug!("capture: {video}");
    let bin = gst::parse::bin_from_description(video, true)
        .map_err(|e| PipelineError::Capture(video.into(), e.to_string()))?;
    Ok(bin)
}

impl Shared {
    /// Asks the encoder for a key frame (with SPS and PPS) now.
    pub fn force_key_frame(&self) {
        if let Some(pad) = self.video_tee.static_pad("sink") {
            let sent = pad.push_event(force_key_unit_event());
            log::debug!("video: key frame asked (event handled: {sent})");
        }
    }

    /// Stops the capture and takes it out of the pipeline. The encoder, the
    /// tees and every viewer's branch stay; they wait for the next capture.
    pub fn stop_capture(&mut self) {
        if let Some(old) = self.capture.take() {
            let _ = old.set_state(gst::State::Null);
            if let Some(src) = old.static_pad("src") {
                let _ = src.unlink(&self.video_in);
            }
            let _ = self.pipeline.remove(&old);
        }
    }

    /// Puts in the capture `video` describes (after [`Shared::stop_capture`])
    /// and starts it. On failure it is taken out again.
    pub fn start_capture(&mut self, video: &str) -> Result<(), PipelineError> {
        self.stop_capture();
        let new = capture_bin(video)?;
        self.attach(&new)?;
        self.capture = Some(new.clone());
        let started = new
            .sync_state_with_parent()
            .map_err(|e| e.to_string())
            // A camera that cannot start says so at once.
            .and_then(|_| match new.state(gst::ClockTime::from_seconds(5)) {
                (Err(e), _, _) => Err(format!("{e}: {}", first_error(&self.pipeline))),
                _ => Ok(()),
            });
        if let Err(e) = started {
            self.stop_capture();
            return Err(PipelineError::Capture(video.into(), e));
        }
        self.force_key_frame();
        Ok(())
    }

    /// Whether `object` is (inside) the current capture.
    pub fn in_capture(&self, object: &gst::Object) -> bool {
        self.capture
            .as_ref()
            .is_some_and(|c| object == c.upcast_ref::<gst::Object>() || object.has_as_ancestor(c))
    }

    fn attach(&self, capture: &gst::Bin) -> Result<(), PipelineError> {
        let fail = |e: String| PipelineError::Capture(capture.name().to_string(), e);
        self.pipeline
            .add(capture)
            .map_err(|e| fail(format!("cannot add: {e}")))?;
        let src = capture
            .static_pad("src")
            .ok_or_else(|| fail("no src pad".into()))?;
        src.link(&self.video_in)
            .map(|_| ())
            .map_err(|e| fail(format!("cannot link to the encoder: {e}")))
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
