//! One viewer's branch of the shared pipeline: queues from the tees,
//! payloaders and a `webrtcbin`. A branch is prepared before any offer
//! comes (the spare), so an offer only has to set payload types, negotiate
//! and gather. Removal releases the tee pads and sets the elements to
//! `Null` before they leave the pipeline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_webrtc::{WebRTCRTPTransceiverDirection, WebRTCSDPType, WebRTCSessionDescription};
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;

use super::advertise;
use super::sdp::{self, Codec, OfferPlan};

/// ICE settings from `[viewer]`.
#[derive(Debug, Clone, Default)]
pub struct Ice {
    pub ports: Option<(u16, u16)>,
    pub addresses: Vec<std::net::IpAddr>,
}

pub struct Branch {
    pub webrtc: gst::Element,
    pipeline: gst::Pipeline,
    video: Leg,
    audio: Option<Leg>,
    /// Milliseconds (since `epoch`) of the last packet from the viewer.
    pub last_rx: Arc<AtomicU64>,
    epoch: Instant,
    removed: bool,
    /// `ice_addresses` that forward to this machine: offered in the
    /// answer beside the host candidates, never bound.
    advertised: Vec<std::net::IpAddr>,
}

/// queue ! payloader ! webrtcbin, and the tee pad feeding it once linked.
struct Leg {
    queue: gst::Element,
    pay: gst::Element,
    tee_pad: Option<(gst::Element, gst::Pad)>,
}

/// Turns UPnP off in the libnice agent: babymon never asks the router to
/// open ports, and libnice would otherwise hold the end of gathering back
/// for its UPnP timeout (200 ms) on every session.
fn no_upnp(ice: &gst_webrtc::WebRTCICE) {
    if ice.find_property("agent").is_none() {
        log::warn!("ice: the ICE agent has no libnice agent; UPnP stays as it is");
        return;
    }
    let agent = ice.property::<glib::Object>("agent");
    if agent.find_property("upnp").is_some() {
        agent.set_property("upnp", false);
    }
}

/// How far back a viewer can ask for a lost packet again (NACK). webrtcbin
/// keeps 500 packets per stream, about 2.5 s of 720p video held per viewer;
/// a resend later than a second arrives after its frame was due, even over
/// the tunnel, and the viewer then asks for a key frame instead.
const RTX_HISTORY_MS: u32 = 1000;

