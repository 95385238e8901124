//! The choice of the video and audio sources (pure: from the config and
//! what the scans found) and the launch text of the capture half of the
//! pipeline, up to the encoder.

use babymon::config::Source;

use super::SourceInfo;
use super::audio::AudioSource;
use super::camera::Scan;
use super::format::{self, Choice};

/// Where pictures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoSource {
    V4l2 {
        device: String,
        card: String,
        mode: Choice,
    },
    Libcamera {
        receiver: String,
    },
    /// The test pattern, and why it is used.
    Test {
        reason: String,
    },
}

impl VideoSource {
    pub fn info(&self) -> SourceInfo {
        match self {
            VideoSource::V4l2 { device, mode, .. } => SourceInfo {
                kind: "v4l2".into(),
                device: Some(device.clone()),
                format: mode.label(),
            },
            VideoSource::Libcamera { receiver } => SourceInfo {
                kind: "libcamera".into(),
                device: Some(receiver.clone()),
                format: "libcamera".into(),
            },
            VideoSource::Test { .. } => SourceInfo {
                kind: "test".into(),
                device: None,
                format: "I420".into(),
            },
        }
    }

    /// The device to watch for loss, if any.
    pub fn device(&self) -> Option<&str> {
        match self {
            VideoSource::V4l2 { device, .. } => Some(device),
            _ => None,
        }
    }
}

/// What the user asked for in `[camera]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub source: Source,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub rotation: u32,
}

/// Picks the video source. `libcamera` says whether `libcamerasrc` exists.
pub fn choose(want: &Want, scan: &Scan, libcamera: bool) -> VideoSource {
    let test = |reason: String| VideoSource::Test { reason };
    if want.source == Source::Test {
        return test("camera.source is \"test\"".into());
    }
    if matches!(want.source, Source::Auto | Source::V4l2) {
        let cameras = scan
            .cameras
            .iter()
            .filter(|c| want.device.is_empty() || c.path == want.device);
        for camera in cameras {
            if let Some(mode) =
                format::choose(&camera.modes, want.width, want.height, want.framerate)
            {
                return VideoSource::V4l2 {
                    device: camera.path.clone(),
                    card: camera.card.clone(),
                    mode,
                };
            }
        }
    }
    if matches!(want.source, Source::Auto | Source::Libcamera) {
        match (&scan.csi, libcamera) {
            (Some(receiver), true) => {
                return VideoSource::Libcamera {
                    receiver: receiver.clone(),
                };
            }
            (Some(receiver), false) if want.source == Source::Libcamera => {
                return test(format!(
                    "CSI camera on {receiver}, but libcamerasrc is not installed"
                ));
            }
            _ => {}
        }
    }
    let what = if want.device.is_empty() {
        "no camera found".to_string()
    } else {
        format!("camera {} not found or without MJPEG/YUYV", want.device)
    };
    test(what)
}

/// The launch text from the source to raw video of the output size and
/// rate, turned as asked. The test pattern is a moving ball and nothing
/// more: a clock drawn on it would load pango, cairo and fontconfig, about
/// 9 MB of a process meant to fit a Zero 2 W, for a picture the status
/// panel already names as the test pattern.
pub fn video_description(source: &VideoSource, want: &Want) -> String {
    let (w, h, f) = (want.width, want.height, want.framerate);
    let raw = format!("video/x-raw,width={w},height={h},framerate={f}/1");
    let head = match source {
        VideoSource::V4l2 { device, mode, .. } => {
            let decode = if mode.fourcc == "MJPG" {
                "jpegdec ! "
            } else {
                ""
            };
            format!(
                "v4l2src name=camera device={device} do-timestamp=true ! {} ! {decode}\
                 videoconvert ! videoscale ! videorate ! {raw}",
                mode.caps()
            )
        }
        VideoSource::Libcamera { .. } => format!("libcamerasrc name=camera ! {raw}"),
        VideoSource::Test { .. } => {
            format!("videotestsrc name=camera is-live=true pattern=ball ! {raw}")
        }
    };
    match flip(want.rotation) {
        Some(method) => format!("{head} ! videoflip method={method} ! videoconvert"),
        None => format!("{head} ! videoconvert"),
    }
}

