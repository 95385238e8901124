//! The viewer page and its password form. The HTML, CSS and JavaScript in
//! `assets/` are built into the binary as they are: no build step.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Form;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::App;
use super::auth::{self, LoginError, Verdict};

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const SCRIPT: &str = include_str!("assets/viewer.js");
const STYLE: &str = include_str!("assets/viewer.css");

/// No inline code, nothing from elsewhere, never inside a frame.
const CSP: &str = "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `GET /`: the viewer, or the password form when a password is set and
/// the request has no valid session cookie.
pub async fn index(State(app): State<App>, request: Request) -> Response {
    let ip = auth::peer_ip(&request);
    match app.auth.check(request.headers(), ip, Instant::now()) {
        Verdict::Open | Verdict::Allowed => html(StatusCode::OK, INDEX.to_string()),
        _ => login_page(StatusCode::OK, ""),
    }
}

#[derive(Deserialize)]
pub struct Login {
    password: String,
}

/// `POST /login` from the form: a session cookie and back to the viewer,
/// or the form again with what went wrong.
pub async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<Login>,
) -> Response {
    let ip = peer.ip();
    match app.auth.login(&form.password, ip, Instant::now()) {
        Ok(token) => {
            log::info!("auth: {ip} logged in");
            let mut response = StatusCode::SEE_OTHER.into_response();
            let h = response.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            if let Ok(cookie) = HeaderValue::from_str(&auth::set_cookie(&token)) {
                h.insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(LoginError::Wrong) => {
            log::warn!("auth: wrong password from {ip}");
            login_page(StatusCode::UNAUTHORIZED, "Wrong password.")
        }
        Err(LoginError::Limited(wait)) => {
            let mut response = login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many tries. Wait {} s.", wait.as_secs().max(1)),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            response
        }
        Err(e @ LoginError::Random(_)) => {
            log::error!("auth: {e}");
            login_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The monitor could not make a session.",
            )
        }
    }
}

pub async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    (headers, body).into_response()
}

fn login_page(status: StatusCode, message: &str) -> Response {
    // The messages are this file's own words, so need no escaping.
    html(status, LOGIN.replace("{{message}}", message))
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
