//! A WHEP viewer that is not a browser: a GStreamer `webrtcbin` receiver
//! posts its offer over HTTP to a real `babymon serve`, decodes the H.264
//! and Opus it gets, and counts the frames. Runs only in a loopback-only
//! network namespace (`scripts/in-netns cargo test --test whep_client`).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;

use common::{Server, config, request, require_loopback_only};

/// A receiving peer: webrtcbin with recvonly H.264 and Opus, decoders
/// behind it, and counters of decoded video frames and audio buffers.
struct Viewer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    frames: Arc<AtomicU64>,
    audio: Arc<AtomicU64>,
    first_frame: Arc<Mutex<Option<Instant>>>,
}

impl Viewer {
    fn new() -> Viewer {
        Viewer::with_udp(true)
    }

    /// A viewer whose ICE agent offers TCP only when `udp` is false, as
    /// when a network (or a tunnel without QUIC) lets no UDP through.
    fn with_udp(udp: bool) -> Viewer {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        let webrtc = gst::ElementFactory::make("webrtcbin").build().unwrap();
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        // Decode at once and ask for a key frame when there is none, as a
        // browser does with a fresh stream.
        webrtc.set_property("latency", 0u32);
        let agent = webrtc.property::<gst_webrtc::WebRTCICE>("ice-agent");
        assert!(agent.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]));
        agent.set_property("ice-udp", udp);
        pipeline.add(&webrtc).unwrap();
        for caps in [
            "application/x-rtp,media=video,encoding-name=H264,payload=108,clock-rate=90000,\
             packetization-mode=(string)1,profile-level-id=(string)42e01f",
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000,encoding-params=(string)2",
        ] {
            let caps = caps.parse::<gst::Caps>().unwrap();
            webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        }
        let frames = Arc::new(AtomicU64::new(0));
        let audio = Arc::new(AtomicU64::new(0));
        let first_frame = Arc::new(Mutex::new(None));
        let pl = pipeline.downgrade();
        let (f, a, first) = (frames.clone(), audio.clone(), first_frame.clone());
        webrtc.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pl.upgrade() else { return };
            let media = pad
                .current_caps()
                .and_then(|c| c.structure(0).and_then(|s| s.get::<String>("media").ok()))
                .unwrap_or_default();
            let text = if media == "video" {
                "rtph264depay request-keyframe=true wait-for-keyframe=true ! h264parse ! avdec_h264 name=dec max-threads=1 ! fakesink sync=false"
            } else {
                "rtpopusdepay ! opusdec name=dec ! fakesink sync=false"
            };
            let bin = gst::parse::bin_from_description(text, true).unwrap();
            let dec = bin.by_name("dec").unwrap();
            let (counter, first) = if media == "video" {
                (f.clone(), Some(first.clone()))
            } else {
                (a.clone(), None)
            };
            dec.static_pad("src")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    if counter.fetch_add(1, Ordering::SeqCst) == 0
                        && let Some(first) = &first
                    {
                        *first.lock().unwrap() = Some(Instant::now());
                    }
                    gst::PadProbeReturn::Ok
                });
            pipeline.add(&bin).unwrap();
            bin.sync_state_with_parent().unwrap();
            pad.link(&bin.static_pad("sink").unwrap()).unwrap();
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        Viewer {
            pipeline,
            webrtc,
            frames,
            audio,
            first_frame,
        }
    }

    /// Makes the offer and waits for all of its candidates.
    fn offer(&self) -> String {
        let (tx, rx) = mpsc::channel();
        self.webrtc
            .connect_notify(Some("ice-gathering-state"), move |w, _| {
                if w.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
                    == gst_webrtc::WebRTCICEGatheringState::Complete
                {
                    let _ = tx.send(());
                }
            });
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let offer = promise
            .get_reply()
            .unwrap()
            .get::<gst_webrtc::WebRTCSessionDescription>("offer")
            .unwrap();
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("set-local-description", &[&offer, &promise]);
        promise.wait();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the viewer gathered its candidates");
        let local = self
            .webrtc
            .property::<gst_webrtc::WebRTCSessionDescription>("local-description");
        local.sdp().as_text().unwrap()
    }

    fn take_answer(&self, sdp: &str) {
        let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).expect("the answer is SDP");
        let answer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, msg);
        let promise = gst::Promise::new();
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
        promise.wait();
    }

    fn wait_frames(&self, video: u64, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if self.frames.load(Ordering::SeqCst) >= video {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// POSTs an offer; returns the status, the session path and the body.
fn post_offer(server: &Server, offer: &str) -> (u16, Option<String>, String) {
    let r = request(
        server.port,
        "POST",
        "/whep",
        &[("Content-Type", "application/sdp")],
        offer.as_bytes(),
    );
    (r.status, r.header("Location").map(String::from), r.body)
}

#[test]
fn a_gstreamer_viewer_decodes_over_whep() {
    require_loopback_only();
    let mut server = Server::start(&config("", ""));
    server.wait_playing(Duration::from_secs(20));

    let viewer = Viewer::new();
    let offer = viewer.offer();
    let posted = Instant::now();
    viewer
        .webrtc
        .connect_notify(Some("connection-state"), move |w, _| {
            let state = w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            eprintln!(
                "whep_client: {state:?} {} ms after the POST",
                posted.elapsed().as_millis()
            );
        });
    let (status, location, answer) = post_offer(&server, &offer);
    let answered = posted.elapsed();
    assert_eq!(
        status,
        201,
        "{answer}\noffer:\n{offer}\n{}",
        server.log_text()
    );
    let location = location.expect("a Location header");
    assert!(
        answer.contains("a=candidate:"),
        "a complete answer: {answer}"
    );
    assert!(
        answer.contains("a=rtpmap:108 H264/90000"),
        "H.264 on the offer's type: {answer}"
    );
    assert!(
        answer.contains("a=rtpmap:111 OPUS/48000/2")
            || answer.contains("a=rtpmap:111 opus/48000/2")
    );
    assert!(answer.contains("a=sendonly"));
    viewer.take_answer(&answer);

    assert!(
        viewer.wait_frames(30, Duration::from_secs(15)),
        "only {} frames decoded in 15 s\n{}",
        viewer.frames.load(Ordering::SeqCst),
        server.log_text()
    );
    let first = viewer.first_frame.lock().unwrap().expect("a first frame") - posted;
    eprintln!(
        "whep_client: answer in {} ms, first decoded frame {} ms after the POST",
        answered.as_millis(),
        first.as_millis()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(viewer.audio.load(Ordering::SeqCst) > 0, "Opus decoded");

    // The server reads how the viewer is connected: over UDP, and from one
    // of its own addresses (loopback), which is how a tunnel looks.
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status: serde_json::Value =
            serde_json::from_str(&server.get("/api/status").body).unwrap();
        let viewer = &status["viewers"]["list"][0];
        if viewer["transport"] != "" || Instant::now() > until {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["viewers"]["count"], 1, "{status}");
    let v = &status["viewers"]["list"][0];
    assert_eq!(v["state"], "connected", "{status}");
    assert_eq!(v["transport"], "udp", "{status}");
    assert_eq!(v["path"], "tunnel", "{status}");

    let r = request(server.port, "DELETE", &location, &[], b"");
    assert!(r.status == 200 || r.status == 204, "DELETE: {}", r.status);
    let status: serde_json::Value = serde_json::from_str(&server.get("/api/status").body).unwrap();
    assert_eq!(status["viewers"]["count"], 0, "{status}");
    drop(viewer);
    assert!(server.stop(Duration::from_secs(10)).success());
}

/// An offer shaped as Chromium makes it for a recvonly WHEP viewer: many
/// codecs with RTX, H.264 constrained baseline on 108, Opus on 111, and an
/// mDNS candidate.
const CHROMIUM_OFFER: &str = "v=0\r
o=- 2210186357476511470 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109 127 125\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:2930202375 1 udp 2113937151 6f0d5c2e-8b7a-4c1e-9d3f-1a2b3c4d5e6f.local 50000 typ host generation 0 network-cost 999\r
a=ice-ufrag:q9Zt\r
a=ice-pwd:Yx0S8m1bK3vQe7LwR2tN5uJc\r
a=ice-options:trickle\r
a=fingerprint:sha-256 3A:1F:4C:9B:22:6E:8D:01:7A:B3:5C:E4:90:2D:6F:11:C8:47:A2:5B:3E:9D:70:14:BB:6A:2C:E1:58:0F:93:D6\r
a=setup:actpass\r
a=mid:0\r
a=recvonly\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:102 H264/90000\r
a=rtcp-fb:102 nack\r
a=rtcp-fb:102 nack pli\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:108 H264/90000\r
a=rtcp-fb:108 goog-remb\r
a=rtcp-fb:108 transport-cc\r
a=rtcp-fb:108 ccm fir\r
a=rtcp-fb:108 nack\r
a=rtcp-fb:108 nack pli\r
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:109 rtx/90000\r
a=fmtp:109 apt=108\r
a=rtpmap:127 H264/90000\r
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r
a=rtpmap:125 rtx/90000\r
a=fmtp:125 apt=127\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:q9Zt\r
a=ice-pwd:Yx0S8m1bK3vQe7LwR2tN5uJc\r
a=ice-options:trickle\r
a=fingerprint:sha-256 3A:1F:4C:9B:22:6E:8D:01:7A:B3:5C:E4:90:2D:6F:11:C8:47:A2:5B:3E:9D:70:14:BB:6A:2C:E1:58:0F:93:D6\r
a=setup:actpass\r
a=mid:1\r
a=recvonly\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
";

#[test]
fn a_chromium_offer_gets_its_own_payload_types_with_nack_and_rtx() {
    require_loopback_only();
    let server = Server::start(&config("ice_ports = \"50100-50119\"", ""));
    server.wait_playing(Duration::from_secs(20));
    let posted = Instant::now();
    let (status, location, answer) = post_offer(&server, CHROMIUM_OFFER);
    let took = posted.elapsed();
    assert_eq!(status, 201, "{answer}\n{}", server.log_text());
    eprintln!(
        "whep_client: answer to a Chromium offer in {} ms:\n{answer}",
        took.as_millis()
    );
    // mDNS candidates are dropped, not resolved (which stalls on 1.22).
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    let lines: Vec<&str> = answer.lines().map(str::trim_end).collect();
    let has = |l: &str| lines.contains(&l);
    assert!(has("a=rtpmap:108 H264/90000"), "{answer}");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("a=rtpmap:102 ") || l.starts_with("a=rtpmap:96 "))
    );
    assert!(has("a=rtcp-fb:108 nack"), "NACK: {answer}");
    assert!(has("a=rtcp-fb:108 nack pli"), "PLI: {answer}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("a=fmtp:") && l.ends_with(" apt=108")),
        "RTX for 108: {answer}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.eq_ignore_ascii_case("a=rtpmap:111 opus/48000/2")),
        "{answer}"
    );
    assert_eq!(
        lines.iter().filter(|l| **l == "a=sendonly").count(),
        2,
        "{answer}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("a=candidate:") && l.contains(" 127.0.0.1 "))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("a=candidate:") && l.contains("tcptype passive"))
    );
    // Every port that takes traffic is inside ice_ports (an active TCP
    // candidate has the placeholder port 9).
    for c in lines
        .iter()
        .filter(|l| l.starts_with("a=candidate:") && !l.contains("tcptype active"))
    {
        let port: u16 = c.split_whitespace().nth(5).unwrap().parse().unwrap();
        assert!((50100..=50119).contains(&port), "{c}");
    }
    let r = request(server.port, "DELETE", &location.unwrap(), &[], b"");
    assert!(r.status == 200 || r.status == 204, "DELETE: {}", r.status);
}

#[test]
fn a_viewer_that_vanishes_frees_its_place() {
    require_loopback_only();
    let server = Server::start(&config("max_viewers = 1", ""));
    server.wait_playing(Duration::from_secs(20));

    let first = Viewer::new();
    let (status, location, answer) = post_offer(&server, &first.offer());
    assert_eq!(status, 201, "{answer}");
    let location = location.expect("a Location header");
    first.take_answer(&answer);
    assert!(
        first.wait_frames(10, Duration::from_secs(15)),
        "the first viewer decodes"
    );

    // Late candidates are taken (and mDNS ones ignored).
    let frag = "a=ice-ufrag:x\r\na=ice-pwd:y\r\nm=video 9 UDP/TLS/RTP/SAVPF 108\r\na=mid:video0\r\n\
                a=candidate:9 1 UDP 2015363327 127.0.0.1 9 typ host\r\n\
                a=candidate:8 1 UDP 2015363327 abc.local 9 typ host\r\n";
    let r = request(
        server.port,
        "PATCH",
        &location,
        &[("Content-Type", "application/trickle-ice-sdpfrag")],
        frag.as_bytes(),
    );
    assert_eq!(r.status, 204, "PATCH: {}", r.body);

    // The place is taken: a second viewer is refused.
    let second = Viewer::new();
    let offer = second.offer();
    let (status, _, body) = post_offer(&server, &offer);
    assert_eq!(status, 503, "{body}");

    // The first viewer goes away without a word (no DELETE): its place
    // comes free once it has been silent long enough.
    let vanished = Instant::now();
    drop(first);
    let answer = loop {
        let (status, _, body) = post_offer(&server, &offer);
        if status == 201 {
            break body;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            vanished.elapsed() < Duration::from_secs(30),
            "the vanished viewer still holds its place\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "whep_client: place freed {} s after the viewer vanished",
        vanished.elapsed().as_secs()
    );
    assert!(
        server.log_text().contains("silent for"),
        "{}",
        server.log_text()
    );
    second.take_answer(&answer);
    assert!(
        second.wait_frames(10, Duration::from_secs(15)),
        "the second viewer decodes"
    );
}

#[test]
fn a_viewer_without_udp_decodes_over_ice_tcp() {
    require_loopback_only();
    let server = Server::start(&config("", ""));
    server.wait_playing(Duration::from_secs(20));
    let viewer = Viewer::with_udp(false);
    let offer = viewer.offer();
    assert!(!offer.contains(" UDP "), "a TCP-only offer: {offer}");
    let (status, _, answer) = post_offer(&server, &offer);
    assert_eq!(status, 201, "{answer}");
    viewer.take_answer(&answer);
    assert!(
        viewer.wait_frames(30, Duration::from_secs(15)),
        "only {} frames over TCP\n{}",
        viewer.frames.load(Ordering::SeqCst),
        server.log_text()
    );
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let status: serde_json::Value =
            serde_json::from_str(&server.get("/api/status").body).unwrap();
        let v = &status["viewers"]["list"][0];
        if v["transport"] == "tcp" {
            assert_eq!(v["path"], "tunnel", "{status}");
            break;
        }
        assert!(Instant::now() < until, "transport not tcp: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
