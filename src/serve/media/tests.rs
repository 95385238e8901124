//! The media side with real GStreamer and the test sources: starting,
//! swapping the source after a camera error while a viewer keeps its
//! stream, rebuilding after any other error, and stopping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstreamer as gst;

use super::*;

fn test_config() -> Config {
    let mut config = Config::default();
    config.camera.source = babymon::config::Source::Test;
    config.camera.width = 320;
    config.camera.height = 240;
    config.camera.bitrate_kbps = 300;
    config
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < until, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A viewer stand-in on the video tee: counts encoded frames, checks that
/// their times only go forward, and notes an end of stream.
struct Watcher {
    frames: Arc<AtomicU64>,
    backwards: Arc<AtomicU64>,
    eos: Arc<AtomicBool>,
}

fn watch_video(media: &Media) -> Watcher {
    let w = Watcher {
        frames: Arc::new(AtomicU64::new(0)),
        backwards: Arc::new(AtomicU64::new(0)),
        eos: Arc::new(AtomicBool::new(false)),
    };
    let st = media.inner.lock();
    let shared = st.shared.as_ref().unwrap();
    let queue = gst::ElementFactory::make("queue").build().unwrap();
    let sink = gst::ElementFactory::make("fakesink")
        .property("signal-handoffs", true)
        .property("sync", false)
        .build()
        .unwrap();
    let (frames, backwards, last) = (w.frames.clone(), w.backwards.clone(), AtomicU64::new(0));
    sink.connect("handoff", false, move |args| {
        let buffer = args[1].get::<gst::Buffer>().unwrap();
        let pts = buffer.pts().map_or(0, gst::ClockTime::nseconds);
        if pts <= last.swap(pts, Ordering::SeqCst) {
            backwards.fetch_add(1, Ordering::SeqCst);
        }
        frames.fetch_add(1, Ordering::SeqCst);
        None
    });
    let eos = w.eos.clone();
    sink.static_pad("sink").unwrap().add_probe(
        gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(gst::PadProbeData::Event(e)) = &info.data
                && e.type_() == gst::EventType::Eos
            {
                eos.store(true, Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        },
    );
    shared.pipeline.add_many([&queue, &sink]).unwrap();
    queue.link(&sink).unwrap();
    let tee_pad = shared.video_tee.request_pad_simple("src_%u").unwrap();
    tee_pad.link(&queue.static_pad("sink").unwrap()).unwrap();
    queue.sync_state_with_parent().unwrap();
    sink.sync_state_with_parent().unwrap();
    w
}

impl Watcher {
    /// Waits for the source swap that makes `restarts`, then for 30 more
    /// frames; none of it may end the viewer's stream or send its frame
    /// times backwards.
    fn streams_on(&self, media: &Media, restarts: u32, after: &str) {
        wait_for(
            &format!("a new source after {after}"),
            Duration::from_secs(10),
            || media.status().restarts == restarts && media.status().playing,
        );
        let at = self.frames.load(Ordering::SeqCst);
        wait_for(
            &format!("frames after {after}"),
            Duration::from_secs(10),
            || self.frames.load(Ordering::SeqCst) >= at + 30,
        );
        assert!(
            !self.eos.load(Ordering::SeqCst),
            "no end of stream reached the viewer after {after}"
        );
        assert_eq!(
            self.backwards.load(Ordering::SeqCst),
            0,
            "frame times only go forward after {after}"
        );
    }
}

fn post_error(media: &Media, element: &str) -> (gst::Pipeline, gst::Element) {
    let (pipeline, target) = {
        let st = media.inner.lock();
        let shared = st.shared.as_ref().unwrap();
        (
            shared.pipeline.clone(),
            shared.pipeline.by_name(element).unwrap(),
        )
    };
    let error = gst::message::Error::builder(gst::ResourceError::NotFound, "device gone")
        .src(&target)
        .build();
    pipeline.bus().unwrap().post(error).unwrap();
    (pipeline, target)
}

fn started() -> Media {
    let media = Media::start(&test_config()).expect("media starts with the test sources");
    wait_for("playing", Duration::from_secs(10), || {
        media.status().playing
    });
    media
}

#[test]
fn a_camera_error_swaps_the_source_and_viewers_keep_their_stream() {
    let media = started();
    let status = media.status();
    assert_eq!(status.source.kind, "test");
    assert_eq!(status.audio.kind, "test");
    assert_eq!((status.video.width, status.video.height), (320, 240));
    assert!(!status.encoder.name.is_empty() && !status.encoder.reason.is_empty());
    assert_eq!(status.restarts, 0);
    let viewer = watch_video(&media);
    wait_for("frames to the viewer", Duration::from_secs(10), || {
        viewer.frames.load(Ordering::SeqCst) >= 10
    });

    let (pipeline, camera) = post_error(&media, "camera");
    viewer.streams_on(&media, 1, "the switch");
    let now = media.inner.lock().shared.as_ref().unwrap().pipeline.clone();
    assert_eq!(now, pipeline, "the same pipeline, encoder and tees");
    assert_eq!(pipeline.current_state(), gst::State::Playing);
    assert_eq!(
        camera.current_state(),
        gst::State::Null,
        "the old source stopped"
    );
    assert!(
        camera.parent().is_none_or(|p| p.parent().is_none()),
        "and left the pipeline"
    );
    let fresh = pipeline.by_name("camera").unwrap();
    assert_ne!(fresh, camera, "a new source took its place");
    assert_eq!(media.status().source.kind, "test");
    let weak = camera.downgrade();
    drop(camera);
    wait_for("the old source dropped", Duration::from_secs(5), || {
        weak.upgrade().is_none()
    });

    // A source that ends its stream (as a camera can) is swapped the same
    // way, and the end goes no further than the encoder.
    assert!(fresh.send_event(gst::event::Eos::new()));
    viewer.streams_on(&media, 2, "the end");
    assert_eq!(fresh.current_state(), gst::State::Null);
    media.shutdown();
}

#[test]
fn an_error_elsewhere_rebuilds_the_whole_pipeline() {
    let media = started();
    let (old, encoder) = post_error(&media, "encoder");
    wait_for("a rebuilt pipeline", Duration::from_secs(10), || {
        media.status().restarts == 1 && media.status().playing
    });
    assert_eq!(
        old.current_state(),
        gst::State::Null,
        "the old pipeline is set to Null"
    );
    assert_eq!(media.status().source.kind, "test");
    // Dropped too: once the test lets go of its own references, nothing in
    // serve keeps the failed pipeline (and its device) alive.
    let weak = old.downgrade();
    drop((old, encoder));
    wait_for("the old pipeline dropped", Duration::from_secs(5), || {
        weak.upgrade().is_none()
    });

    media.shutdown();
    assert!(!media.status().playing);
    assert!(matches!(
        media
            .inner
            .answer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"),
        Err(OfferError::NotReady(_))
    ));
}

#[test]
fn probing_a_device_leaves_no_file_descriptor_open() {
    let path = std::env::temp_dir().join(format!("babymon-fd-{}", std::process::id()));
    std::fs::write(&path, "not a video device").unwrap();
    let p = path.to_str().unwrap();
    assert!(camera::held(p).is_free());
    let file = std::fs::File::open(&path).unwrap();
    assert_eq!(camera::held(p).fds, 1, "an open file is counted");
    drop(file);
    // This test program is mapped in memory but not open: mappings count.
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let exe = camera::held(exe.to_str().unwrap());
    assert!(exe.maps > 0 && !exe.is_free(), "{exe:?}");
    for _ in 0..20 {
        assert!(!camera::present(p), "a plain file is no camera");
    }
    assert!(camera::held(p).is_free(), "present() closes what it opens");
    // scan() opens only /dev/video* (none on a machine without a camera):
    // whatever it finds, it keeps none of them open.
    let nodes: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("/dev/video"))
        .collect();
    let _ = camera::scan(320, 240, 15, None);
    for n in &nodes {
        assert!(camera::held(n).is_free(), "{n} left open by scan()");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_unplugged_node_is_taken_again_only_once_made_anew() {
    let dir = std::env::temp_dir().join(format!("babymon-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("video0");
    std::fs::write(&path, "").unwrap();
    let p = path.to_str().unwrap();
    let id = camera::node_id(p).unwrap();
    assert!(camera::is_unplugged(p, Some(&id)), "the same node");
    assert!(!camera::is_unplugged(p, None));
    assert!(
        !camera::is_unplugged("/dev/video9", Some(&id)),
        "another path"
    );
    // Made anew under the same name (written beside, then renamed over, so
    // that the old inode cannot be reused).
    let fresh = dir.join("video0.new");
    std::fs::write(&fresh, "").unwrap();
    std::fs::rename(&fresh, &path).unwrap();
    assert!(!camera::is_unplugged(p, Some(&id)), "a node made anew");
    std::fs::remove_file(&path).unwrap();
    assert!(!camera::is_unplugged(p, Some(&id)), "a node that is gone");
    assert!(camera::node_id(p).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
