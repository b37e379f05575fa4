//! Where a configuration keeps messages: a signed cookie, a server store, or both.

use std::sync::Arc;

use super::cookie::CookieStore;
use crate::MessageStore;

/// Where messages are kept between requests: a signed cookie part, a server store part,
/// or both. [`MessagesConfig::new`](crate::MessagesConfig::new) takes anything that
/// converts into it: a [`MessageStore`] (memory, Redis, your own, or an `Arc` of one
/// shared with a background job), a [`CookieStore`], or [`Storage::fallback`].
///
/// - **Server store only**: every message is in the store, keyed by the session cookie.
/// - **Cookie only**: every message travels in the signed messages cookie; no server
///   state. Out-of-band delivery (a job, no response in hand) needs a server part.
/// - **Fallback** (cookie first): messages stay in the cookie while they fit its byte
///   budget; the newest spill to the server store, and the cookie marks the views that
///   have messages there, so a request whose messages fit makes no store call at all.
///   Order is kept across the split. A job's messages are found when the request that
///   starts it announces them with
///   [`ViewMessages::expect_later`](crate::ViewMessages::expect_later): the view's mark
///   stays until a read of it finds messages on the server. When even the marks do not
///   fit the budget, one flag marks every view of the session.
///
/// ```
/// use std::sync::Arc;
/// use messages_core::{CookieStore, MemoryStore, MessageStore, MessagesConfig, Storage};
///
/// let cookie = CookieStore::new([[42u8; 32]]).unwrap();
/// let shared: Arc<dyn MessageStore> = Arc::new(MemoryStore::new());
///
/// assert!(MessagesConfig::new(MemoryStore::new()).server_store().is_some());
/// assert!(MessagesConfig::new(Arc::clone(&shared)).server_store().is_some());
/// assert!(MessagesConfig::new(cookie.clone()).server_store().is_none());
/// assert!(MessagesConfig::new(Storage::fallback(cookie, shared)).server_store().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Storage {
    cookie: Option<CookieStore>,
    server: Option<Arc<dyn MessageStore>>,
}

impl Storage {
    /// Messages in the signed cookie while they fit, the rest in `server`.
    pub fn fallback(cookie: CookieStore, server: impl MessageStore) -> Storage {
        Storage {
            cookie: Some(cookie),
            server: Some(server.into_shared()),
        }
    }

    /// The cookie part, if any.
    pub fn cookie(&self) -> Option<&CookieStore> {
        self.cookie.as_ref()
    }

    /// The server store part, if any.
    pub fn server(&self) -> Option<&Arc<dyn MessageStore>> {
        self.server.as_ref()
    }

    /// Whether a read of a view asks the server store: always without a cookie part;
    /// with one, only when the cookie marks the view as spilled (`spilled`: what the
    /// decoded cookie says, `None` without a cookie part).
    pub(crate) fn asks_server(&self, spilled: Option<bool>) -> bool {
        self.server.is_some() && (self.cookie.is_none() || spilled == Some(true))
    }

    /// The server store, when there is no cookie part: then adds go straight to it.
    pub(crate) fn server_only(&self) -> Option<&Arc<dyn MessageStore>> {
        self.server.as_ref().filter(|_| self.cookie.is_none())
    }
}

impl<S: MessageStore> From<S> for Storage {
    fn from(store: S) -> Storage {
        Storage {
            cookie: None,
            server: Some(store.into_shared()),
        }
    }
}

impl From<CookieStore> for Storage {
    fn from(cookie: CookieStore) -> Storage {
        Storage {
            cookie: Some(cookie),
            server: None,
        }
    }
}
