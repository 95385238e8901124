//! Finding cameras: every `/dev/video*` node is asked what it is (with
//! v4l2r). Capture nodes list their formats, sizes and rates for
//! `format::choose`; memory-to-memory nodes (the Pi's codec and ISP) are
//! kept apart for the encoder choice; CSI receivers (unicam, rp1-cfe) mean
//! a libcamera camera.

use std::fs::File;
use std::path::Path;

use v4l2r::bindings::{v4l2_frmivalenum, v4l2_frmsizeenum};
use v4l2r::ioctl::{self, Capabilities, Capability, FrmIvalTypes, FrmSizeTypes};
use v4l2r::{PixelFormat, QueueType};

use super::encoder::CodecNode;
use super::format::{Fps, Mode};

/// A capture node that can feed `v4l2src`.
#[derive(Debug, Clone)]
pub struct Camera {
    pub path: String,
    pub card: String,
    pub modes: Vec<Mode>,
}

/// Everything found under `/dev`.
#[derive(Debug, Default)]
pub struct Scan {
    pub cameras: Vec<Camera>,
    pub codecs: Vec<CodecNode>,
    /// A CSI camera receiver was seen: libcamera owns that camera.
    pub csi: Option<String>,
}

/// Drivers of CSI camera receivers, whose raw Bayer output only libcamera
/// turns into pictures.
const CSI_DRIVERS: [&str; 2] = ["unicam", "rp1-cfe"];

/// Probes every `/dev/video*` node, in number order. Nodes that cannot be
/// opened are skipped with a debug line (another program may hold them).
pub fn scan(width: u32, height: u32, fps: u32) -> Scan {
    let mut nodes: Vec<(u32, String)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, format!("/dev/{name}")))
        })
        .collect();
    nodes.sort();
    let mut scan = Scan::default();
    for (_, path) in nodes {
        let file = match File::options().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                log::debug!("{path}: cannot open: {e}");
                continue;
            }
        };
        let cap: Capability = match ioctl::querycap(&file) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("{path}: not a V4L2 device: {e}");
                continue;
            }
        };
        let caps = cap.device_caps();
        if caps.intersects(Capabilities::VIDEO_M2M | Capabilities::VIDEO_M2M_MPLANE) {
            scan.codecs.push(CodecNode {
                path: path.clone(),
                card: cap.card.clone(),
            });
            continue;
        }
        if CSI_DRIVERS.contains(&cap.driver.as_str()) {
            scan.csi
                .get_or_insert_with(|| format!("{path} ({})", cap.driver));
            continue;
        }
        if !caps.contains(Capabilities::VIDEO_CAPTURE) {
            continue;
        }
        let modes = modes(&file, width, height, fps);
        log::debug!(
            "{path}: {} ({}), {} modes",
            cap.card,
            cap.driver,
            modes.len()
        );
        if !modes.is_empty() {
            scan.cameras.push(Camera {
                path,
                card: cap.card,
                modes,
            });
        }
    }
    scan
}

/// True while a device node still answers (a USB camera unplugged does not).
pub fn present(path: &str) -> bool {
    Path::new(path).exists()
        && File::open(path)
            .ok()
            .is_some_and(|f| ioctl::querycap::<Capability>(&f).is_ok())
}

/// The MJPEG and YUYV modes of a capture node. Stepwise sizes and rates are
/// turned into the one closest to what is asked.
fn modes(file: &File, width: u32, height: u32, fps: u32) -> Vec<Mode> {
    let mut out = Vec::new();
    for desc in ioctl::FormatIterator::new(file, QueueType::VideoCapture) {
        let fourcc = desc.pixelformat.to_fourcc();
        let name = String::from_utf8_lossy(&fourcc).to_string();
        if name != "MJPG" && name != "YUYV" {
            continue;
        }
        for (w, h) in sizes(file, desc.pixelformat, width, height) {
            let rates = rates(file, desc.pixelformat, w, h, fps);
            out.push(Mode {
                fourcc: name.clone(),
                width: w,
                height: h,
                rates,
            });
        }
    }
    out
}

fn sizes(file: &File, format: PixelFormat, width: u32, height: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for index in 0..256 {
        let Ok(size) = ioctl::enum_frame_sizes::<v4l2_frmsizeenum>(file, index, format) else {
            break;
        };
        match size.size() {
            Some(FrmSizeTypes::Discrete(d)) => out.push((d.width, d.height)),
            Some(FrmSizeTypes::StepWise(s)) => {
                let fit = |want: u32, min: u32, max: u32, step: u32| {
                    let v = want.clamp(min, max.max(min));
                    let step = step.max(1);
                    min + (v - min) / step * step
                };
                out.push((
                    fit(width, s.min_width, s.max_width, s.step_width),
                    fit(height, s.min_height, s.max_height, s.step_height),
                ));
                break;
            }
            None => break,
        }
    }
    out
}

fn rates(file: &File, format: PixelFormat, width: u32, height: u32, fps: u32) -> Vec<Fps> {
    let mut out = Vec::new();
    for index in 0..64 {
        let Ok(ival) =
            ioctl::enum_frame_intervals::<v4l2_frmivalenum>(file, index, format, width, height)
        else {
            break;
        };
        // An interval is seconds per frame: the rate is its inverse.
        match ival.intervals() {
            Some(FrmIvalTypes::Discrete(f)) => out.push(Fps {
                num: f.denominator,
                den: f.numerator,
            }),
            Some(FrmIvalTypes::StepWise(s)) => {
                // Shortest interval = highest rate; keep the asked rate when
                // it is inside the range.
                let max = Fps {
                    num: s.min.denominator,
                    den: s.min.numerator,
                };
                let min = Fps {
                    num: s.max.denominator,
                    den: s.max.numerator,
                };
                let want = f64::from(fps);
                if want <= max.per_second() && want >= min.per_second() {
                    out.push(Fps { num: fps, den: 1 });
                }
                out.push(max);
                break;
            }
            None => break,
        }
    }
    out
}
