//! `babymon serve` over plain HTTP, without a browser: status codes for bad
//! input, the Host check, the password, the status JSON and state files,
//! start-up refusals and shutdown. These hold whether or not the camera
//! pipeline is playing.

mod common;

use std::time::Duration;

use common::{Server, config, request, require_loopback_only};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");
const FRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

#[test]
fn bad_requests_get_their_status_codes() {
    require_loopback_only();
    let s = Server::start(&config("", ""));
    let p = s.port;

    let r = request(
        p,
        "POST",
        "/whep",
        &[("Content-Type", "text/plain")],
        b"v=0\r\n",
    );
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.body.contains("application/sdp"), "{}", r.body);
    let r = request(p, "POST", "/whep", &[], b"v=0\r\n");
    assert_eq!(r.status, 415, "no Content-Type: {r:?}");

    let big = vec![b'a'; 64 * 1024 + 1];
    let r = request(p, "POST", "/whep", &[SDP], &big);
    assert_eq!(r.status, 413, "{r:?}");
    let mut just_fits = b"v=0\r\n".to_vec();
    just_fits.resize(64 * 1024, b'x');
    let r = request(p, "POST", "/whep", &[SDP], &just_fits);
    assert_ne!(r.status, 413, "64 KiB exactly is allowed");

    let r = request(p, "POST", "/whep", &[SDP], b"{\"type\": \"offer\"}");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body.contains("not an SDP offer"),
        "the reason: {}",
        r.body
    );
    let r = request(p, "POST", "/whep", &[SDP], &[0xff, 0xfe, b'v']);
    assert_eq!(r.status, 400, "not UTF-8: {r:?}");

    let r = request(p, "DELETE", "/whep/nosuchsession", &[], b"");
    assert_eq!(r.status, 404, "{r:?}");
    let r = request(
        p,
        "PATCH",
        "/whep/nosuchsession",
        &[FRAG],
        b"a=end-of-candidates\r\n",
    );
    assert_eq!(r.status, 404, "{r:?}");
    let r = request(
        p,
        "PATCH",
        "/whep/nosuchsession",
        &[SDP],
        b"a=end-of-candidates\r\n",
    );
    assert_eq!(r.status, 415, "{r:?}");
    let r = request(p, "GET", "/whep", &[], b"");
    assert_eq!(r.status, 405, "{r:?}");
    let r = request(p, "GET", "/nothing-here", &[], b"");
    assert_eq!(r.status, 404, "{r:?}");

    // Still serving after all that.
    assert_eq!(s.get("/api/status").status, 200);
    assert!(s.get("/").body.contains("viewer.js"));
}

#[test]
fn only_ip_literals_and_own_names_are_served() {
    require_loopback_only();
    let s = Server::start(&config("", "[system]\nhostname = \"nursery\"\n"));
    for host in [
        "127.0.0.1",
        "127.0.0.1:8080",
        "[::1]:80",
        "nursery",
        "Nursery.local",
        "localhost",
    ] {
        let r = request(s.port, "GET", "/api/status", &[("Host", host)], b"");
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
    }
    for host in [
        "evil.example",
        "babymon.local",
        "nursery.evil.example",
        "127.0.0.1.nip.io",
        "",
    ] {
        for path in ["/", "/api/status", "/viewer.js"] {
            let r = request(s.port, "GET", path, &[("Host", host)], b"");
            assert_eq!(r.status, 403, "Host {host:?} {path}: {r:?}");
            assert!(!r.body.trim().is_empty(), "a reason");
        }
        let r = request(s.port, "POST", "/whep", &[("Host", host), SDP], b"v=0\r\n");
        assert_eq!(r.status, 403, "Host {host:?} POST /whep: {r:?}");
    }
    // init's probe may send no Host; /healthz says nothing private anyway.
    let r = request(s.port, "GET", "/healthz", &[("Host", "")], b"");
    assert!(r.status == 200 || r.status == 503, "{r:?}");
}

