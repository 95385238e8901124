//! The choice of a camera mode for the asked size and rate: a pure function
//! of the modes a V4L2 camera lists (`camera` probes them). Only MJPEG and
//! YUYV are taken: every USB camera has one of them, and GStreamer decodes
//! both cheaply.

/// A frame rate as a fraction (frames per second = num / den).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fps {
    pub num: u32,
    pub den: u32,
}

impl Fps {
    pub fn per_second(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }
}

/// One size of one pixel format, with its frame rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    /// The V4L2 fourcc, such as "MJPG" or "YUYV".
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    pub rates: Vec<Fps>,
}

/// What to ask the camera for.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    pub fps: Fps,
}

impl Choice {
    /// The caps to put after `v4l2src`.
    pub fn caps(&self) -> String {
        let media = if self.fourcc == "MJPG" {
            "image/jpeg".to_string()
        } else {
            "video/x-raw,format=YUY2".to_string()
        };
        format!(
            "{media},width={},height={},framerate={}/{}",
            self.width, self.height, self.fps.num, self.fps.den
        )
    }

    /// As `/api/status` shows it: "MJPG 1280x720@30".
    pub fn label(&self) -> String {
        format!(
            "{} {}x{}@{}",
            self.fourcc,
            self.width,
            self.height,
            self.fps.per_second().round()
        )
    }
}

/// Picks the mode for `width`x`height` at `fps`: first one at least as
/// large as asked (scaled down after), then one that keeps the rate, then
/// the closest size, then YUYV before MJPEG (no decoding). A rate above
/// the asked one is lowered by `videorate`.
pub fn choose(modes: &[Mode], width: u32, height: u32, fps: u32) -> Option<Choice> {
    let want_area = u64::from(width) * u64::from(height);
    modes
        .iter()
        .filter(|m| matches!(m.fourcc.as_str(), "MJPG" | "YUYV") && m.width > 0 && m.height > 0)
        .filter_map(|m| {
            let rate = best_rate(&m.rates, fps)?;
            let covers = m.width >= width && m.height >= height;
            let keeps_rate = rate.per_second() + 0.01 >= f64::from(fps);
            let area = u64::from(m.width) * u64::from(m.height);
            let distance = area.abs_diff(want_area);
            let format_rank = u8::from(m.fourcc != "YUYV");
            let key = (!covers, !keeps_rate, distance, format_rank);
            Some((key, m, rate))
        })
        .min_by_key(|(key, _, _)| *key)
        .map(|(_, m, rate)| Choice {
            fourcc: m.fourcc.clone(),
            width: m.width,
            height: m.height,
            fps: rate,
        })
}

/// The lowest rate at or above `fps`, else the highest there is.
fn best_rate(rates: &[Fps], fps: u32) -> Option<Fps> {
    let want = f64::from(fps) - 0.01;
    let valid = rates.iter().filter(|r| r.den > 0 && r.num > 0);
    let above = valid
        .clone()
        .filter(|r| r.per_second() >= want)
        .min_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    above
        .or_else(|| valid.max_by(|a, b| a.per_second().total_cmp(&b.per_second())))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(list: &[u32]) -> Vec<Fps> {
        list.iter().map(|&n| Fps { num: n, den: 1 }).collect()
    }

    fn mode(fourcc: &str, width: u32, height: u32, rates: &[u32]) -> Mode {
        Mode {
            fourcc: fourcc.into(),
            width,
            height,
            rates: fps(rates),
        }
    }

    /// A typical USB camera: YUYV is slow at large sizes, MJPEG is not.
    fn usb_camera() -> Vec<Mode> {
        vec![
            mode("YUYV", 640, 480, &[30, 15]),
            mode("YUYV", 1280, 720, &[10, 5]),
            mode("YUYV", 1920, 1080, &[5]),
            mode("MJPG", 640, 480, &[30, 15]),
            mode("MJPG", 1280, 720, &[30, 15]),
            mode("MJPG", 1920, 1080, &[30, 15]),
        ]
    }

    #[test]
    fn mjpeg_when_yuyv_cannot_keep_the_rate() {
        let c = choose(&usb_camera(), 1280, 720, 30).unwrap();
        assert_eq!(c.caps(), "image/jpeg,width=1280,height=720,framerate=30/1");
        assert_eq!(c.label(), "MJPG 1280x720@30");
    }

    #[test]
    fn yuyv_when_it_keeps_size_and_rate() {
        let c = choose(&usb_camera(), 640, 480, 30).unwrap();
        assert_eq!(
            c.caps(),
            "video/x-raw,format=YUY2,width=640,height=480,framerate=30/1"
        );
        let c = choose(&usb_camera(), 1280, 720, 10).unwrap();
        assert_eq!((c.fourcc.as_str(), c.fps.num), ("YUYV", 10));
    }

    #[test]
    fn an_odd_size_takes_the_next_larger_one() {
        let c = choose(&usb_camera(), 800, 600, 30).unwrap();
        assert_eq!((c.fourcc.as_str(), c.width, c.height), ("MJPG", 1280, 720));
    }

    #[test]
    fn too_large_a_size_takes_the_largest() {
        let modes = vec![mode("YUYV", 320, 240, &[30]), mode("YUYV", 640, 480, &[30])];
        let c = choose(&modes, 1920, 1080, 30).unwrap();
        assert_eq!((c.width, c.height), (640, 480));
    }

    #[test]
    fn rate_is_the_lowest_at_or_above() {
        let modes = vec![mode("MJPG", 640, 480, &[60, 30, 25, 15])];
        assert_eq!(choose(&modes, 640, 480, 24).unwrap().fps.num, 25);
        assert_eq!(choose(&modes, 640, 480, 90).unwrap().fps.num, 60);
        // 30000/1001 keeps 30 well enough... but not 30 itself.
        let ntsc = vec![Mode {
            fourcc: "YUYV".into(),
            width: 640,
            height: 480,
            rates: vec![Fps {
                num: 30000,
                den: 1001,
            }],
        }];
        assert_eq!(choose(&ntsc, 640, 480, 29).unwrap().fps.num, 30000);
    }

    #[test]
    fn other_formats_and_empty_lists_give_nothing() {
        assert_eq!(choose(&[], 640, 480, 30), None);
        let h264_only = vec![mode("H264", 640, 480, &[30]), mode("YUYV", 640, 480, &[])];
        assert_eq!(choose(&h264_only, 640, 480, 30), None);
    }
}