/// Bounds the resend history of every `rtprtxsend` that webrtcbin makes
/// for this viewer (it makes them when the answer is set).
fn bound_rtx_history(webrtc: &gst::Element) {
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else {
        return;
    };
    bin.connect_deep_element_added(|_, _, element| {
        let found = std::iter::once(element.clone()).chain(
            element
                .downcast_ref::<gst::Bin>()
                .map(|b| {
                    b.iterate_recurse()
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        );
        for e in found {
            if e.factory().is_some_and(|f| f.name() == "rtprtxsend") {
                e.set_property("max-size-time", RTX_HISTORY_MS);
            }
        }
    });
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("element {factory}: not found"))
}

impl Branch {
    /// Builds a branch in `pipeline`, linked up to webrtcbin but not yet to
    /// the tees, and brings it to the pipeline's state.
    pub fn prepare(
        pipeline: &gst::Pipeline,
        audio: bool,
        ice: &Ice,
        epoch: Instant,
    ) -> Result<Branch, String> {
        let webrtc = make("webrtcbin")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        bound_rtx_history(&webrtc);
        // Loopback and this machine's own addresses are given to libnice
        // (which then gathers on those only); the others are advertised.
        let addresses = advertise::split(&ice.addresses, advertise::is_local);
        if !addresses.advertised.is_empty() {
            log::debug!(
                "ice: advertising {:?} beside the host candidates",
                addresses.advertised
            );
        }
        if let Some(agent) = webrtc.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent") {
            no_upnp(&agent);
            if let Some((min, max)) = ice.ports {
                agent.set_property("min-rtp-port", u32::from(min));
                agent.set_property("max-rtp-port", u32::from(max));
            }
            for address in &addresses.bound {
                let address = address.to_string();
                if !agent.emit_by_name::<bool>("add-local-ip-address", &[&address]) {
                    log::warn!("ice: address {address}: not added to the agent");
                }
            }
        }
        let video = Leg::new("rtph264pay")?;
        video.pay.set_property("config-interval", -1i32);
        video
            .pay
            .set_property_from_str("aggregate-mode", "zero-latency");
        let audio = if audio {
            Some(Leg::new("rtpopuspay")?)
        } else {
            None
        };
        pipeline
            .add(&webrtc)
            .map_err(|e| format!("webrtcbin: cannot add: {e}"))?;
        let mut branch = Branch {
            webrtc,
            pipeline: pipeline.clone(),
            video,
            audio,
            last_rx: Arc::new(AtomicU64::new(0)),
            epoch,
            removed: false,
            advertised: addresses.advertised,
        };
        let legs = std::iter::once(&branch.video).chain(branch.audio.as_ref());
        for leg in legs {
            leg.attach(pipeline, &branch.webrtc)?;
        }
        branch
            .webrtc
            .sync_state_with_parent()
            .map_err(|e| format!("webrtcbin: {e}"))?;
        for leg in std::iter::once(&branch.video).chain(branch.audio.as_ref()) {
            leg.pay
                .sync_state_with_parent()
                .map_err(|e| format!("payloader: {e}"))?;
            leg.queue
                .sync_state_with_parent()
                .map_err(|e| format!("queue: {e}"))?;
        }
        branch.removed = false;
        Ok(branch)
    }

    /// Negotiates with the viewer's offer and gathers every candidate;
    /// returns the complete answer. The tees are linked once the answer is
    /// set, so that the first key frame forced afterwards reaches it.
    pub fn answer(
        &mut self,
        plan: &OfferPlan,
        offer: &str,
        video_tee: &gst::Element,
        audio_tee: Option<&gst::Element>,
        gather_timeout: Duration,
    ) -> Result<String, String> {
        self.video
            .pay
            .set_property("pt", u32::from(plan.video.payload));
        if let (Some(leg), Some(codec)) = (&self.audio, &plan.audio) {
            leg.pay.set_property("pt", u32::from(codec.payload));
        }
        self.set_preferences(plan)?;

        let (tx, rx) = mpsc::channel();
        let gathered = self
            .webrtc
            .connect_notify(Some("ice-gathering-state"), move |w, _| {
                let state =
                    w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
                if state == gst_webrtc::WebRTCICEGatheringState::Complete {
                    let _ = tx.send(());
                }
            });
        let offer = sdp::keep_planned(offer, plan);
        let result = self.negotiate(&offer, video_tee, audio_tee, &rx, gather_timeout);
        self.webrtc.disconnect(gathered);
        let answer = result?;
        let plid = plan
            .video
            .fmtp
            .get("profile-level-id")
            .map_or("42e01f", String::as_str);
        let answer = sdp::with_profile_level_id(&answer, plan.video.payload, plid);
        let answer = advertise::with_advertised_candidates(&answer, &self.advertised);
        Ok(sdp::without_ssrc_lines(&answer))
    }

    fn negotiate(
        &mut self,
        offer: &str,
        video_tee: &gst::Element,
        audio_tee: Option<&gst::Element>,
        gathered: &mpsc::Receiver<()>,
        gather_timeout: Duration,
    ) -> Result<String, String> {
        let t0 = Instant::now();
        let sdp = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|e| format!("offer: {e}"))?;
        let offer = WebRTCSessionDescription::new(WebRTCSDPType::Offer, sdp);
        self.call("set-remote-description", &offer)?;
        let t_remote = t0.elapsed();
        let reply = self.promise("create-answer", None)?;
        let answer = reply
            .as_ref()
            .and_then(|s| s.get::<WebRTCSessionDescription>("answer").ok())
            .ok_or_else(|| {
                match reply
                    .as_ref()
                    .and_then(|s| s.get::<glib::Error>("error").ok())
                {
                    Some(e) => format!("create-answer: {e}"),
                    None => "create-answer: no answer".to_string(),
                }
            })?;
        let t_answer = t0.elapsed();
        // The payloaders send what the answer says, whatever webrtcbin chose.
        if let Ok(text) = answer.sdp().as_text() {
            if let Some(pt) = sdp::first_payload(&text, "video") {
                self.video.pay.set_property("pt", u32::from(pt));
            }
            if let (Some(leg), Some(pt)) = (&self.audio, sdp::first_payload(&text, "audio")) {
                leg.pay.set_property("pt", u32::from(pt));
            }
        }
        self.call("set-local-description", &answer)?;
        let t_local = t0.elapsed();
        self.watch_rx();
        self.video.link_tee(video_tee)?;
        if let (Some(leg), Some(tee)) = (&mut self.audio, audio_tee) {
            leg.link_tee(tee)?;
        }
        let state = self
            .webrtc
            .property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state != gst_webrtc::WebRTCICEGatheringState::Complete
            && gathered.recv_timeout(gather_timeout).is_err()
        {
            log::warn!(
                "ice: gathering not complete after {gather_timeout:?}; answering with what was found"
            );
        }
        log::debug!(
            "answer: remote description {} ms, answer {} ms, local description {} ms, gathered {} ms",
            t_remote.as_millis(),
            t_answer.as_millis(),
            t_local.as_millis(),
            t0.elapsed().as_millis()
        );
        let local = self
            .webrtc
            .property::<Option<WebRTCSessionDescription>>("local-description")
            .ok_or("no local description")?;
        local.sdp().as_text().map_err(|e| format!("answer: {e}"))
    }

    fn set_preferences(&self, plan: &OfferPlan) -> Result<(), String> {
        let transceivers = (0u32..).map_while(|i| {
            self.webrtc
                .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>(
                    "get-transceiver",
                    &[&(i as i32)],
                )
        });
        for t in transceivers {
            let kind = t.property::<gst_webrtc::WebRTCKind>("kind");
            let codec = match kind {
                gst_webrtc::WebRTCKind::Video => Some((&plan.video, "video")),
                gst_webrtc::WebRTCKind::Audio => plan.audio.as_ref().map(|c| (c, "audio")),
                _ => None,
            };
            t.set_property("direction", WebRTCRTPTransceiverDirection::Sendonly);
            t.set_property("do-nack", true);
            if let Some((codec, media)) = codec {
                t.set_property("codec-preferences", codec_caps(codec, media));
            }
        }
        Ok(())
    }

    /// Emits an action that takes a description and a promise; waits.
    fn call(&self, action: &str, description: &WebRTCSessionDescription) -> Result<(), String> {
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>(action, &[description, &promise]);
        check_promise(action, promise.wait(), promise.get_reply())
    }

    fn promise(
        &self,
        action: &str,
        arg: Option<&gst::Structure>,
    ) -> Result<Option<gst::Structure>, String> {
        let promise = gst::Promise::new();
        self.webrtc.emit_by_name::<()>(action, &[&arg, &promise]);
        let result = promise.wait();
        let reply = promise.get_reply().map(|s| s.to_owned());
        check_promise(action, result, reply.as_deref())?;
        Ok(reply)
    }

    /// Notes every packet the viewer sends (RTCP, DTLS) for the silence
    /// check: a probe on each `nicesrc` inside webrtcbin.
    fn watch_rx(&self) {
        let Some(bin) = self.webrtc.downcast_ref::<gst::Bin>() else {
            return;
        };
        for element in bin.iterate_recurse().into_iter().flatten() {
            let is_nicesrc = element.factory().is_some_and(|f| f.name() == "nicesrc");
            let Some(pad) = element.static_pad("src").filter(|_| is_nicesrc) else {
                continue;
            };
            let last = self.last_rx.clone();
            let epoch = self.epoch;
            pad.add_probe(
                gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
                move |_, _| {
                    last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                },
            );
        }
    }

    /// The queues' sink pads, where a viewer's key-frame requests pass on
    /// their way to the encoder.
    pub fn video_queue_sink(&self) -> Option<gst::Pad> {
        self.video.queue.static_pad("sink")
    }

    /// Unlinks from the tees, releases their pads, sets every element to
    /// `Null` and removes it. Safe to call twice.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        for leg in std::iter::once(&mut self.video).chain(self.audio.as_mut()) {
            leg.unlink_tee();
        }
        let _ = self.webrtc.set_state(gst::State::Null);
        for leg in std::iter::once(&self.video).chain(self.audio.as_ref()) {
            let _ = leg.pay.set_state(gst::State::Null);
            let _ = leg.queue.set_state(gst::State::Null);
            let _ = self.pipeline.remove_many([&leg.queue, &leg.pay]);
        }
        let _ = self.pipeline.remove(&self.webrtc);
    }
}

