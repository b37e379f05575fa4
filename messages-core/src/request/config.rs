//! The configuration requests begin from.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use super::commit::CommitGuard;
use super::cookie::CookieSettings;
use super::identity::{SessionCookie, SessionSource};
use super::state::State;
use super::storage::Storage;
use super::{Messages, RequestInner};
use crate::live::{LiveOptions, Registry};
use crate::{Level, MessageStore, Result};

/// Default bound on the messages one request may queue for one view.
const QUEUE_CAP: usize = 1000;

#[derive(Debug, Clone)]
pub(crate) struct ConfigInner {
    pub(crate) storage: Storage,
    pub(crate) cookies: CookieSettings,
    /// The app's own session source; `None`: [`SessionCookie`] with `cookies`.
    custom_source: Option<Arc<dyn SessionSource>>,
    default_source: SessionCookie,
    pub(crate) min_level: Level,
    pub(crate) queue_cap: usize,
    /// The open live streams and their bounds (shared by clones of the configuration).
    pub(crate) live: Arc<Registry>,
}

impl ConfigInner {
    pub(crate) fn session_source(&self) -> &dyn SessionSource {
        match &self.custom_source {
            Some(source) => source.as_ref(),
            None => &self.default_source,
        }
    }
}

/// Where messages are stored and how requests find them; cheap to clone.
///
/// ```
/// use messages_core::{CookieSettings, Level, MemoryStore, MessagesConfig};
///
/// let config = MessagesConfig::new(MemoryStore::new())
///     .min_level(Level::DEBUG)
///     .cookie_settings(CookieSettings { secure: true, ..CookieSettings::default() })?;
/// assert!(config.server_store().is_some());
/// # Ok::<(), messages_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessagesConfig {
    pub(crate) inner: Arc<ConfigInner>,
}

impl MessagesConfig {
    /// Messages kept in `storage`: a [`MessageStore`] ([`MemoryStore`](crate::MemoryStore),
    /// [`RedisStore`](crate::RedisStore), your own, or an `Arc` of one shared with a
    /// background job), a [`CookieStore`](crate::CookieStore), or a
    /// [`Storage::fallback`]. See [`Storage`].
    pub fn new(storage: impl Into<Storage>) -> MessagesConfig {
        let cookies = CookieSettings::default();
        MessagesConfig {
            inner: Arc::new(ConfigInner {
                storage: storage.into(),
                default_source: SessionCookie::new(cookies.clone()),
                custom_source: None,
                cookies,
                min_level: Level::INFO,
                queue_cap: QUEUE_CAP,
                live: Arc::new(Registry::new(LiveOptions::default())),
            }),
        }
    }

    /// Cookie names and attributes; [`CookieSettings::behind_tls`] for production.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for settings a browser would drop or that
    /// defeat a cookie prefix (see [`CookieSettings::validate`]).
    pub fn cookie_settings(mut self, settings: CookieSettings) -> Result<MessagesConfig> {
        settings.validate()?;
        let inner = Arc::make_mut(&mut self.inner);
        inner.default_source = SessionCookie::new(settings.clone());
        inner.cookies = settings;
        Ok(self)
    }

    /// Where the session key comes from, instead of the session cookie
    /// ([`SessionCookie`]).
    #[must_use]
    pub fn session_source(mut self, source: Arc<dyn SessionSource>) -> MessagesConfig {
        Arc::make_mut(&mut self.inner).custom_source = Some(source);
        self
    }

    /// Messages below this level are ignored by
    /// [`ViewMessages::add_message`](crate::ViewMessages::add_message) (default
    /// [`Level::INFO`], as in Django).
    #[must_use]
    pub fn min_level(mut self, level: Level) -> MessagesConfig {
        Arc::make_mut(&mut self.inner).min_level = level;
        self
    }

    /// Most messages one request may queue for one view before the oldest queued are
    /// dropped with a warning (default 1000; the store's own cap applies after).
    #[must_use]
    pub fn queue_cap(mut self, cap: usize) -> MessagesConfig {
        Arc::make_mut(&mut self.inner).queue_cap = cap.max(1);
        self
    }

