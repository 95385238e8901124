//! `babymon serve` with the test pattern and tone, watched by Debian's real
//! headless Chromium (driven by the node scripts in `tests/browser/`): the
//! page decodes video and receives sound, the viewer limit holds and frees,
//! bad offers are refused without harm, and the password flow works.

mod common;

use std::time::Duration;

use common::{Server, artifacts, config, node, request, require_loopback_only};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");
/// Time for the pipeline to reach PLAYING (the first start may scan the
/// GStreamer plugin registry).
const PLAYING_WITHIN: Duration = Duration::from_secs(60);

fn frames(v: &serde_json::Value) -> u64 {
    v["framesDecoded"].as_u64().unwrap_or(0)
}

#[test]
fn chromium_decodes_video_and_sound_at_phone_size() {
    require_loopback_only();
    let _serial = common::one_at_a_time();
    let s = Server::start(&config("", ""));
    s.wait_playing(PLAYING_WITHIN);
    let shot = artifacts().join("viewer-phone.png");
    let out = node(
        "watch.mjs",
        &[
            "--url",
            &s.url(),
            "--frames",
            "60",
            "--timeout",
            "15000",
            "--tap",
            "1",
            "--screenshot",
            shot.to_str().unwrap(),
        ],
    );
    eprintln!("watch.mjs: {out}");
    let v = &out["viewers"][0];
    assert_eq!(v["ok"], true, "60 frames and sound within 15 s: {out}");
    assert!(frames(v) >= 60, "{out}");
    assert!(v["audioBytes"].as_u64().unwrap_or(0) > 0, "{out}");
    assert_eq!(v["state"], "live", "{out}");
    assert_eq!(
        out["afterTap"]["muted"], false,
        "one tap turns the sound on: {out}"
    );
    assert_eq!(out["afterTap"]["videoMuted"], false, "{out}");
    assert!(
        out["afterTap"]["meter"].as_f64().unwrap_or(0.0) > 0.0,
        "the meter moves: {out}"
    );
    assert!(shot.is_file(), "screenshot kept at {}", shot.display());
    let panel = out["panelText"].as_str().unwrap_or_default();
    assert!(
        panel.contains("test"),
        "the panel names the source: {panel}"
    );
    let pic = &out["picture"][0];
    assert_eq!(
        (pic["width"].as_u64(), pic["height"].as_u64()),
        (Some(320), Some(240)),
        "{out}"
    );
    assert!(
        pic["maxLuma"].as_u64().unwrap_or(0) > 60,
        "the picture is drawn, not black (frames decoded but never drawn: the answer's a=ssrc lines do not name the stream sent): {out}"
    );
    assert!(
        out["mutedAgain"]["muted"] == true
            && out["mutedAgain"]["meter"].as_f64().unwrap_or(0.0) > 0.0,
        "the meter keeps moving while muted: {out}"
    );
    // Over loopback the viewer's address is this machine's own, which is
    // how a tunnelled viewer looks too.
    let last = &out["final"][0];
    assert!(
        ["lan", "tunnel"].contains(&last["path"].as_str().unwrap_or("")),
        "the page learnt its path from /api/status: {out}"
    );
    assert_eq!(last["transport"], "udp", "{out}");
    eprintln!(
        "first frame {} ms after the page started connecting (answer after {} ms)",
        last["firstFrameMs"], last["answerMs"]
    );
}

