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

    media.shutdown();
    assert!(!media.status().playing);
    assert!(matches!(
        media
            .inner
            .answer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"),
        Err(OfferError::NotReady(_))
    ));
}
