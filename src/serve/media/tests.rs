//! The media side with real GStreamer and the test sources: starting,
//! rebuilding after a camera error, and stopping.

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

#[test]
fn an_error_from_the_camera_rebuilds_the_pipeline() {
    let media = Media::start(&test_config()).expect("media starts with the test sources");
    wait_for("playing", Duration::from_secs(10), || {
        media.status().playing
    });
    let status = media.status();
    assert_eq!(status.source.kind, "test");
    assert_eq!(status.audio.kind, "test");
    assert_eq!((status.video.width, status.video.height), (320, 240));
    assert!(!status.encoder.name.is_empty() && !status.encoder.reason.is_empty());
    assert_eq!(status.restarts, 0);

    let (old, camera) = {
        let st = media.inner.lock();
        let shared = st.shared.as_ref().unwrap();
        (
            shared.pipeline.clone(),
            shared.pipeline.by_name("camera").unwrap(),
        )
    };
    let error = gst::message::Error::builder(gst::ResourceError::NotFound, "device gone")
        .src(&camera)
        .build();
    old.bus().unwrap().post(error).unwrap();

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
    drop((old, camera));
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