    /// Bounds and timings of live streams ([`live`](crate::live)); the default is
    /// [`LiveOptions::default`]. Call it before serving: streams opened earlier keep the
    /// old bounds.
    ///
    /// ```
    /// use messages_core::live::LiveOptions;
    /// use messages_core::{MemoryStore, MessagesConfig};
    ///
    /// let config = MessagesConfig::new(MemoryStore::new())
    ///     .live_options(LiveOptions { per_session: 2, ..LiveOptions::default() })?;
    /// assert_eq!(config.live_streams(), 0);
    /// assert!(MessagesConfig::new(MemoryStore::new())
    ///     .live_options(LiveOptions { total: 0, ..LiveOptions::default() })
    ///     .is_err());
    /// # Ok::<(), messages_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a zero bound or a zero or
    /// over-an-hour interval.
    pub fn live_options(mut self, options: LiveOptions) -> Result<MessagesConfig> {
        options.validate()?;
        Arc::make_mut(&mut self.inner).live = Arc::new(Registry::new(options));
        Ok(self)
    }

    /// Ends every open live stream and refuses new ones
    /// ([`LiveRefused::ShuttingDown`](crate::live::LiveRefused::ShuttingDown)): call it
    /// when a graceful shutdown starts, since a server waits for open responses and a
    /// live stream never ends by itself.
    pub fn close_live_streams(&self) {
        self.inner.live.close_all();
    }

    /// Sends what the server store has deferred ([`MessageStore::flush`]): call it at
    /// shutdown, once the server has stopped serving requests, so that no settle of a
    /// read lease is left behind (its messages would be shown again once the lease is
    /// up). Does nothing without a server store.
    ///
    /// ```
    /// # async fn run() -> messages_core::Result<()> {
    /// use messages_core::{MemoryStore, MessagesConfig};
    ///
    /// let config = MessagesConfig::new(MemoryStore::new());
    /// // ... serve until a shutdown signal, then:
    /// config.close_live_streams();
    /// config.flush().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// The store's error if it cannot be reached.
    pub async fn flush(&self) -> Result<()> {
        match self.inner.storage.server() {
            Some(store) => store.flush().await,
            None => Ok(()),
        }
    }

    /// How many live streams are open.
    pub fn live_streams(&self) -> usize {
        self.inner.live.open_streams()
    }

    /// The cookie settings in force.
    pub fn cookies(&self) -> &CookieSettings {
        &self.inner.cookies
    }

    /// Where messages are kept.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The server store that out-of-band messages go to, or `None` for cookie-only
    /// storage (which needs a response to carry messages).
    pub fn server_store(&self) -> Option<Arc<dyn MessageStore>> {
        self.inner.storage.server().cloned()
    }

    /// Starts one request, given the values of its `Cookie` headers. Does no I/O.
    ///
    /// A malformed session cookie is treated as absent (and removed by the response if
    /// the request uses messages). Messages cookies are checked only when messages are
    /// read or added; of several with the configured name, the first few are kept for
    /// that check. Framework adapters use [`begin_request`](MessagesConfig::begin_request).
    pub fn begin<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a str>) -> Messages {
        Messages {
            inner: Arc::new(RequestInner {
                state: Mutex::new(State::begin(&self.inner, cookie_headers)),
                config: Arc::clone(&self.inner),
                load_lock: tokio::sync::Mutex::new(()),
                cancelled: AtomicBool::new(false),
            }),
        }
    }

    /// For framework adapters: starts a request and returns the guard that commits it,
    /// or `None` when the request already has [`Messages`] (`installed`: what the
    /// framework's request extensions hold), because an outer layer owns and commits it.
    ///
    /// ```
    /// use messages_core::{MemoryStore, MessagesConfig};
    ///
    /// let config = MessagesConfig::new(MemoryStore::new());
    /// let guard = config.begin_request(None, []).unwrap();
    /// // An inner (second) layer sees the outer one's messages and stays out of the way.
    /// assert!(config.begin_request(Some(guard.messages()), []).is_none());
    /// ```
    pub fn begin_request<'a>(
        &self,
        installed: Option<&Messages>,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> Option<CommitGuard> {
        if installed.is_some() {
            return None;
        }
        Some(CommitGuard::new(self.begin(cookie_headers)))
    }
}
