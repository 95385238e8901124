//! The viewer password: the session cookies handed out by the login form,
//! `Authorization: Bearer` for scripts, constant-time comparison and the
//! limit on wrong guesses. The password itself is never logged or stored
//! anywhere but in the config it came from.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use super::limiter::Limiter;
use super::{App, plain};
use babymon::config::Secret;

pub const COOKIE: &str = "babymon_session";
/// How long a login lasts, in the cookie and on the server.
const SESSION_LIFE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Logins remembered at most; the oldest is dropped first.
const MAX_SESSIONS: usize = 32;

/// What a request proved about the password.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No password is set: anyone on the network can watch.
    Open,
    Allowed,
    /// Neither a valid cookie nor a Bearer password came with it.
    Missing,
    Wrong,
    /// Too many wrong passwords from this address; try again after this.
    Limited(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong password")]
    Wrong,
    #[error("too many wrong passwords; wait {} s", .0.as_secs().max(1))]
    Limited(Duration),
    #[error("/dev/urandom: {0}")]
    Random(std::io::Error),
}

pub struct Auth {
    password: Secret,
    /// Session tokens with their expiry, oldest first.
    sessions: Mutex<Vec<(String, Instant)>>,
    limiter: Mutex<Limiter>,
}

impl Auth {
    pub fn new(password: Secret) -> Auth {
        Auth {
            password,
            sessions: Mutex::new(Vec::new()),
            limiter: Mutex::new(Limiter::default()),
        }
    }

    pub fn is_open(&self) -> bool {
        !self.password.is_set()
    }

    /// Judges a request by its cookie, then by its Bearer password.
    pub fn check(&self, headers: &HeaderMap, ip: IpAddr, now: Instant) -> Verdict {
        if self.is_open() {
            return Verdict::Open;
        }
        if let Some(token) = cookie(headers, COOKIE)
            && self.session_valid(token, now)
        {
            return Verdict::Allowed;
        }
        let Some(given) = bearer(headers) else {
            return Verdict::Missing;
        };
        match self.try_password(given, ip, now) {
            Ok(()) => Verdict::Allowed,
            Err(LoginError::Limited(wait)) => Verdict::Limited(wait),
            Err(_) => Verdict::Wrong,
        }
    }

    /// Checks a password from the login form and, when right, returns a
    /// new session token for the cookie.
    pub fn login(&self, given: &str, ip: IpAddr, now: Instant) -> Result<String, LoginError> {
        self.try_password(given, ip, now)?;
        let token = random_token().map_err(LoginError::Random)?;
        let mut sessions = lock(&self.sessions);
        sessions.retain(|(_, expiry)| *expiry > now);
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push((token.clone(), now + SESSION_LIFE));
        Ok(token)
    }

    pub fn session_valid(&self, token: &str, now: Instant) -> bool {
        let sessions = lock(&self.sessions);
        let mut found = Choice::from(0);
        for (known, expiry) in sessions.iter() {
            found |= eq_constant_time(known, token) & Choice::from(u8::from(*expiry > now));
        }
        found.into()
    }

    fn try_password(&self, given: &str, ip: IpAddr, now: Instant) -> Result<(), LoginError> {
        let mut limiter = lock(&self.limiter);
        limiter.check(ip, now).map_err(LoginError::Limited)?;
        if bool::from(eq_constant_time(self.password.expose(), given)) {
            limiter.succeeded(ip);
            Ok(())
        } else {
            limiter.failed(ip, now);
            Err(LoginError::Wrong)
        }
    }
}

/// The `Set-Cookie` value for a new session.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFE.as_secs()
    )
}