#[test]
fn two_viewers_decode_a_third_is_refused_and_a_vanished_one_frees_its_place() {
    require_loopback_only();
    let _serial = common::one_at_a_time();
    let s = Server::start(&config("max_viewers = 2", ""));
    s.wait_playing(PLAYING_WITHIN);
    let out = node(
        "limits.mjs",
        &["--url", &s.url(), "--free-timeout", "60000"],
    );
    eprintln!("limits.mjs: {out}");
    for v in out["twoDecode"].as_array().expect("two viewers") {
        assert_eq!(v["ok"], true, "both decode at once: {out}");
    }
    assert_eq!(out["countWithTwo"], 2, "{out}");
    assert_eq!(out["third"]["status"], 503, "{out}");
    let retry: u64 = out["third"]["retryAfter"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    assert!(retry > 0, "Retry-After: {out}");
    assert_eq!(out["thirdPage"]["refused"], true, "the page says so: {out}");
    assert!(
        out["freed"]["count"].as_u64().unwrap_or(9) < 2,
        "the vanished viewer's place frees: {out}"
    );
    assert_eq!(
        out["thirdGetsIn"]["ok"], true,
        "the waiting page gets in without a reload: {out}"
    );
    assert_eq!(out["secondStillLive"], true, "{out}");
    assert!(
        s.log_text().contains("ended by the viewer"),
        "a page that closes sends DELETE: {out}"
    );
    assert_eq!(out["afterClose"]["after"].as_u64(), Some(1), "{out}");
}

#[test]
fn bad_offers_are_refused_and_a_viewer_still_decodes() {
    require_loopback_only();
    let _serial = common::one_at_a_time();
    let s = Server::start(&config("max_viewers = 2", ""));
    s.wait_playing(PLAYING_WITHIN);
    let offer = node("offer.mjs", &[])["offer"]
        .as_str()
        .expect("an offer")
        .to_string();
    let p = s.port;
    let post = |body: &str| request(p, "POST", "/whep", &[SDP], body.as_bytes());

    let without = |codec: &str| -> String {
        // Drop every payload type whose rtpmap names the codec, from the
        // m= line and the attribute lines.
        let pts: Vec<String> = offer
            .lines()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter(|l| l.to_ascii_lowercase().contains(&codec.to_ascii_lowercase()))
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect();
        assert!(!pts.is_empty(), "the offer has {codec}");
        offer
            .split("\r\n")
            .filter(|l| {
                !pts.iter()
                    .any(|pt| l.starts_with("a=") && l.contains(&format!(":{pt} ")))
            })
            .filter(|l| {
                !pts.iter()
                    .any(|pt| l.starts_with("a=") && l.ends_with(&format!(":{pt}")))
            })
            .map(|l| {
                if l.starts_with("m=") {
                    l.split(' ')
                        .filter(|w| !pts.iter().any(|pt| pt == w))
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let cases = [
        ("not SDP", "hello".to_string(), 400),
        ("no H.264", without("H264"), 400),
        ("no Opus", without("opus"), 400),
        (
            "wants to send",
            offer.replace("a=recvonly", "a=sendrecv"),
            400,
        ),
        ("truncated", offer[..offer.len() / 3].to_string(), 400),
    ];
    for (what, body, code) in &cases {
        let r = post(body);
        assert_eq!(r.status, *code, "{what}: {r:?}");
        assert!(!r.body.trim().is_empty(), "{what}: a reason");
    }
    let r = request(
        p,
        "POST",
        "/whep",
        &[("Content-Type", "text/plain")],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 415);
    let r = request(
        p,
        "POST",
        "/whep",
        &[SDP, ("Host", "evil.example")],
        offer.as_bytes(),
    );
    assert_eq!(r.status, 403);
    let r = request(p, "DELETE", "/whep/unknown", &[], b"");
    assert_eq!(r.status, 404);

    // A good offer by hand: 201, Location, an answer; DELETE frees it.
    let r = post(&offer);
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/sdp"));
    let location = r.header("location").expect("Location").to_string();
    assert!(location.starts_with("/whep/"), "{location}");
    assert!(r.body.starts_with("v=0"), "{}", r.body);
    let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=end-of-candidates\r\n";
    let r = request(
        p,
        "PATCH",
        &location,
        &[("Content-Type", "application/trickle-ice-sdpfrag")],
        frag.as_bytes(),
    );
    assert!(r.status == 204 || r.status == 400, "PATCH: {r:?}");
    assert_eq!(request(p, "DELETE", &location, &[], b"").status, 200);
    assert_eq!(
        request(p, "DELETE", &location, &[], b"").status,
        404,
        "gone"
    );

    let out = node("watch.mjs", &["--url", &s.url(), "--frames", "60"]);
    assert_eq!(
        out["viewers"][0]["ok"], true,
        "a viewer still decodes: {out}"
    );
}

#[test]
fn password_flow_in_a_browser() {
    require_loopback_only();
    let _serial = common::one_at_a_time();
    let password = "night owl 7";
    let s = Server::start(&config(&format!("password = \"{password}\""), ""));
    s.wait_playing(PLAYING_WITHIN);
    let out = node("login.mjs", &["--url", &s.url(), "--password", password]);
    eprintln!("login.mjs: {out}");
    assert_eq!(out["formShown"], true, "{out}");
    assert_eq!(out["viewerBeforeLogin"], false, "{out}");
    assert!(
        out["wrongMessage"].as_str().unwrap_or("").contains("Wrong"),
        "{out}"
    );
    let cookies = out["cookies"].as_array().expect("cookies");
    let c = cookies
        .iter()
        .find(|c| c["name"] == "babymon_session")
        .expect("session cookie");
    assert_eq!(c["httpOnly"], true, "{out}");
    assert_eq!(c["sameSite"], "Strict", "{out}");
    assert_eq!(c["isPassword"], false, "{out}");
    assert_eq!(out["scriptSeesCookie"], false, "{out}");
    assert_eq!(out["decodes"]["ok"], true, "{out}");
    assert!(!s.log_text().contains(password));
}

#[test]
fn the_page_reconnects_by_itself_after_the_server_restarts() {
    require_loopback_only();
    let _serial = common::one_at_a_time();
    let text = config("", "");
    let mut first = Server::start(&text);
    first.wait_playing(PLAYING_WITHIN);
    let url = first.url();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let mut child = std::process::Command::new("node")
        .arg(dir.join("reconnect.mjs"))
        .args(["--url", &url])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let ready = lines.by_ref().map_while(Result::ok).find(|l| l == "live");
    assert!(ready.is_some(), "the page never went live");
    assert!(first.stop(Duration::from_secs(10)).success());
    drop(first);
    let second = Server::start_on(
        &text,
        &format!("127.0.0.1:{}", url.rsplit(':').next().unwrap()),
    );
    let out = lines
        .map_while(Result::ok)
        .filter(|l| l.starts_with('{'))
        .last();
    let _ = child.wait();
    let out: serde_json::Value =
        serde_json::from_str(&out.expect("JSON from reconnect.mjs")).unwrap();
    eprintln!("reconnect.mjs: {out}");
    assert_eq!(out["first"]["ok"], true, "{out}");
    assert_eq!(out["lost"]["ok"], true, "the page notices: {out}");
    assert!(
        out["lost"]["words"]
            .as_str()
            .unwrap_or("")
            .contains("reconnecting in"),
        "{out}"
    );
    assert_eq!(
        out["back"]["ok"], true,
        "live again on a new session: {out}"
    );
    assert_eq!(out["sameDocument"], true, "without a reload: {out}");
    drop(second);
}
