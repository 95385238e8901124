//! No config file, however broken, panics init's handling of it: parsing,
//! the problem lines for the console and status, the service plan and the
//! LED decision.

use proptest::prelude::*;

use super::{leds, services, status};
use crate::config;

fn handle(text: &str) {
    let loaded = config::parse(text);
    let lines = status::config_lines(&loaded);
    assert_eq!(lines.len(), loaded.problems.len());
    let machine = services::Machine {
        ethernet: vec!["eth0".into()],
        wireless: vec!["wlan0".into()],
        ..Default::default()
    };
    let plan = services::plan(&loaded, &machine);
    assert!(plan.iter().any(|s| s.name == "serve"));
    if loaded.guard_failed("tunnel") {
        assert!(plan.iter().all(|s| s.name != "cloudflared"));
    }
    if loaded.config.wifi.is_set() {
        let _ = services::wpa_conf(&loaded.config);
    }
    let inputs = leds::Inputs {
        config_error: loaded.errors().next().is_some(),
        ..Default::default()
    };
    let _ = leds::pattern(leds::state(&inputs), loaded.config.leds.enabled);
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("hostname".to_string()),
        Just("serial_shell".to_string()),
        Just("modules".to_string()),
        Just("ssid".to_string()),
        Just("password".to_string()),
        Just("token".to_string()),
        Just("credentials_file".to_string()),
        Just("port".to_string()),
        Just("red".to_string()),
        "[a-z_]{1,8}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "\"[^\"\\\\\n]{0,20}\"",
        Just("[]".to_string()),
        Just("[\"vivid\", 3]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("nan".to_string()),
    ]
}

fn section() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("system"),
        Just("wifi"),
        Just("tunnel"),
        Just("camera"),
        Just("audio"),
        Just("viewer"),
        Just("leds"),
        Just("other"),
    ]
    .prop_map(String::from)
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        handle(&text);
    }

    #[test]
    fn toml_shaped_text_never_panics(
        entries in prop::collection::vec((section(), key(), value()), 0..12)
    ) {
        let mut text = String::new();
        for (s, k, v) in entries {
            text.push_str(&format!("[{s}]\n{k} = {v}\n"));
        }
        handle(&text);
    }
}
