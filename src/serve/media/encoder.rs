//! The choice of the H.264 encoder (a pure function of what is installed
//! and what hardware is present) and the elements around it, with the Pi
//! encoder's level and header needs. `pipeline` builds what this describes.

use super::EncoderInfo;

/// A V4L2 memory-to-memory node, as the camera probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecNode {
    pub path: String,
    pub card: String,
}

/// The Pi's H.264 encoder node.
pub const PI_ENCODER_NODE: &str = "/dev/video11";

/// Picks the encoder: `forced` ("auto" or an element name) first, then
/// `v4l2h264enc` on the bcm2835 codec, then `x264enc`, then `openh264enc`.
/// `exists` says whether a GStreamer element is installed. `None` when no
/// encoder is usable.
pub fn choose(
    forced: &str,
    exists: &dyn Fn(&str) -> bool,
    codecs: &[CodecNode],
) -> Option<EncoderInfo> {
    let info = |name: &str, reason: String| {
        Some(EncoderInfo {
            name: name.to_string(),
            reason,
        })
    };
    let mut note = String::new();
    if !forced.is_empty() && forced != "auto" {
        if exists(forced) {
            return info(forced, "set by camera.encoder".into());
        }
        note = format!(" (camera.encoder {forced:?} is not installed)");
    }
    let pi = codecs
        .iter()
        .find(|c| c.card.starts_with("bcm2835-codec") && c.path == PI_ENCODER_NODE);
    if let Some(node) = pi {
        if exists("v4l2h264enc") {
            return info(
                "v4l2h264enc",
                format!("hardware encoder {} ({}){note}", node.path, node.card),
            );
        }
        note.push_str(&format!(
            " ({} found but v4l2h264enc is not installed)",
            node.path
        ));
    }
    if exists("x264enc") {
        return info(
            "x264enc",
            format!("no hardware H.264 encoder; software x264{note}"),
        );
    }
    if exists("openh264enc") {
        return info(
            "openh264enc",
            format!("no hardware H.264 encoder and no x264enc{note}"),
        );
    }
    None
}

/// The H.264 level (as in caps: "3.1") that a size and rate need, for the
/// Pi encoder which wants it spelled out. Table A-1 of H.264: macroblocks
/// per second and per frame.
pub fn h264_level(width: u32, height: u32, fps: u32) -> &'static str {
    let mbs = width.div_ceil(16) * height.div_ceil(16);
    let rate = mbs * fps;
    const LEVELS: [(&str, u32, u32); 10] = [
        ("2.1", 792, 19_800),
        ("2.2", 1_620, 20_250),
        ("3", 1_620, 40_500),
        ("3.1", 3_600, 108_000),
        ("3.2", 5_120, 216_000),
        ("4", 8_192, 245_760),
        ("4.2", 8_704, 522_240),
        ("5", 22_080, 589_824),
        ("5.1", 36_864, 983_040),
        ("5.2", 36_864, 2_073_600),
    ];
    LEVELS
        .iter()
        .find(|(_, frame, second)| mbs <= *frame && rate <= *second)
        .map_or("5.2", |(level, _, _)| level)
}

