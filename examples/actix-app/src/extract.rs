//! `Form` and `Query` extractors that refuse bad input the way the contract says: with
//! axum's statuses and texts (see "Bad form input" in `messages_example_shared`).
//!
//! actix-web's own `web::Form` and `web::Query` work with messages just as well; they
//! answer bad input with other statuses and texts (a wrong content type is a `400`
//! there, a `415` in the contract), and `web::Form` stops at 16 KiB. These decode the
//! same way as axum (`serde_urlencoded`, the failing field named by
//! `serde_path_to_error`), so the two example apps keep one contract.
//!
//! They also read a refused body to its end (up to [`DRAIN_LIMIT`]), as does [`Ignored`]
//! for a route that takes no body: actix-web answers a request whose body was left
//! unread with `connection: close`, where hyper (under axum) keeps the connection.

use std::fmt;
use std::future::{Future, Ready, poll_fn, ready};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use futures_core::Stream;
use messages_example_shared::{MAX_FORM_BYTES, TEXT_CONTENT_TYPE};
use serde::de::DeserializeOwned;

/// Most bytes of a body read only to be dropped; past it the connection is closed.
pub(crate) const DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// A form body (`application/x-www-form-urlencoded`) of at most
/// [`MAX_FORM_BYTES`], for `POST` routes.
#[derive(Debug)]
pub(crate) struct Form<T>(pub(crate) T);

/// The query string, decoded.
#[derive(Debug)]
pub(crate) struct Query<T>(pub(crate) T);

/// Bad input, answered with a status and a `text/plain` reason.
#[derive(Debug)]
pub(crate) struct Rejection {
    status: StatusCode,
    text: String,
}

impl Rejection {
    fn new(status: StatusCode, text: impl Into<String>) -> Rejection {
        Rejection {
            status,
            text: text.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .insert_header((CONTENT_TYPE, TEXT_CONTENT_TYPE))
            .body(self.text.clone())
    }
}

/// Decodes `bytes` as a form, naming the failing field like axum.
fn decode<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_path_to_error::Error<serde_urlencoded::de::Error>> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(deserializer)
}

/// axum's test: the `content-type` starts with the form type (parameters allowed).
fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

impl<T: DeserializeOwned + 'static> FromRequest for Form<T> {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<Form<T>, Rejection>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_form = is_form(req);
        let mut payload = payload.take();
        Box::pin(async move {
            // Checked before the body is used, as axum does.
            if !is_form {
                drop(read(&mut payload, 0).await);
                return Err(Rejection::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Form requests must have `Content-Type: application/x-www-form-urlencoded`",
                ));
            }
            let Some(bytes) = read(&mut payload, MAX_FORM_BYTES).await.map_err(|e| {
                Rejection::new(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to buffer the request body: {e}"),
                )
            })?
            else {
                return Err(Rejection::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Failed to buffer the request body: length limit exceeded",
                ));
            };
            decode(&bytes).map(Form).map_err(|e| {
                Rejection::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("Failed to deserialize form body: {e}"),
                )
            })
        })
    }
}

/// Reads the body: `Some` if it has at most `limit` bytes, `None` if more (read on and
/// dropped up to [`DRAIN_LIMIT`]).
async fn read(payload: &mut Payload, limit: usize) -> Result<Option<Vec<u8>>, PayloadError> {
    let mut body = Vec::new();
    let mut seen = 0_usize;
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut *payload).poll_next(cx)).await {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            body.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    Ok((seen <= limit).then_some(body))
}

/// A body the route does not use, read to its end (up to [`DRAIN_LIMIT`]) and dropped.
/// Never refuses.
#[derive(Debug)]
pub(crate) struct Ignored;

impl FromRequest for Ignored {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Ignored, actix_web::Error>>>>;

    fn from_request(_req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move {
            drop(read(&mut payload, 0).await);
            Ok(Ignored)
        })
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = Rejection;
    type Future = Ready<Result<Query<T>, Rejection>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            decode(req.query_string().as_bytes())
                .map(Query)
                .map_err(|e| {
                    Rejection::new(
                        StatusCode::BAD_REQUEST,
                        format!("Failed to deserialize query string: {e}"),
                    )
                }),
        )
    }
}