/// The output size after rotation (90 and 270 swap width and height).
pub fn output_size(want: &Want) -> (u32, u32) {
    if want.rotation == 90 || want.rotation == 270 {
        (want.height, want.width)
    } else {
        (want.width, want.height)
    }
}

fn flip(rotation: u32) -> Option<&'static str> {
    match rotation {
        90 => Some("clockwise"),
        180 => Some("rotate-180"),
        270 => Some("counterclockwise"),
        _ => None,
    }
}

/// The launch text from the audio source to Opus, ending in its tee.
pub fn audio_description(source: &AudioSource) -> Option<String> {
    let head = match source {
        AudioSource::Off => return None,
        AudioSource::Alsa(device) => format!("alsasrc name=mic device=\"{device}\""),
        AudioSource::Test => {
            "audiotestsrc name=mic is-live=true wave=sine freq=440 volume=0.02".to_string()
        }
    };
    Some(format!(
        "{head} ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=1 ! \
         opusenc bitrate=32000 frame-size=20 ! tee name=atee allow-not-linked=true"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::media::camera::Camera;
    use crate::serve::media::format::{Fps, Mode};

    fn want(source: Source) -> Want {
        Want {
            source,
            device: String::new(),
            width: 640,
            height: 480,
            framerate: 30,
            rotation: 0,
        }
    }

    fn scan_with_camera() -> Scan {
        Scan {
            cameras: vec![Camera {
                path: "/dev/video0".into(),
                card: "USB Camera".into(),
                modes: vec![Mode {
                    fourcc: "MJPG".into(),
                    width: 640,
                    height: 480,
                    rates: vec![Fps { num: 30, den: 1 }],
                }],
            }],
            codecs: vec![],
            csi: Some("/dev/video2 (unicam)".into()),
        }
    }

    #[test]
    fn test_is_forced() {
        let s = choose(&want(Source::Test), &scan_with_camera(), true);
        assert!(matches!(s, VideoSource::Test { .. }));
    }

    #[test]
    fn usb_camera_first_then_libcamera_then_test() {
        let s = choose(&want(Source::Auto), &scan_with_camera(), true);
        assert_eq!(s.device(), Some("/dev/video0"));
        let mut scan = scan_with_camera();
        scan.cameras.clear();
        assert!(matches!(
            choose(&want(Source::Auto), &scan, true),
            VideoSource::Libcamera { .. }
        ));
        assert!(matches!(
            choose(&want(Source::Auto), &scan, false),
            VideoSource::Test { .. }
        ));
        match choose(&want(Source::Libcamera), &scan, false) {
            VideoSource::Test { reason } => assert!(reason.contains("libcamerasrc"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_named_device_must_be_there() {
        let mut w = want(Source::V4l2);
        w.device = "/dev/video4".into();
        match choose(&w, &scan_with_camera(), false) {
            VideoSource::Test { reason } => assert!(reason.contains("/dev/video4"), "{reason}"),
            other => panic!("{other:?}"),
        }
        w.device = "/dev/video0".into();
        assert_eq!(
            choose(&w, &scan_with_camera(), false).device(),
            Some("/dev/video0")
        );
    }

    #[test]
    fn descriptions() {
        let mut w = want(Source::Auto);
        w.rotation = 90;
        let cam = choose(&w, &scan_with_camera(), false);
        let d = video_description(&cam, &w);
        assert!(
            d.starts_with("v4l2src name=camera device=/dev/video0"),
            "{d}"
        );
        assert!(
            d.contains("image/jpeg,width=640,height=480,framerate=30/1 ! jpegdec"),
            "{d}"
        );
        assert!(
            d.ends_with("videoflip method=clockwise ! videoconvert"),
            "{d}"
        );
        assert_eq!(output_size(&w), (480, 640));
        let t = video_description(
            &VideoSource::Test {
                reason: String::new(),
            },
            &want(Source::Test),
        );
        assert!(
            t.starts_with("videotestsrc name=camera is-live=true"),
            "{t}"
        );
        assert!(!t.contains("overlay"), "{t}");
        assert!(audio_description(&AudioSource::Off).is_none());
        assert!(
            audio_description(&AudioSource::Alsa("plughw:1,0".into()))
                .unwrap()
                .contains("device=\"plughw:1,0\"")
        );
    }
}
