//! The session seam: where a request's session key comes from, and how a change of
//! session reaches the browser.

use std::fmt;

use super::cookie::CookieSettings;
use crate::SessionKey;

/// The session key a request came with, as a [`SessionSource`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A well-formed key.
    Key(SessionKey),
    /// Something that should have been a key and is not (a garbage cookie): treated as
    /// no session; the response of a request that uses messages ends it
    /// ([`SessionChange::Ended`] with no key).
    Malformed,
    /// No session.
    Absent,
}

/// What happened to the session during a request, reported by
/// [`Committed::session`](crate::request::Committed::session) so that an identity source
/// can write it wherever it keeps the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionChange {
    /// Nothing to write.
    #[default]
    Unchanged,
    /// A new session was made and must reach the browser (messages were stored for it, or
    /// the handler asked for one).
    Started(SessionKey),
    /// The session moved to a new key (at login); the old key must be forgotten.
    Rotated {
        /// The key the request came with.
        from: SessionKey,
        /// The key to use from now on.
        to: SessionKey,
    },
    /// The session ended: at logout (with the key that ended), or because the key the
    /// request brought was malformed (no key).
    Ended(Option<SessionKey>),
}

/// Where the session key comes from: one small interface, so an identity source (the
/// app's own session, say) plugs in without touching request state.
///
/// [`incoming`](SessionSource::incoming) is called once per request, with its cookies,
/// before any handler runs: it must do no I/O. [`outgoing`](SessionSource::outgoing)
/// turns a [`SessionChange`] into the `Set-Cookie` value that carries it, if the source
/// keeps the key in a cookie. The default source is [`SessionCookie`].
///
/// ```
/// use messages_core::request::{Incoming, SessionChange, SessionSource};
/// use messages_core::{MemoryStore, MessagesConfig, SessionKey};
/// use std::sync::Arc;
///
/// /// The key rides in a header set by a trusted proxy; the proxy also stores changes.
/// #[derive(Debug)]
/// struct FromProxy;
///
/// impl SessionSource for FromProxy {
///     fn incoming(&self, cookies: &[(&str, &str)]) -> Incoming {
///         match cookies.iter().find(|(name, _)| *name == "proxy_session") {
///             Some((_, value)) => value.parse().map_or(Incoming::Malformed, Incoming::Key),
///             None => Incoming::Absent,
///         }
///     }
///     fn outgoing(&self, _change: &SessionChange) -> Option<String> {
///         None
///     }
/// }
///
/// let config = MessagesConfig::new(MemoryStore::new()).session_source(Arc::new(FromProxy));
/// let key = SessionKey::generate().unwrap();
/// let cookie = format!("proxy_session={}", key.as_str());
/// assert_eq!(config.begin([cookie.as_str()]).session(), Some(key));
/// ```
pub trait SessionSource: fmt::Debug + Send + Sync + 'static {
    /// The session key of a request, from its cookies (`(name, value)` in header order).
    fn incoming(&self, cookies: &[(&str, &str)]) -> Incoming;

    /// The `Set-Cookie` value that carries `change` to the browser, if any.
    fn outgoing(&self, change: &SessionChange) -> Option<String>;
}

/// The default [`SessionSource`]: the key in its own `HttpOnly` cookie
/// ([`CookieSettings::session_name`], `messages_session` by default).
///
/// Browsers send the most specific cookie first, so of several cookies with the name the
/// first well-formed key wins: a garbage cookie planted beside it (another path, a
/// sibling domain) neither hides it nor makes the response remove it.
///
/// ```
/// use messages_core::request::{Incoming, SessionChange, SessionCookie, SessionSource};
/// use messages_core::{CookieSettings, SessionKey};
///
/// let source = SessionCookie::new(CookieSettings::default());
/// let key = SessionKey::generate().unwrap();
/// assert_eq!(source.incoming(&[("messages_session", "junk"), ("messages_session", key.as_str())]), Incoming::Key(key.clone()));
/// let set = source.outgoing(&SessionChange::Started(key.clone())).unwrap();
/// assert!(set.starts_with(&format!("messages_session={}; ", key.as_str())));
/// assert!(set.contains("HttpOnly"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct SessionCookie {
    settings: CookieSettings,
}

impl SessionCookie {
    /// The session cookie as `settings` name it.
    pub fn new(settings: CookieSettings) -> SessionCookie {
        SessionCookie { settings }
    }
}

impl SessionSource for SessionCookie {
    fn incoming(&self, cookies: &[(&str, &str)]) -> Incoming {
        let mut found = Incoming::Absent;
        for (name, value) in cookies {
            if *name == self.settings.session_name {
                match value.parse::<SessionKey>() {
                    Ok(key) => return Incoming::Key(key),
                    Err(_) => found = Incoming::Malformed,
                }
            }
        }
        found
    }

    fn outgoing(&self, change: &SessionChange) -> Option<String> {
        let name = &self.settings.session_name;
        match change {
            SessionChange::Unchanged => None,
            SessionChange::Started(key) | SessionChange::Rotated { to: key, .. } => {
                Some(self.settings.set_cookie(name, Some(key.as_str())))
            }
            SessionChange::Ended(_) => Some(self.settings.set_cookie(name, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_cookie_source_writes_every_change() {
        let source = SessionCookie::default();
        let (from, to) = (
            SessionKey::generate().unwrap(),
            SessionKey::generate().unwrap(),
        );
        assert_eq!(source.outgoing(&SessionChange::Unchanged), None);
        let rotated = source
            .outgoing(&SessionChange::Rotated {
                from,
                to: to.clone(),
            })
            .unwrap();
        assert!(rotated.starts_with(&format!("messages_session={};", to.as_str())));
        let ended = source.outgoing(&SessionChange::Ended(None)).unwrap();
        assert!(ended.starts_with("messages_session=;"), "{ended}");
        assert!(ended.contains("Max-Age=0"), "{ended}");
        assert_eq!(source.incoming(&[("other", to.as_str())]), Incoming::Absent);
        assert_eq!(
            source.incoming(&[("messages_session", "x")]),
            Incoming::Malformed
        );
    }
}