#[test]
fn status_json_and_state_files() {
    require_loopback_only();
    let s = Server::start(&config("max_viewers = 3", ""));
    let r = s.get("/api/status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptime_s"].is_u64());
    for key in ["kind", "device", "format"] {
        assert!(v["source"].get(key).is_some(), "source.{key} in {v}");
    }
    for key in ["name", "reason"] {
        assert!(v["encoder"].get(key).is_some(), "encoder.{key} in {v}");
    }
    for key in ["width", "height", "framerate", "bitrate_kbps"] {
        assert!(v["video"].get(key).is_some(), "video.{key} in {v}");
    }
    assert!(v.get("audio").is_some());
    assert_eq!(v["viewers"]["max"], 3);
    assert_eq!(v["viewers"]["count"], 0);
    assert!(v["viewers"]["list"].as_array().unwrap().is_empty());
    assert!(v["system"].is_null(), "no system.json yet: {v}");

    // What init writes shows up as it is.
    let system = serde_json::json!({
        "version": "0.1.0", "tunnel": "up", "leds": "streaming",
        "clock": {"synced": true, "source": "ntp", "unix_s": 1}, "temperature_c": 48.5,
        "services": [{"name": "cloudflared", "state": "healthy", "restarts": 0}]
    });
    std::fs::write(s.run_dir.join("system.json"), system.to_string()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&s.get("/api/status").body).unwrap();
    assert_eq!(v["system"], system);

    // serve.json appears in the run folder and is kept fresh.
    let path = s.run_dir.join("serve.json");
    let first = wait_for_file(&path);
    let state: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(
        ["playing", "starting", "stopped"].contains(&state["pipeline"].as_str().unwrap()),
        "{state}"
    );
    assert!(state["viewers"].as_array().is_some());
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let after = std::fs::metadata(&path).unwrap().modified().unwrap();
    assert!(after > before, "serve.json rewritten within a few seconds");
    let leftovers: Vec<_> = std::fs::read_dir(&s.run_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn wait_for_file(path: &std::path::Path) -> String {
    for _ in 0..50 {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} never written", path.display());
}

#[test]
fn password_guards_page_whep_and_status_but_not_healthz() {
    require_loopback_only();
    let password = "Owl night 42!";
    let s = Server::start(&config(&format!("password = \"{password}\""), ""));
    let p = s.port;

    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("type=\"password\""),
        "a password form: {}",
        page.body
    );
    assert!(!page.body.contains("viewer.js"), "not the viewer");

    let r = s.get("/api/status");
    assert_eq!(r.status, 401, "{r:?}");
    let r = request(p, "POST", "/whep", &[SDP], b"v=0\r\n");
    assert_eq!(r.status, 401, "{r:?}");
    let r = request(p, "DELETE", "/whep/abc", &[], b"");
    assert_eq!(r.status, 401, "{r:?}");
    let h = s.get("/healthz");
    assert!(
        h.status == 200 || h.status == 503,
        "healthz needs no password: {h:?}"
    );

    let bearer = format!("Bearer {password}");
    let r = request(p, "GET", "/api/status", &[("Authorization", &bearer)], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(
        p,
        "GET",
        "/api/status",
        &[("Authorization", "Bearer owl night 42!")],
        b"",
    );
    assert_eq!(r.status, 401, "case matters: {r:?}");

    // The form: a wrong password, then the right one, gives a cookie that
    // is not the password and opens the viewer, status and WHEP.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request(p, "POST", "/login", &form, b"password=nope");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("Wrong password"));
    assert!(r.header("set-cookie").is_none());
    let r = request(p, "POST", "/login", &form, b"password=Owl+night+42%21");
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/"));
    let cookie = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Owl"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = [("Cookie", pair.as_str())];
    let r = request(p, "GET", "/", &with_cookie, b"");
    assert!(
        r.body.contains("viewer.js"),
        "the viewer with the cookie: {r:?}"
    );
    let r = request(p, "GET", "/api/status", &with_cookie, b"");
    assert_eq!(r.status, 200, "{r:?}");
    let r = request(p, "POST", "/whep", &[SDP, with_cookie[0]], b"{}");
    assert_eq!(r.status, 400, "past the password, on to the offer: {r:?}");
    let r = request(
        p,
        "GET",
        "/api/status",
        &[("Cookie", "babymon_session=00ff")],
        b"",
    );
    assert_eq!(r.status, 401, "a made-up cookie: {r:?}");

    // Guessing is held back, for Bearer and the form alike.
    let mut codes = Vec::new();
    for i in 0..6 {
        let wrong = format!("Bearer guess{i}");
        let r = request(p, "GET", "/api/status", &[("Authorization", &wrong)], b"");
        codes.push(r.status);
        if r.status == 429 {
            assert!(r.header("retry-after").is_some(), "{r:?}");
        }
    }
    assert!(
        codes.contains(&429),
        "wrong passwords rate-limited: {codes:?}"
    );
    let r = request(p, "POST", "/login", &form, b"password=Owl+night+42%21");
    assert_eq!(r.status, 429, "even the right one waits its turn: {r:?}");
    let r = request(p, "GET", "/api/status", &with_cookie, b"");
    assert_eq!(r.status, 200, "a viewer already logged in is not held back");

    let log = s.log_text();
    assert!(
        !log.contains(password) && !log.contains("Owl"),
        "password in the log: {log}"
    );
    assert!(log.contains("viewer password set"), "{log}");
}

#[test]
fn bad_password_in_config_refuses_to_start() {
    require_loopback_only();
    let dir = common::temp_dir("badpw");
    let path = dir.join("babymon.toml");
    std::fs::write(&path, config("password = \"ab\"", "")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_babymon"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert!(!log.contains("listening on"), "{log}");
    assert!(log.contains("viewer.password"), "names the key: {log}");
    assert!(log.contains("refusing"), "{log}");
    assert!(!log.contains("\"ab\""), "{log}");

    // An unreadable file could hold a password too.
    std::fs::write(&path, "[viewer\npassword = \"long enough\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_babymon"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("long enough"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_stops_cleanly_and_marks_the_pipeline_stopped() {
    require_loopback_only();
    let mut s = Server::start(&config("", ""));
    wait_for_file(&s.run_dir.join("serve.json"));
    let status = s.stop(Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}: {}", s.log_text());
    std::thread::sleep(Duration::from_millis(100));
    let log = s.log_text();
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.run_dir.join("serve.json")).unwrap())
            .unwrap();
    assert_eq!(state["pipeline"], "stopped", "{state}");
}
