//! WHEP over HTTP: `POST /whep` with an SDP offer, then `PATCH` (late ICE
//! candidates) and `DELETE` on the session URL it returns. This file maps
//! requests and media errors to status codes; the SDP itself is checked
//! and answered by [`crate::serve::media`].

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{App, plain};
use crate::serve::media::{Media, OfferError, SessionError};

/// The largest offer or candidate fragment accepted.
pub const MAX_BODY: usize = 64 * 1024;
pub const SDP: &str = "application/sdp";
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// Seconds a refused viewer should wait before trying again.
const RETRY_FULL_S: u32 = 5;
const RETRY_NOT_READY_S: u32 = 2;

pub async fn offer(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let text = match body_of(&headers, SDP, body) {
        Ok(text) => text,
        Err((status, reason)) => return plain(status, &reason),
    };
    if let Err(reason) = looks_like_sdp(&text) {
        return offer_refused(&OfferError::NotSdp(reason));
    }
    let media = match app.media() {
        Ok(media) => media,
        Err(reason) => return offer_refused(&OfferError::NotReady(reason)),
    };
    let result = media.answer(text).await;
    app.changed.notify_one();
    match result {
        Ok(answer) => {
            log::info!("whep: session {} started", answer.id);
            let location = format!("/whep/{}", answer.id);
            let mut response = (StatusCode::CREATED, answer.sdp).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            match HeaderValue::from_str(&location) {
                Ok(v) => {
                    h.insert(header::LOCATION, v);
                    response
                }
                Err(_) => {
                    media.end(&answer.id).await.ok();
                    offer_refused(&OfferError::Internal {
                        id: answer.id,
                        reason: "the session id does not fit in a URL".into(),
                    })
                }
            }
        }
        Err(e) => offer_refused(&e),
    }
}

pub async fn end(State(app): State<App>, Path(id): Path<String>) -> Response {
    let Some(media) = session_media(&app, &id) else {
        return plain(
            StatusCode::NOT_FOUND,
            &format!("session {id}: no such session"),
        );
    };
    let result = media.end(&id).await;
    app.changed.notify_one();
    match result {
        Ok(()) => {
            log::info!("whep: session {id} ended by the viewer");
            plain(StatusCode::OK, "ended")
        }
        Err(e) => session_refused(&e),
    }
}

pub async fn candidates(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let text = match body_of(&headers, SDPFRAG, body) {
        Ok(text) => text,
        Err((status, reason)) => return plain(status, &reason),
    };
    let Some(media) = session_media(&app, &id) else {
        return plain(
            StatusCode::NOT_FOUND,
            &format!("session {id}: no such session"),
        );
    };
    match media.add_candidates(&id, text).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => session_refused(&e),
    }
}

/// The media side for a request on session `id`; none when the id cannot
/// name a session or nothing is running (both answer 404).
fn session_media(app: &App, id: &str) -> Option<Media> {
    app.media().ok().filter(|_| valid_id(id))
}

/// The body as text, or the response refusing it: 415 for another type,
/// 413 over [`MAX_BODY`], 400 when it is not UTF-8.
fn body_of(
    headers: &HeaderMap,
    wanted: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, (StatusCode, String)> {
    if !has_type(headers, wanted) {
        let got = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be {wanted}, not {got}"),
        ));
    }
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} KiB", MAX_BODY / 1024),
            )
        } else {
            (rejection.status(), rejection.body_text())
        }
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!(
                "the body is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// True when the `Content-Type` is `wanted`, parameters and case aside.
pub fn has_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(wanted))
}

/// A cheap first look, so that junk never reaches GStreamer: an SDP body
/// starts with its version line. The media side checks the rest.
fn looks_like_sdp(text: &str) -> Result<(), String> {
    if text.trim_start().starts_with("v=0") {
        Ok(())
    } else {
        Err("the body does not start with \"v=0\"".into())
    }
}

/// Session ids come from the media side; anything else in the path cannot
/// name one.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The status, `Retry-After` seconds and body for a refused offer.
pub fn offer_status(e: &OfferError) -> (StatusCode, Option<u32>) {
    match e {
        OfferError::NotSdp(_)
        | OfferError::NoH264
        | OfferError::NoOpus
        | OfferError::WantsToSend(_) => (StatusCode::BAD_REQUEST, None),
        OfferError::Full { .. } => (StatusCode::SERVICE_UNAVAILABLE, Some(RETRY_FULL_S)),
        OfferError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, Some(RETRY_NOT_READY_S)),
        OfferError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}

fn offer_refused(e: &OfferError) -> Response {
    let (status, retry) = offer_status(e);
    if status.is_server_error() && retry.is_none() {
        log::error!("whep: {e}");
    } else {
        log::info!("whep: offer refused: {e}");
    }
    let mut response = plain(status, &e.to_string());
    if let Some(secs) = retry {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn session_refused(e: &SessionError) -> Response {
    let status = match e {
        SessionError::NotFound(_) => StatusCode::NOT_FOUND,
        SessionError::BadCandidate { .. } => StatusCode::BAD_REQUEST,
        SessionError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    plain(status, &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_errors_map_to_design_codes() {
        let cases = [
            (OfferError::NotSdp("x".into()), 400, None),
            (OfferError::NoH264, 400, None),
            (OfferError::NoOpus, 400, None),
            (OfferError::WantsToSend("video".into()), 400, None),
            (OfferError::Full { max: 2 }, 503, Some(RETRY_FULL_S)),
            (
                OfferError::NotReady("x".into()),
                503,
                Some(RETRY_NOT_READY_S),
            ),
            (
                OfferError::Internal {
                    id: "a".into(),
                    reason: "b".into(),
                },
                500,
                None,
            ),
        ];
        for (e, code, retry) in cases {
            assert_eq!(
                offer_status(&e),
                (StatusCode::from_u16(code).unwrap(), retry),
                "{e}"
            );
        }
    }

    #[test]
    fn session_errors_map_to_codes() {
        let (id, reason) = (String::from("a"), String::from("b"));
        let cases = [
            (SessionError::NotFound(id.clone()), 404),
            (
                SessionError::BadCandidate {
                    id: id.clone(),
                    reason: reason.clone(),
                },
                400,
            ),
            (SessionError::Internal { id, reason }, 500),
        ];
        for (e, code) in cases {
            assert_eq!(session_refused(&e).status().as_u16(), code, "{e}");
        }
    }

    #[test]
    fn content_type_ignores_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert!(!has_type(&h, SDP));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/SDP; charset=utf-8"),
        );
        assert!(has_type(&h, SDP));
        assert!(!has_type(&h, SDPFRAG));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/sdpx"),
        );
        assert!(!has_type(&h, SDP));
    }

    #[test]
    fn ids_and_sdp_shape() {
        assert!(valid_id("a1B2-c_3"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(""));
        assert!(looks_like_sdp("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n").is_ok());
        assert!(looks_like_sdp("{\"sdp\": 1}").is_err());
    }
}