/// The launch description of the encoder stage, from raw video to H.264
/// constrained baseline: the caps on each side and the element's settings.
pub fn description(name: &str, width: u32, height: u32, fps: u32, bitrate_kbps: u32) -> String {
    // A key frame every 4 s at most; viewers joining force theirs anyway.
    let gop = fps.max(1) * 4;
    match name {
        "x264enc" => format!(
            "video/x-raw,format=I420 ! x264enc name=encoder speed-preset=ultrafast tune=zerolatency \
             bitrate={bitrate_kbps} key-int-max={gop} bframes=0 ! video/x-h264,profile=constrained-baseline"
        ),
        "v4l2h264enc" => format!(
            "video/x-raw,format=I420 ! v4l2h264enc name=encoder \
             extra-controls=\"controls,repeat_sequence_header=1,video_bitrate={},h264_i_frame_period={gop}\" ! \
             video/x-h264,profile=constrained-baseline,level=(string){}",
            bitrate_kbps * 1000,
            h264_level(width, height, fps)
        ),
        "openh264enc" => format!(
            "video/x-raw,format=I420 ! openh264enc name=encoder bitrate={} gop-size={gop} \
             complexity=low usage-type=camera ! video/x-h264,profile=constrained-baseline",
            bitrate_kbps * 1000
        ),
        other => format!("video/x-raw,format=I420 ! {other} name=encoder"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
        move |n| names.contains(&n)
    }

    fn pi() -> Vec<CodecNode> {
        vec![
            CodecNode {
                path: "/dev/video10".into(),
                card: "bcm2835-codec-decode".into(),
            },
            CodecNode {
                path: "/dev/video11".into(),
                card: "bcm2835-codec-encode".into(),
            },
        ]
    }

    #[test]
    fn pi_codec_wins_when_its_element_exists() {
        let e = choose("auto", &has(&["v4l2h264enc", "x264enc"]), &pi()).unwrap();
        assert_eq!(e.name, "v4l2h264enc");
        assert!(e.reason.contains("/dev/video11"), "{}", e.reason);
    }

    #[test]
    fn pi_codec_without_element_falls_back_and_says_so() {
        let e = choose("auto", &has(&["x264enc"]), &pi()).unwrap();
        assert_eq!(e.name, "x264enc");
        assert!(
            e.reason.contains("v4l2h264enc is not installed"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn v4l2h264enc_alone_is_not_enough() {
        // A v4l2h264enc element on a machine without the bcm2835 codec
        // (another vendor's stateful encoder) is not chosen by "auto".
        let other = [CodecNode {
            path: "/dev/video11".into(),
            card: "some-other-codec".into(),
        }];
        let e = choose("auto", &has(&["v4l2h264enc", "x264enc"]), &other).unwrap();
        assert_eq!(e.name, "x264enc");
    }

    #[test]
    fn software_order() {
        assert_eq!(
            choose("auto", &has(&["x264enc", "openh264enc"]), &[])
                .unwrap()
                .name,
            "x264enc"
        );
        assert_eq!(
            choose("auto", &has(&["openh264enc"]), &[]).unwrap().name,
            "openh264enc"
        );
        assert_eq!(choose("auto", &has(&[]), &[]), None);
    }

    #[test]
    fn forced_encoder() {
        let e = choose("openh264enc", &has(&["x264enc", "openh264enc"]), &[]).unwrap();
        assert_eq!(
            (e.name.as_str(), e.reason.as_str()),
            ("openh264enc", "set by camera.encoder")
        );
        let e = choose("nvh264enc", &has(&["x264enc"]), &[]).unwrap();
        assert_eq!(e.name, "x264enc");
        assert!(
            e.reason.contains("\"nvh264enc\" is not installed"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn levels() {
        assert_eq!(h264_level(320, 240, 30), "2.1");
        assert_eq!(h264_level(640, 480, 30), "3");
        assert_eq!(h264_level(1280, 720, 30), "3.1");
        assert_eq!(h264_level(1280, 720, 60), "3.2");
        assert_eq!(h264_level(1920, 1080, 30), "4");
        assert_eq!(h264_level(1920, 1080, 60), "4.2");
    }

    #[test]
    fn x264_gets_i420_and_constrained_baseline() {
        let d = description("x264enc", 640, 480, 30, 1500);
        assert!(d.starts_with("video/x-raw,format=I420 ! x264enc"));
        assert!(d.contains("speed-preset=ultrafast tune=zerolatency bitrate=1500"));
        assert!(d.ends_with("video/x-h264,profile=constrained-baseline"));
        let pi = description("v4l2h264enc", 1920, 1080, 30, 4000);
        assert!(pi.contains("repeat_sequence_header=1"));
        assert!(pi.contains("video_bitrate=4000000"));
        assert!(pi.ends_with("level=(string)4"));
    }
}