impl Drop for Branch {
    fn drop(&mut self) {
        self.remove();
    }
}

impl Leg {
    fn new(payloader: &str) -> Result<Leg, String> {
        let queue = make("queue")?;
        // A viewer that falls behind loses its oldest frames; it never
        // holds the tee (and the other viewers) back.
        queue.set_property_from_str("leaky", "downstream");
        queue.set_property("max-size-buffers", 200u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 500_000_000u64);
        Ok(Leg {
            queue,
            pay: make(payloader)?,
            tee_pad: None,
        })
    }

    fn attach(&self, pipeline: &gst::Pipeline, webrtc: &gst::Element) -> Result<(), String> {
        pipeline
            .add_many([&self.queue, &self.pay])
            .map_err(|e| format!("branch: cannot add: {e}"))?;
        self.queue
            .link(&self.pay)
            .map_err(|e| format!("queue to payloader: {e}"))?;
        let sink = webrtc
            .request_pad_simple("sink_%u")
            .ok_or("webrtcbin: no sink pad")?;
        let src = self.pay.static_pad("src").ok_or("payloader: no src pad")?;
        src.link(&sink)
            .map_err(|e| format!("payloader to webrtcbin: {e}"))?;
        Ok(())
    }

    fn link_tee(&mut self, tee: &gst::Element) -> Result<(), String> {
        let pad = tee.request_pad_simple("src_%u").ok_or("tee: no src pad")?;
        let sink = self.queue.static_pad("sink").ok_or("queue: no sink pad")?;
        pad.link(&sink).map_err(|e| format!("tee to queue: {e}"))?;
        self.tee_pad = Some((tee.clone(), pad));
        Ok(())
    }

