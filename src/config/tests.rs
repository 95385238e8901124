use super::*;

fn problems(text: &str) -> Vec<String> {
    parse(text).problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn empty_file_gives_defaults() {
    let loaded = parse("");
    assert!(loaded.problems.is_empty());
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn values_are_applied() {
    let loaded = parse(
        "[camera]\nwidth = 640\nheight = 360\nsource = \"test\"\n\
         [viewer]\nice_ports = \"50000-50009\"\nice_addresses = [\"127.0.0.1\"]\n",
    );
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let c = loaded.config;
    assert_eq!((c.camera.width, c.camera.height), (640, 360));
    assert_eq!(c.camera.source, Source::Test);
    assert_eq!(c.viewer.ice_ports, Some((50000, 50009)));
    assert_eq!(
        c.viewer.ice_addresses,
        vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
    );
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "[camera]\nwidth = 641\nrotation = 45\n\n[viewer]\nport = \"x\"\nbogus = 1\n";
    let got = problems(text);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[0].starts_with("line 2: camera.width: 641 is odd"),
        "{got:?}"
    );
    assert!(got[1].starts_with("line 3: camera.rotation: 45 is not a rotation"));
    assert!(got[2].starts_with("line 6: viewer.port: a string is not"));
    assert!(got[3].starts_with("line 7: viewer.bogus: unknown key"));
}

#[test]
fn a_bad_value_keeps_its_default() {
    let loaded = parse("[camera]\nframerate = 500\n");
    assert_eq!(loaded.config.camera.framerate, 30);
    assert_eq!(loaded.problems[0].line, 2);
}

#[test]
fn syntax_error_names_the_line_and_marks_the_file_unreadable() {
    let loaded = parse("[camera]\nwidth = 640\nheight = \n");
    assert!(loaded.unreadable);
    assert_eq!(loaded.problems[0].line, 3, "{:?}", loaded.problems);
    assert!(loaded.guard_failed("viewer"));
}

#[test]
fn key_outside_a_section_is_explained() {
    let got = problems("port = 8080\n");
    assert!(got[0].contains("outside any section"), "{got:?}");
    assert!(got[0].starts_with("line 1"), "{got:?}");
}

#[test]
fn unknown_section_is_flagged_as_unknown() {
    let loaded = parse("[camra]\nwidth = 640\n");
    assert_eq!(loaded.problems[0].severity, Severity::Unknown);
    assert_eq!(loaded.problems[0].key, "camra");
    assert_eq!(loaded.errors().count(), 0);
}

#[test]
fn a_bad_password_fails_its_guard_without_leaking() {
    let loaded = parse("[viewer]\npassword = \"abc\"\n");
    assert!(loaded.guard_failed("viewer"));
    assert!(!loaded.guard_failed("tunnel"));
    assert!(!format!("{:?}", loaded).contains("abc"));
    let good = parse("[viewer]\npassword = \"hunter22\"\n");
    assert!(!good.guard_failed("viewer"));
    assert_eq!(format!("{:?}", good.config.viewer.password), "set");
    assert_eq!(
        serde_json::to_value(&good.config.viewer).unwrap()["password"],
        "set"
    );
}

#[test]
fn tunnel_token_and_credentials_exclude_each_other() {
    let got = problems("[tunnel]\ntoken = \"eyJ\"\ncredentials_file = \"t.json\"\n");
    assert!(got.iter().any(|p| p.contains("not both")), "{got:?}");
    assert!(got.iter().any(|p| p.contains("go together")), "{got:?}");
    assert!(parse("[tunnel]\ntoken = \"eyJ\"\n").config.tunnel.is_set());
}

#[test]
fn leds_need_distinct_pins() {
    let got = problems("[leds]\nred = 17\ngreen = 17\n");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("line 3: leds.green: GPIO 17"), "{got:?}");
}

#[test]
fn port_ranges() {
    assert!(problems("[viewer]\nice_ports = \"50009-50000\"\n")[0].contains("not a port range"));
    assert!(problems("[viewer]\nice_ports = \"5000\"\n")[0].contains("not a port range"));
    assert!(problems("[viewer]\nice_addresses = [\"::1\", \"x\"]\n")[0].contains("\"x\""));
}

#[test]
fn not_utf8_is_reported() {
    let dir = std::env::temp_dir().join(format!("babymon-cfg-{}", std::process::id()));
    std::fs::write(&dir, b"[camera]\nwidth = \xff\n").unwrap();
    let loaded = load(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert!(loaded.unreadable);
    assert_eq!(loaded.problems[0].line, 2);
}

mod fuzz {
    use super::super::parse;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_config_like_text(
            lines in proptest::collection::vec(
                "(\\[(camera|viewer|leds|tunnel|wifi|system|x)\\]|[a-z_]{1,12} ?= ?(-?[0-9]{1,12}|\"[^\"\\n]{0,20}\"|true|\\[\"[^\"]{0,8}\"\\]|\\{\\}|[0-9:.-]{1,12}))",
                0..20,
            )
        ) {
            let _ = parse(&lines.join("\n"));
        }
    }
}
