//! One request's state: its session, its messages cookie, and what it did to each view.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::config::ConfigInner;
use super::cookie::{CookieError, CookiePayload, CookieStore, MAX_INCOMING_BYTES};
use super::identity::Incoming;
use crate::message::now_ms;
use crate::store::Lease;
use crate::{Message, Result, SessionKey, ViewId};

/// At most this many messages cookies of one request are checked.
const MAX_MESSAGES_COOKIES: usize = 4;

/// The `(name, value)` pairs of a `Cookie` header, as `cookie::Cookie::split_parse` reads
/// them (pieces between `;`, trimmed; a piece without `=` or with an empty name left out;
/// values raw), without building a `Cookie` for each: that was most of a request's cost
/// in the layer when a profile of the load harness looked (`state::tests` check the two
/// agree).
fn split_cookies(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|piece| {
        let (name, value) = piece.trim().split_once('=')?;
        let name = name.trim();
        (!name.is_empty()).then(|| (name, value.trim()))
    })
}

#[derive(Debug, Default)]
pub(crate) struct CookieState {
    /// A messages cookie came with the request.
    pub(crate) present: bool,
    /// The values of the messages cookies, not yet checked.
    pub(crate) raw: Vec<std::result::Result<String, CookieError>>,
    /// `Some` once decoded (an invalid cookie decodes to empty).
    pub(crate) decoded: Option<CookiePayload>,
    /// When the newest valid messages cookie was signed, once decoded.
    pub(crate) newest: Option<u64>,
    /// The cookie must be written (or removed) by the response.
    pub(crate) dirty: bool,
}

#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one view in one request
pub(crate) struct ViewState {
    /// What the request holds of the view once loaded, in order: the stored messages,
    /// then the adds moved in by later loads. Only ever appended to (or cleared), so every
    /// list handed out is a prefix of it.
    pub(crate) loaded: Vec<Message>,
    pub(crate) is_loaded: bool,
    /// One entry per list handed out: its "rendered" flag and its length (a prefix of
    /// `loaded`). What was rendered is the longest rendered prefix, and only that is
    /// consumed: an add made after a list was rendered stays unshown.
    pub(crate) lists: Vec<(Arc<AtomicBool>, usize)>,
    pub(crate) queued: Vec<Message>,
    pub(crate) discard: bool,
    pub(crate) expect_later: bool,
    /// The queue cap was hit (warned once per request and view).
    pub(crate) overflowed: bool,
    /// The server store's lease on the messages loaded, and the session they were taken
    /// from: settled by the commit once they are shown or safely put back.
    pub(crate) lease: Option<(SessionKey, Lease)>,
}

impl ViewState {
    /// How many of `loaded` (a prefix) a rendered list held.
    pub(crate) fn shown(&self) -> usize {
        self.lists
            .iter()
            .filter(|(rendered, _)| rendered.load(Ordering::Acquire))
            .map(|(_, len)| *len)
            .max()
            .unwrap_or(0)
            .min(self.loaded.len())
    }
}

#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one request
pub(crate) struct State {
    pub(crate) session: Option<SessionKey>,
    /// The session was made during this request.
    pub(crate) session_new: bool,
    /// The handler asked for the session: the response sets it even if nothing is stored.
    pub(crate) session_forced: bool,
    /// The request brought a malformed session key and no valid one.
    pub(crate) bad_session: bool,
    /// The session the request ended (logout).
    pub(crate) ended: Option<SessionKey>,
    /// The session the request rotated away from (login): its messages move to `session`.
    pub(crate) rotated_from: Option<SessionKey>,
    pub(crate) cookie: CookieState,
    pub(crate) views: HashMap<ViewId, ViewState>,
    /// Messages were read or written: the response is private to this browser.
    pub(crate) touched: bool,
    pub(crate) committed: bool,
}

