//! Slows down password guessing: after a few wrong passwords from one
//! address, every further try must wait a delay that doubles up to a cap.
//! A pure state machine fed with the time; [`super::auth`] owns one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong passwords allowed before the delays start.
const FREE_TRIES: u32 = 3;
/// The longest wait between two tries.
const MAX_DELAY: Duration = Duration::from_secs(60);
/// An address that has not failed for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most; the stalest is forgotten first. Through
/// the tunnel every viewer arrives from this device's own address, so in
/// practice the limit is shared.
const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

#[derive(Debug, Default)]
pub struct Limiter {
    entries: HashMap<IpAddr, Entry>,
}

impl Limiter {
    /// `Err(wait)` while `ip` must not try a password.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.entries.get(&ip) {
            Some(e) if e.blocked_until > now => Err(e.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a wrong password from `ip`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        self.forget_stale(now);
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&ip) {
            let stalest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(ip, _)| *ip);
            if let Some(stalest) = stalest {
                self.entries.remove(&stalest);
            }
        }
        let e = self.entries.entry(ip).or_insert(Entry {
            failures: 0,
            last_failure: now,
            blocked_until: now,
        });
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures >= FREE_TRIES {
            let doublings = (e.failures - FREE_TRIES).min(6);
            let delay = Duration::from_secs(1u64 << doublings).min(MAX_DELAY);
            e.blocked_until = now + delay;
        }
    }

    /// Records a right password from `ip`: its count starts afresh.
    pub fn succeeded(&mut self, ip: IpAddr) {
        self.entries.remove(&ip);
    }

    fn forget_stale(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.duration_since(e.last_failure) < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, last])
    }

    #[test]
    fn a_few_mistakes_are_free() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for _ in 0..FREE_TRIES - 1 {
            l.failed(ip(1), t);
            assert_eq!(l.check(ip(1), t), Ok(()));
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut l = Limiter::default();
        let mut t = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..12 {
            l.failed(ip(1), t);
            let wait = l.check(ip(1), t).err().unwrap_or_default();
            waits.push(wait.as_secs());
            t += wait;
            assert_eq!(
                l.check(ip(1), t),
                Ok(()),
                "free again once the wait is over"
            );
        }
        assert_eq!(&waits[..9], &[0, 0, 1, 2, 4, 8, 16, 32, 60]);
        assert!(waits[9..].iter().all(|w| *w == 60));
    }

    #[test]
    fn other_addresses_and_success_are_not_held_back() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for _ in 0..5 {
            l.failed(ip(1), t);
        }
        assert!(l.check(ip(1), t).is_err());
        assert_eq!(l.check(ip(2), t), Ok(()));
        l.succeeded(ip(1));
        assert_eq!(l.check(ip(1), t), Ok(()));
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for _ in 0..FREE_TRIES {
            l.failed(ip(1), t);
        }
        let later = t + FORGET_AFTER + Duration::from_secs(1);
        l.failed(ip(1), later);
        assert_eq!(l.check(ip(1), later), Ok(()), "counted as a first failure");
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = Limiter::default();
        let t = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 50) {
            l.failed(
                IpAddr::from(i.to_be_bytes()),
                t + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(l.entries.len(), MAX_ENTRIES);
    }
}