    fn unlink_tee(&mut self) {
        if let Some((tee, pad)) = self.tee_pad.take() {
            if let Some(sink) = self.queue.static_pad("sink") {
                let _ = pad.unlink(&sink);
            }
            tee.release_request_pad(&pad);
        }
    }
}

/// The caps a transceiver should answer with: the offer's own payload
/// type and `fmtp` values.
pub fn codec_caps(codec: &Codec, media: &str) -> gst::Caps {
    let mut s = gst::Structure::builder("application/x-rtp")
        .field("media", media)
        .field("encoding-name", codec.encoding.to_ascii_uppercase())
        .field("payload", i32::from(codec.payload))
        .field("clock-rate", codec.clock_rate as i32)
        .build();
    if let Some(channels) = codec.channels {
        s.set("encoding-params", channels.to_string());
    }
    for (k, v) in &codec.fmtp {
        if k == "packetization-mode" || k == "profile-level-id" || k == "level-asymmetry-allowed" {
            s.set(k.as_str(), v.as_str());
        }
    }
    gst::Caps::builder_full().structure(s).build()
}

fn check_promise(
    action: &str,
    result: gst::PromiseResult,
    reply: Option<&gst::StructureRef>,
) -> Result<(), String> {
    if result != gst::PromiseResult::Replied {
        return Err(format!("{action}: {result:?}"));
    }
    // On 1.22 a successful set-*-description replies with no structure.
    match reply.and_then(|s| s.get::<glib::Error>("error").ok()) {
        Some(e) => Err(format!("{action}: {e}")),
        None => Ok(()),
    }
}
