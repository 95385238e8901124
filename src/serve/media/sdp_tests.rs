use super::*;

/// The shape of a Chromium WHEP offer (recvonly video and audio), cut down.
const CHROMIUM: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=msid-semantic: WMS\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 106 107 108 109 127 125\r
c=IN IP4 0.0.0.0\r
a=candidate:1 1 udp 2122260223 3b1c5c9e-2d4f-4a55-9f0e-8f1f7b7a8c11.local 51515 typ host generation 0\r
a=candidate:2 1 udp 2122260223 127.0.0.1 51516 typ host generation 0\r
a=mid:0\r
a=recvonly\r
a=rtcp-mux\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 nack\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:102 H264/90000\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:106 H264/90000\r
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r
a=rtpmap:107 rtx/90000\r
a=fmtp:107 apt=106\r
a=rtpmap:108 H264/90000\r
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:109 rtx/90000\r
a=fmtp:109 apt=108\r
a=rtpmap:127 H264/90000\r
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r
a=rtpmap:125 rtx/90000\r
a=fmtp:125 apt=127\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r
c=IN IP4 0.0.0.0\r
a=mid:1\r
a=recvonly\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
";

#[test]
fn chromium_offer_takes_its_payload_types() {
    let plan = plan(CHROMIUM, true).unwrap();
    assert_eq!(plan.video.payload, 108);
    assert_eq!(plan.video.fmtp["profile-level-id"], "42e01f");
    assert_eq!(plan.video.fmtp["packetization-mode"], "1");
    let audio = plan.audio.unwrap();
    assert_eq!(audio.payload, 111);
    assert_eq!(audio.clock_rate, 48000);
    assert_eq!(audio.channels, Some(2));
}

#[test]
fn audio_off_needs_no_opus() {
    let no_opus = CHROMIUM.replace("opus/48000/2", "ISAC/16000");
    assert!(matches!(plan(&no_opus, true), Err(OfferError::NoOpus)));
    let plan = plan(&no_opus, false).unwrap();
    assert_eq!(plan.audio, None);
}

#[test]
fn no_usable_h264_is_refused() {
    // Only packetization-mode 0 and a High 4:4:4 profile are left.
    let offer = CHROMIUM
        .replace(
            "packetization-mode=1;profile-level-id=42001f",
            "packetization-mode=0;profile-level-id=42001f",
        )
        .replace(
            "packetization-mode=1;profile-level-id=42e01f",
            "packetization-mode=0;profile-level-id=42e01f",
        )
        .replace("profile-level-id=4d001f", "profile-level-id=f4001f");
    assert!(matches!(plan(&offer, true), Err(OfferError::NoH264)));
    let vp8_only =
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
    assert!(matches!(plan(vp8_only, false), Err(OfferError::NoH264)));
}

#[test]
fn baseline_is_taken_when_constrained_baseline_is_missing() {
    let offer = CHROMIUM.replace("a=rtpmap:108 H264/90000\r\n", "");
    assert_eq!(plan(&offer, true).unwrap().video.payload, 102);
    // No profile-level-id means baseline.
    let bare = "v=0\r\nm=video 9 RTP/AVP 100\r\na=recvonly\r\na=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=1\r\n";
    assert_eq!(plan(bare, false).unwrap().video.payload, 100);
}

#[test]
fn profile_ranks() {
    assert_eq!(profile_rank("42e01f"), Some(0));
    assert_eq!(profile_rank("42001f"), Some(1));
    assert_eq!(profile_rank("4d001f"), Some(2));
    assert_eq!(profile_rank("640c1f"), Some(3));
    assert_eq!(profile_rank("f4001f"), None);
    assert_eq!(profile_rank("42e0"), None);
    assert_eq!(profile_rank("zz001f"), None);
}

#[test]
fn offers_that_want_to_send_are_refused() {
    let sendrecv = CHROMIUM.replacen("a=recvonly", "a=sendrecv", 1);
    match plan(&sendrecv, true) {
        Err(OfferError::WantsToSend(what)) => assert_eq!(what, "video (sendrecv)"),
        other => panic!("{other:?}"),
    }
    let sendonly_audio = CHROMIUM.replace("a=mid:1\r\na=recvonly", "a=mid:1\r\na=sendonly");
    assert!(
        matches!(plan(&sendonly_audio, true), Err(OfferError::WantsToSend(w)) if w.starts_with("audio"))
    );
    // No direction at all means sendrecv.
    let none = CHROMIUM.replace("a=recvonly\r\n", "");
    assert!(matches!(plan(&none, true), Err(OfferError::WantsToSend(_))));
    // A rejected section (port 0) does not count.
    let rejected = sendonly_audio.replace("m=audio 9", "m=audio 0");
    assert!(plan(&rejected, false).is_ok());
}

