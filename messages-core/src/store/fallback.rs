//! Cookie first, a server store for what does not fit.

use std::sync::Arc;

use crate::{CookieStore, MessageStore};

/// Messages in the signed cookie while they fit; the rest in a server store.
///
/// "The session only as a fallback": a request whose messages fit in the cookie makes no
/// server-store call at all. When the messages of a session exceed the cookie's byte
/// budget, the oldest stay in the cookie and the newest spill to the server store
/// (memory, or Redis when several processes serve the site); the cookie then marks the
/// views that have messages on the server, and only a read of a marked view asks the
/// server. Order is kept across the split.
///
/// Messages added out of band (by a job, to the server store) are found when the view is
/// marked: call [`Context::expect_later`](crate::Context::expect_later) in the request
/// that starts the job. A view's marker stays until a read of the view finds messages on
/// the server, so a page shown before the job has finished (or while the server store
/// is down) loses nothing; once found, announce again for a further batch. Until then each
/// read of that view asks the server.
///
/// When even the markers do not fit in the budget (many views, long view ids, a small
/// budget), one flag in the cookie marks every view: from then on, every read of that
/// session asks the server, as with a server store, until the session ends or the cookie
/// is refused (expired, say).
///
/// ```
/// use messages_core::{CookieStore, FallbackStore, MemoryStore, MessagesConfig};
///
/// let cookie = CookieStore::new(vec![vec![42; 32]]).unwrap();
/// let config = MessagesConfig::fallback(FallbackStore::new(cookie, MemoryStore::new()));
/// assert!(config.server_store().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct FallbackStore {
    pub(crate) cookie: CookieStore,
    pub(crate) server: Arc<dyn MessageStore>,
}

impl FallbackStore {
    /// Cookie storage backed by `server` for what does not fit.
    pub fn new(cookie: CookieStore, server: impl MessageStore) -> FallbackStore {
        FallbackStore {
            cookie,
            server: Arc::new(server),
        }
    }

    /// Like [`new`](FallbackStore::new), sharing a server store.
    pub fn with_shared(cookie: CookieStore, server: Arc<dyn MessageStore>) -> FallbackStore {
        FallbackStore { cookie, server }
    }
}
