//! Pure SDP handling for WHEP offers: checking that an offer is one babymon
//! can answer, reading the payload types the viewer chose, and dropping the
//! mDNS (`.local`) candidates that webrtcbin 1.22 cannot resolve quickly.
//! Nothing here touches GStreamer; `session` feeds the result to webrtcbin.

use std::collections::BTreeMap;

use super::OfferError;

/// What babymon needs from an offer to build a viewer's branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPlan {
    pub video: Codec,
    /// `None` when audio is off or the offer has no audio section.
    pub audio: Option<Codec>,
}

/// One payload type of the offer, with its `fmtp` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    pub payload: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u32>,
    pub fmtp: BTreeMap<String, String>,
}

/// One `m=` section of an offer.
#[derive(Debug, Default)]
struct Section {
    kind: String,
    port: u32,
    payloads: Vec<u8>,
    direction: Option<String>,
    bundle_only: bool,
    rtpmap: BTreeMap<u8, RtpMap>,
    fmtp: BTreeMap<u8, BTreeMap<String, String>>,
}

impl Section {
    /// Port 0 rejects a section, unless it is `bundle-only` (RFC 8843):
    /// then it shares the first section's transport.
    fn used(&self) -> bool {
        self.port != 0 || self.bundle_only
    }
}

/// Checks an offer and picks the payload types to send. `audio` says
/// whether babymon sends sound: then the offer must take Opus.
pub fn plan(offer: &str, audio: bool) -> Result<OfferPlan, OfferError> {
    let sections = parse(offer)?;
    for s in &sections {
        let dir = s.direction.as_deref().unwrap_or("sendrecv");
        if s.used()
            && (s.kind == "audio" || s.kind == "video")
            && dir != "recvonly"
            && dir != "inactive"
        {
            return Err(OfferError::WantsToSend(format!("{} ({dir})", s.kind)));
        }
    }
    let video = sections
        .iter()
        .filter(|s| s.kind == "video" && s.used())
        .find_map(best_h264)
        .ok_or(OfferError::NoH264)?;
    let audio = if audio {
        let opus = sections
            .iter()
            .filter(|s| s.kind == "audio" && s.used())
            .find_map(|s| {
                codecs(s)
                    .into_iter()
                    .find(|c| c.encoding.eq_ignore_ascii_case("opus"))
            });
        Some(opus.ok_or(OfferError::NoOpus)?)
    } else {
        None
    };
    Ok(OfferPlan { video, audio })
}

