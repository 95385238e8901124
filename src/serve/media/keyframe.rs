//! Rate limiting of key-frame requests. Every viewer shares one encoder, so
//! a key frame asked by one lossy viewer costs all of them bandwidth: PLI and
//! FIR from viewers pass at most once per interval; a viewer joining always
//! gets its key frame, which also restarts the interval.

use std::time::{Duration, Instant};

/// The shortest time between two key frames asked by viewers.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1500);

#[derive(Debug)]
pub struct KeyFrameLimiter {
    interval: Duration,
    last: Option<Instant>,
    dropped: u64,
}

impl KeyFrameLimiter {
    pub fn new(interval: Duration) -> Self {
        KeyFrameLimiter {
            interval,
            last: None,
            dropped: 0,
        }
    }

    /// A viewer asked for a key frame at `now`: true when it may go to the
    /// encoder.
    pub fn request(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.dropped += 1;
                false
            }
            _ => {
                self.last = Some(now);
                true
            }
        }
    }

    /// A key frame was forced (a viewer joined) at `now`.
    pub fn forced(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// How many requests were held back so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_pass_once_per_interval() {
        let t0 = Instant::now();
        let mut l = KeyFrameLimiter::new(Duration::from_secs(1));
        assert!(l.request(t0));
        assert!(!l.request(t0 + Duration::from_millis(10)));
        assert!(!l.request(t0 + Duration::from_millis(999)));
        assert!(l.request(t0 + Duration::from_millis(1000)));
        assert!(!l.request(t0 + Duration::from_millis(1500)));
        assert!(l.request(t0 + Duration::from_millis(2100)));
        assert_eq!(l.dropped(), 3);
    }

    #[test]
    fn a_forced_key_frame_restarts_the_interval() {
        let t0 = Instant::now();
        let mut l = KeyFrameLimiter::new(Duration::from_secs(1));
        l.forced(t0);
        assert!(!l.request(t0 + Duration::from_millis(500)));
        assert!(l.request(t0 + Duration::from_millis(1200)));
    }

    #[test]
    fn a_clock_going_backwards_does_not_open_the_gate() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut l = KeyFrameLimiter::new(Duration::from_secs(1));
        assert!(l.request(t0));
        assert!(!l.request(t0 - Duration::from_secs(5)));
    }
}