#[test]
fn bundle_only_sections_count_despite_port_0() {
    // webrtcbin offers its second section this way.
    let offer = CHROMIUM
        .replace("m=audio 9", "m=audio 0")
        .replace("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n");
    assert_eq!(plan(&offer, true).unwrap().audio.unwrap().payload, 111);
    let no_bundle = CHROMIUM.replace("m=audio 9", "m=audio 0");
    assert!(matches!(plan(&no_bundle, true), Err(OfferError::NoOpus)));
}

#[test]
fn not_sdp_is_refused() {
    for body in [
        "",
        "hello",
        "{\"sdp\": \"v=0\"}",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n",
        "v=0\nm=video\n",
    ] {
        assert!(
            matches!(plan(body, true), Err(OfferError::NotSdp(_))),
            "{body:?}"
        );
    }
}

#[test]
fn mdns_candidates_are_dropped() {
    let out = drop_mdns_candidates(CHROMIUM);
    assert!(!out.contains(".local"));
    assert!(out.contains("a=candidate:2 1 udp 2122260223 127.0.0.1 51516 typ host"));
    assert_eq!(out.lines().count(), CHROMIUM.lines().count() - 1);
    assert!(is_mdns_candidate(
        "candidate:1 1 udp 1 abc.LOCAL 9 typ host"
    ));
    assert!(!is_mdns_candidate(
        "a=candidate:1 1 udp 1 10.0.0.2 9 typ host"
    ));
    assert!(!is_mdns_candidate("a=mid:local"));
}

#[test]
fn trickle_fragments_give_candidates() {
    let frag = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0\r\n\
a=candidate:3 1 udp 2122260223 x.local 61765 typ host\r\nm=video 9 RTP/AVP 0\r\n\
a=candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active\r\na=end-of-candidates\r\n";
    let got = fragment_candidates(frag).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, 0);
    assert!(got[0].1.starts_with("candidate:1387637174 1 udp"));
    assert_eq!(got[1].0, 1);
    assert!(fragment_candidates("a=candidate:1 1 udp\r\n").is_err());
    assert!(fragment_candidates("garbage\r\n").is_err());
}

#[test]
fn the_offer_is_cut_to_the_planned_types() {
    let p = plan(CHROMIUM, true).unwrap();
    let cut = keep_planned(CHROMIUM, &p);
    assert!(
        cut.contains("m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\n"),
        "{cut}"
    );
    assert!(cut.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"), "{cut}");
    for gone in [
        "a=rtpmap:102 ",
        "a=fmtp:103 ",
        "a=rtcp-fb:96 ",
        "a=rtpmap:127 ",
        "a=rtpmap:63 ",
    ] {
        assert!(!cut.contains(gone), "{gone} left in {cut}");
    }
    for kept in [
        "a=rtpmap:108 H264/90000",
        "a=fmtp:109 apt=108",
        "a=rtpmap:111 opus/48000/2",
        "a=mid:1",
        "a=candidate:2 ",
    ] {
        assert!(cut.contains(kept), "{kept} missing from {cut}");
    }
    // Still a valid offer with the same plan.
    assert_eq!(plan(&cut, true).unwrap(), p);
    assert_eq!(first_payload(&cut, "video"), Some(108));
    assert_eq!(first_payload(&cut, "audio"), Some(111));
}

#[test]
fn profile_level_id_is_added_to_the_answer() {
    let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 108 109\r\na=fmtp:108 packetization-mode=1;level-asymmetry-allowed=1\r\na=fmtp:109 apt=108\r\n";
    let fixed = with_profile_level_id(answer, 108, "42e01f");
    assert!(fixed.contains(
        "a=fmtp:108 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42e01f\r\n"
    ));
    assert!(fixed.contains("a=fmtp:109 apt=108\r\n"));
    assert_eq!(with_profile_level_id(&fixed, 108, "42e01f"), fixed);
}

#[test]
fn ssrc_lines_are_dropped_from_the_answer() {
    let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 108 109\r\na=mid:0\r\n\
                  a=ssrc-group:FID 0 1353408816\r\na=ssrc:1353408816 msid:user1 video\r\n\
                  a=ssrc:1353408816 cname:x\r\na=rtpmap:108 H264/90000\r\n";
    let out = without_ssrc_lines(answer);
    assert!(!out.contains("a=ssrc"), "{out}");
    assert!(
        out.contains("a=mid:0\r\na=rtpmap:108 H264/90000\r\n"),
        "{out}"
    );
}