/// Restricts the offer's audio and video sections to the payload types of
/// the plan (and the RTX types that repeat them), so that webrtcbin cannot
/// answer with another of the offer's H.264 types than the one the
/// payloader uses (1.22 ignores profile-level-id when it picks one).
pub fn keep_planned(offer: &str, plan: &OfferPlan) -> String {
    let Ok(sections) = parse(offer) else {
        return offer.to_string();
    };
    let keep: Vec<Option<Vec<u8>>> = sections
        .iter()
        .map(|s| {
            let chosen = match s.kind.as_str() {
                "video" => plan.video.payload,
                "audio" => plan.audio.as_ref()?.payload,
                _ => return None,
            };
            if !s.payloads.contains(&chosen) {
                return None;
            }
            let apt = chosen.to_string();
            let rtx = s.payloads.iter().copied().filter(|pt| {
                s.rtpmap
                    .get(pt)
                    .is_some_and(|(enc, _, _)| enc.eq_ignore_ascii_case("rtx"))
                    && s.fmtp.get(pt).and_then(|f| f.get("apt")) == Some(&apt)
            });
            Some(std::iter::once(chosen).chain(rtx).collect())
        })
        .collect();
    let mut out = String::with_capacity(offer.len());
    let mut index: Option<usize> = None;
    for line in offer.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare.starts_with("m=") {
            let i = index.map_or(0, |i| i + 1);
            index = Some(i);
            if let Some(Some(kept)) = keep.get(i) {
                let fields: Vec<&str> = bare.split_whitespace().take(3).collect();
                let pts: Vec<String> = kept.iter().map(u8::to_string).collect();
                out.push_str(&format!("{} {}", fields.join(" "), pts.join(" ")));
                out.push_str(&line[bare.len()..]);
                continue;
            }
        } else if let Some(Some(kept)) = index.and_then(|i| keep.get(i))
            && let Some(pt) = attribute_payload(bare)
            && !kept.contains(&pt)
        {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// The payload type an `rtpmap`, `fmtp` or `rtcp-fb` line is about.
fn attribute_payload(line: &str) -> Option<u8> {
    let rest = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The first payload type of the first `kind` section of an SDP.
pub fn first_payload(sdp: &str, kind: &str) -> Option<u8> {
    let sections = parse(sdp).ok()?;
    sections
        .iter()
        .find(|s| s.kind == kind)?
        .payloads
        .first()
        .copied()
}

/// Adds `profile-level-id` to the answer's `fmtp` line of `pt` when
/// webrtcbin left it out (a missing one means plain baseline).
pub fn with_profile_level_id(answer: &str, pt: u8, profile_level_id: &str) -> String {
    let prefix = format!("a=fmtp:{pt} ");
    let mut out = String::with_capacity(answer.len() + 24);
    for line in answer.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare.starts_with(&prefix) && !bare.contains("profile-level-id=") {
            out.push_str(&format!("{bare};profile-level-id={profile_level_id}"));
            out.push_str(&line[bare.len()..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Removes the `a=ssrc` and `a=ssrc-group` lines of an answer. webrtcbin
/// writes them before any buffer has reached its sink pads, so the media
/// SSRC reads 0 and only the RTX SSRC carries the `msid`: Chromium then ties
/// the track to the retransmission stream, decodes frames and never draws
/// them. Without these lines it takes the stream by payload type and MID,
/// which is all a single-stream sender needs.
pub fn without_ssrc_lines(answer: &str) -> String {
    answer
        .split_inclusive('\n')
        .filter(|line| !line.starts_with("a=ssrc:") && !line.starts_with("a=ssrc-group:"))
        .collect()
}

/// Removes `a=candidate` lines whose address is an mDNS name (`*.local`).
pub fn drop_mdns_candidates(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        if is_mdns_candidate(line.trim_end()) {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// True for an ICE candidate line (with or without `a=`) naming a `.local`
/// host instead of an address.
pub fn is_mdns_candidate(line: &str) -> bool {
    let body = line.strip_prefix("a=").unwrap_or(line);
    let Some(rest) = body.strip_prefix("candidate:") else {
        return false;
    };
    // foundation component transport priority address port typ ...
    rest.split_whitespace()
        .nth(4)
        .is_some_and(|addr| addr.to_ascii_lowercase().ends_with(".local"))
}

/// The candidate lines of an `application/trickle-ice-sdpfrag` body, with
/// the index of the `m=` section each belongs to (0 when the fragment has
/// no `m=` line). mDNS candidates are left out.
pub fn fragment_candidates(frag: &str) -> Result<Vec<(u32, String)>, String> {
    let mut out = Vec::new();
    let mut index: Option<u32> = None;
    for raw in frag.lines() {
        let line = raw.trim();
        if line.starts_with("m=") {
            index = Some(index.map_or(0, |i| i + 1));
        } else if let Some(c) = line.strip_prefix("a=candidate:") {
            if c.split_whitespace().count() < 8 {
                return Err(format!("{line:?}: not an ICE candidate"));
            }
            if !is_mdns_candidate(line) {
                out.push((index.unwrap_or(0), format!("candidate:{c}")));
            }
        } else if line == "a=end-of-candidates" || line.is_empty() || line.contains('=') {
            continue;
        } else {
            return Err(format!("{line:?}: not an SDP line"));
        }
    }
    Ok(out)
}

fn parse(offer: &str) -> Result<Vec<Section>, OfferError> {
    let not_sdp = |why: &str| OfferError::NotSdp(why.to_string());
    let mut lines = offer.lines().map(str::trim_end).filter(|l| !l.is_empty());
    if lines.next() != Some("v=0") {
        return Err(not_sdp("it does not start with v=0"));
    }
    let mut sections: Vec<Section> = Vec::new();
    let mut session_direction: Option<String> = None;
    for line in lines {
        let Some((key, value)) = line.split_once('=') else {
            return Err(OfferError::NotSdp(format!("{line:?} is not an SDP line")));
        };
        if key.len() != 1 {
            return Err(OfferError::NotSdp(format!("{line:?} is not an SDP line")));
        }
        if key == "m" {
            sections.push(media_line(value)?);
            continue;
        }
        if key != "a" {
            continue;
        }
        let (name, arg) = value.split_once(':').unwrap_or((value, ""));
        let direction = matches!(name, "sendrecv" | "sendonly" | "recvonly" | "inactive");
        let Some(s) = sections.last_mut() else {
            if direction {
                session_direction = Some(name.to_string());
            }
            continue;
        };
        match name {
            _ if direction => s.direction = Some(name.to_string()),
            "bundle-only" => s.bundle_only = true,
            "rtpmap" => {
                if let Some((pt, map)) = rtpmap(arg) {
                    s.rtpmap.insert(pt, map);
                }
            }
            "fmtp" => {
                if let Some((pt, params)) = arg.split_once(' ')
                    && let Ok(pt) = pt.parse::<u8>()
                {
                    s.fmtp.insert(pt, fmtp_params(params));
                }
            }
            _ => {}
        }
    }
    if sections.is_empty() {
        return Err(not_sdp("it has no m= line"));
    }
    for s in &mut sections {
        if s.direction.is_none() {
            s.direction.clone_from(&session_direction);
        }
    }
    Ok(sections)
}

fn media_line(value: &str) -> Result<Section, OfferError> {
    let bad = || OfferError::NotSdp(format!("\"m={value}\" is not a media line"));
    let mut fields = value.split_whitespace();
    let kind = fields.next().ok_or_else(bad)?.to_string();
    let port = fields
        .next()
        .and_then(|p| p.split('/').next()?.parse().ok())
        .ok_or_else(bad)?;
    let _proto = fields.next().ok_or_else(bad)?;
    // Payload types are numbers for RTP; other formats (data channels) are kept out.
    let payloads = fields.filter_map(|f| f.parse().ok()).collect();
    Ok(Section {
        kind,
        port,
        payloads,
        ..Section::default()
    })
}

/// An `rtpmap` value: encoding name, clock rate and channels.
type RtpMap = (String, u32, Option<u32>);

fn rtpmap(arg: &str) -> Option<(u8, RtpMap)> {
    let (pt, rest) = arg.split_once(' ')?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.to_string();
    let clock = parts.next()?.parse().ok()?;
    let channels = parts.next().and_then(|c| c.parse().ok());
    Some((pt.parse().ok()?, (encoding, clock, channels)))
}

fn fmtp_params(params: &str) -> BTreeMap<String, String> {
    params
        .split(';')
        .filter_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

fn codecs(s: &Section) -> Vec<Codec> {
    s.payloads
        .iter()
        .filter_map(|pt| {
            let (encoding, clock_rate, channels) = s.rtpmap.get(pt)?.clone();
            Some(Codec {
                payload: *pt,
                encoding,
                clock_rate,
                channels,
                fmtp: s.fmtp.get(pt).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// The H.264 payload of a section that can carry babymon's constrained
/// baseline stream, best first: constrained baseline itself, then other
/// profiles whose decoders take it.
fn best_h264(s: &Section) -> Option<Codec> {
    codecs(s)
        .into_iter()
        .filter(|c| c.encoding.eq_ignore_ascii_case("h264") && c.clock_rate == 90000)
        .filter(|c| c.fmtp.get("packetization-mode").map(String::as_str) == Some("1"))
        .filter_map(|c| {
            // RFC 6184: no profile-level-id means 420010 (baseline).
            let plid = c
                .fmtp
                .get("profile-level-id")
                .map_or("420010", String::as_str);
            profile_rank(plid).map(|rank| (rank, c))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, c)| c)
}

/// How well a decoder of `profile-level-id` takes a constrained baseline
/// stream: lower is better, `None` when it cannot.
pub fn profile_rank(profile_level_id: &str) -> Option<u8> {
    if profile_level_id.len() != 6 {
        return None;
    }
    let idc = u8::from_str_radix(profile_level_id.get(0..2)?, 16).ok()?;
    let iop = u8::from_str_radix(profile_level_id.get(2..4)?, 16).ok()?;
    u8::from_str_radix(profile_level_id.get(4..6)?, 16).ok()?;
    match idc {
        // Baseline with constraint_set1: constrained baseline exactly.
        0x42 if iop & 0x40 != 0 => Some(0),
        0x42 => Some(1),
        // Main and Extended decode constrained baseline.
        0x4d | 0x58 => Some(2),
        // High decoders too, but not its 4:4:4 and intra variants.
        0x64 => Some(3),
        _ => None,
    }
}

#[cfg(test)]
#[path = "sdp_tests.rs"]
mod tests;