/// Compares two strings in time that depends only on the longer length,
/// not on where they differ (nor, beyond that, on the secret's length).
pub fn eq_constant_time(a: &str, b: &str) -> Choice {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len().max(b.len()).max(1);
    let mut same = (a.len() as u64).ct_eq(&(b.len() as u64));
    for i in 0..n {
        let x = if a.is_empty() { 0 } else { a[i % a.len()] };
        let y = if b.is_empty() { 0 } else { b[i % b.len()] };
        same &= x.ct_eq(&y);
    }
    same
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding this lock leaves plain data behind,
    // still usable; refusing every viewer after it would help no one.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Middleware for WHEP and `/api/status`: 401 without the password, 429
/// while guessing is held back.
pub async fn require(State(app): State<App>, request: Request, next: Next) -> Response {
    let ip = peer_ip(&request);
    match app.auth.check(request.headers(), ip, Instant::now()) {
        Verdict::Open | Verdict::Allowed => next.run(request).await,
        Verdict::Missing => unauthorized(
            "this monitor has a password; log in on the page or send Authorization: Bearer",
        ),
        Verdict::Wrong => {
            log::warn!("auth: wrong password from {ip}");
            unauthorized("wrong password")
        }
        Verdict::Limited(wait) => limited(wait),
    }
}

pub fn peer_ip(request: &Request) -> IpAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn unauthorized(reason: &str) -> Response {
    let mut response = plain(StatusCode::UNAUTHORIZED, reason);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"babymon\""),
    );
    response
}

pub fn limited(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut response = plain(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("too many wrong passwords; try again in {secs} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn constant_time_equality_is_equality() {
        for (a, b, same) in [
            ("hunter22", "hunter22", true),
            ("hunter22", "hunter23", false),
            ("hunter22", "hunter2", false),
            ("hunter2", "hunter2hunter2", false),
            ("", "", true),
            ("", "x", false),
            ("abab", "ab", false),
        ] {
            assert_eq!(bool::from(eq_constant_time(a, b)), same, "{a:?} {b:?}");
        }
    }

    #[test]
    fn without_a_password_everything_is_open() {
        let auth = Auth::new(Secret::default());
        assert_eq!(
            auth.check(&HeaderMap::new(), IP, Instant::now()),
            Verdict::Open
        );
    }

    #[test]
    fn bearer_and_cookie() {
        let auth = Auth::new(Secret::new("s3cret pw".into()));
        let now = Instant::now();
        assert_eq!(auth.check(&HeaderMap::new(), IP, now), Verdict::Missing);
        let h = headers(&[("authorization", "Bearer s3cret pw")]);
        assert_eq!(auth.check(&h, IP, now), Verdict::Allowed);
        let h = headers(&[("authorization", "bearer nope")]);
        assert_eq!(auth.check(&h, IP, now), Verdict::Wrong);

        let token = auth.login("s3cret pw", IP, now).unwrap();
        assert_ne!(token, "s3cret pw");
        assert_eq!(token.len(), 48);
        let h = headers(&[("cookie", &format!("a=b; {COOKIE}={token}"))]);
        assert_eq!(auth.check(&h, IP, now), Verdict::Allowed);
        let h = headers(&[("cookie", &format!("{COOKIE}=0{}", &token[1..]))]);
        assert_eq!(auth.check(&h, IP, now), Verdict::Missing);
        let h = headers(&[("cookie", &format!("{COOKIE}={token}"))]);
        assert_eq!(
            auth.check(&h, IP, now + SESSION_LIFE + Duration::from_secs(1)),
            Verdict::Missing,
            "expired"
        );
    }

    #[test]
    fn guessing_is_held_back_even_for_the_right_password() {
        let auth = Auth::new(Secret::new("right one".into()));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(matches!(
                auth.login("wrong", IP, now),
                Err(LoginError::Wrong)
            ));
        }
        assert!(matches!(
            auth.login("right one", IP, now),
            Err(LoginError::Limited(_))
        ));
        let h = headers(&[("authorization", "Bearer right one")]);
        assert!(matches!(auth.check(&h, IP, now), Verdict::Limited(_)));
        let later = now + Duration::from_secs(2);
        assert!(auth.login("right one", IP, later).is_ok());
    }

    #[test]
    fn sessions_are_bounded() {
        let auth = Auth::new(Secret::new("pass".into()));
        let now = Instant::now();
        let first = auth.login("pass", IP, now).unwrap();
        for _ in 0..MAX_SESSIONS {
            auth.login("pass", IP, now).unwrap();
        }
        assert!(!auth.session_valid(&first, now));
        assert_eq!(lock(&auth.sessions).len(), MAX_SESSIONS);
    }
}