impl State {
    /// The state of a request with these `Cookie` header values. No I/O.
    pub(crate) fn begin<'a>(
        config: &ConfigInner,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> State {
        let mut cookies: Vec<(&str, &str)> = Vec::new();
        for header in cookie_headers {
            cookies.extend(split_cookies(header));
        }
        let mut state = State::default();
        match config.session_source().incoming(&cookies) {
            Incoming::Key(key) => state.session = Some(key),
            Incoming::Malformed => state.bad_session = true,
            Incoming::Absent => {}
        }
        // Of the messages cookies, the valid one signed last wins (see `payload`).
        let messages_name = config.cookies.messages_name.as_str();
        for (_, value) in cookies.iter().filter(|(n, _)| *n == messages_name) {
            state.cookie.present = true;
            if state.cookie.raw.len() < MAX_MESSAGES_COOKIES {
                // Oversized values are refused when decoded, but not copied.
                state.cookie.raw.push(if value.len() > MAX_INCOMING_BYTES {
                    Err(CookieError::Oversized)
                } else {
                    Ok((*value).to_owned())
                });
            }
        }
        state
    }

    pub(crate) fn session_or_new(&mut self) -> Result<SessionKey> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let s = SessionKey::generate()?;
        self.session = Some(s.clone());
        self.session_new = true;
        Ok(s)
    }

    /// The decoded cookie payload (decoding it on first use).
    ///
    /// A refused cookie logs one warning and marks the cookie for rewriting (removal if
    /// nothing is left). Of several cookies, the valid one signed last wins.
    pub(crate) fn payload(&mut self, store: &CookieStore, name: &str) -> &mut CookiePayload {
        if self.cookie.decoded.is_none() {
            let raw = std::mem::take(&mut self.cookie.raw);
            let decoded = match &self.session {
                _ if raw.is_empty() => CookiePayload::default(),
                None => {
                    tracing::warn!(
                        "messages: messages cookie without a valid session, no messages shown"
                    );
                    self.cookie.dirty = true;
                    CookiePayload::default()
                }
                Some(session) => {
                    let now = now_ms();
                    let mut best: Option<(u64, CookiePayload)> = None;
                    let mut refused = None;
                    for value in &raw {
                        match value
                            .as_deref()
                            .map_err(|e| *e)
                            .and_then(|v| store.decode(v, name, session, now))
                        {
                            Ok((p, at)) if best.as_ref().is_none_or(|(b, _)| at > *b) => {
                                best = Some((at, p));
                            }
                            Ok(_) => {}
                            Err(e) => refused = refused.or(Some(e)),
                        }
                    }
                    if let Some(reason) = refused {
                        tracing::warn!(
                            %reason,
                            cookies = raw.len(),
                            "messages: messages cookie refused, no messages shown from it"
                        );
                        self.cookie.dirty = true;
                    }
                    self.cookie.newest = best.as_ref().map(|(at, _)| *at);
                    best.map(|(_, p)| p).unwrap_or_default()
                }
            };
            self.cookie.decoded = Some(decoded);
        }
        self.cookie
            .decoded
            .get_or_insert_with(CookiePayload::default)
    }

    /// The cookie payload when the storage has a cookie part (decoding it on first use).
    pub(crate) fn cookie_part(&mut self, config: &ConfigInner) -> Option<&mut CookiePayload> {
        let cs = config.storage.cookie()?;
        Some(self.payload(cs, &config.cookies.messages_name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::split_cookies;

    /// What the `cookie` crate reads of a `Cookie` header.
    fn by_cookie_crate(header: &str) -> Vec<(&str, &str)> {
        cookie::Cookie::split_parse(header)
            .flatten()
            .filter_map(|c| Some((c.name_raw()?, c.value_raw()?)))
            .collect()
    }

    #[test]
    fn split_cookies_reads_headers_as_the_cookie_crate_does() {
        for header in [
            "",
            ";;",
            "a=1",
            " a = 1 ; b=2;c=",
            "a=\"quoted\"; b",
            "=x; y=; z==w; ;\t k\t=\tv\t",
            "messages_session=abc; messages=x.y.z; other=%20",
            "a=1;\u{a0}b\u{a0}=\u{3000}2",
        ] {
            assert_eq!(
                split_cookies(header).collect::<Vec<_>>(),
                by_cookie_crate(header),
                "{header:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn split_cookies_agrees_with_the_cookie_crate(header in "[ a-c=;\t\"\u{a0}\u{3000}%]{0,40}") {
            prop_assert_eq!(split_cookies(&header).collect::<Vec<_>>(), by_cookie_crate(&header));
        }
    }
}
