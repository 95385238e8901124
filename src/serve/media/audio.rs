//! Finding the microphone: ALSA capture devices from `/proc/asound/pcm`
//! (parsed by a pure function), and the audio source that follows from the
//! config and what was found.

use super::AudioInfo;

/// Where sound comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSource {
    /// An ALSA device name for `alsasrc device=`.
    Alsa(String),
    /// A quiet test tone.
    Test,
    Off,
}

impl AudioSource {
    pub fn info(&self) -> AudioInfo {
        match self {
            AudioSource::Alsa(d) => AudioInfo {
                kind: "alsa".into(),
                device: Some(d.clone()),
            },
            AudioSource::Test => AudioInfo {
                kind: "test".into(),
                device: None,
            },
            AudioSource::Off => AudioInfo {
                kind: "off".into(),
                device: None,
            },
        }
    }
}

/// The capture devices listed in a `/proc/asound/pcm` text, as ALSA names
/// that convert rate and format on the way (`plughw:CARD,DEVICE`).
pub fn capture_devices(pcm: &str) -> Vec<String> {
    pcm.lines()
        .filter(|line| line.split(" : ").any(|f| f.trim().starts_with("capture")))
        .filter_map(|line| {
            let (card, device) = line.split(':').next()?.split_once('-')?;
            let card: u32 = card.trim().parse().ok()?;
            let device: u32 = device.trim().parse().ok()?;
            Some(format!("plughw:{card},{device}"))
        })
        .collect()
}

/// Decides the audio source: off when `enabled` is false, the configured
/// device when one is named, else the first capture device, else the test
/// tone; `alsasrc` must exist for ALSA.
pub fn choose(enabled: bool, device: &str, found: &[String], alsasrc: bool) -> AudioSource {
    if !enabled {
        return AudioSource::Off;
    }
    if !alsasrc {
        return AudioSource::Test;
    }
    if !device.is_empty() {
        return AudioSource::Alsa(device.to_string());
    }
    found
        .first()
        .map_or(AudioSource::Test, |d| AudioSource::Alsa(d.clone()))
}

/// Reads `/proc/asound/pcm`; none when ALSA is absent.
pub fn scan() -> Vec<String> {
    std::fs::read_to_string("/proc/asound/pcm")
        .map(|t| capture_devices(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PCM: &str = "\
00-00: HDMI 0 : HDMI 0 : playback 1
00-03: ALC257 Analog : ALC257 Analog : playback 1 : capture 1
01-00: USB Audio : USB Audio : capture 1
02-01: Loopback PCM : Loopback PCM : playback 8 : capture 8
";

    #[test]
    fn capture_devices_are_listed() {
        assert_eq!(
            capture_devices(PCM),
            ["plughw:0,3", "plughw:1,0", "plughw:2,1"].map(String::from)
        );
        assert!(capture_devices("").is_empty());
        assert!(capture_devices("garbage : capture 1\n").is_empty());
    }

    #[test]
    fn choice() {
        let found = capture_devices(PCM);
        assert_eq!(choose(false, "", &found, true), AudioSource::Off);
        assert_eq!(
            choose(true, "", &found, true),
            AudioSource::Alsa("plughw:0,3".into())
        );
        assert_eq!(
            choose(true, "hw:5", &found, true),
            AudioSource::Alsa("hw:5".into())
        );
        assert_eq!(choose(true, "", &[], true), AudioSource::Test);
        assert_eq!(choose(true, "", &found, false), AudioSource::Test);
        assert_eq!(choose(true, "", &[], true).info().kind, "test");
    }
}
