//! Live delivery: a view's messages pushed to the page that is open on it, as they
//! arrive, exactly once across tabs.
//!
//! [`Messages::live`](crate::Messages::live) turns this request's (session, view) into a
//! [`LiveStream`]; the framework adapters serve it as Server-Sent Events
//! (`messages_core::axum::live_response`, `messages_core::actix::live_response`), one
//! event per message:
//!
//! ```text
//! id: 00000000000000070b9c6f0e1d2a3b4c
//! event: message
//! data: {"id":"00000000000000070b9c6f0e1d2a3b4c","level":"info","text":"Import finished",…}
//! ```
//!
//! The `data` is the message as [`Shown`] JSON.
//!
//! # Exactly once
//!
//! A stream **takes** each message from the store when it pushes it
//! ([`take_leased`](crate::MessageStore::take_leased)), so of two tabs open on one view
//! exactly one shows it, and a page loaded afterwards does not. A message added while no
//! stream is open stays in the store for the next page load. The store's change feed
//! ([`MessageStore::watch`]: in process for
//! [`MemoryStore`](crate::MemoryStore), pub/sub for Redis, `LISTEN/NOTIFY` for
//! Postgres) wakes the stream; a store without one is polled every
//! [`poll_interval`](LiveOptions::poll_interval), and every stream also polls at each
//! keep-alive, so a lost notification delays a message, never loses it.
//!
//! A message counts as delivered once its event was handed to the connection **and** the
//! server got to write it: after handing out events the stream returns to the server
//! once (so it flushes them) before it settles their read lease. If that write fails —
//! the browser is gone — the server drops the stream, and everything it took and did
//! not deliver goes back to the store, in order, for the next page. A peer that closed
//! its connection is only seen when a write to it fails, so before taking messages for
//! a stream that has been idle, the stream writes a keep-alive comment and gives the
//! peer's reset [`PROBE_GRACE`] to come back: a tab closed while idle loses nothing
//! (`live::*::with_no_stream_open_the_next_page_shows_it` closes it on both
//! frameworks). A connection that dies silently (no reset within the grace: a cable
//! pulled, a far-away peer) can still swallow a message; the page's next reconnect does
//! not get it back. A reconnecting `EventSource` sends `Last-Event-ID`; a message with
//! that id that comes back (its settle failed and its lease ran out) is not sent
//! again.
//!
//! # On the page
//!
//! Close the `EventSource` on `pagehide` and open it again on `pageshow`: a page that
//! goes into the browser's back/forward cache keeps its connection open, frozen, and a
//! message pushed to it then is taken and never shown (Chromium does this; the example's
//! dashboard does it right, and `browser.rs` failed without it).
//!
//! ```js
//! var events = null;
//! function live() {
//!   if (events) return;
//!   events = new EventSource("/dashboard/events");
//!   events.addEventListener("message", e => show(JSON.parse(e.data)));
//! }
//! addEventListener("pagehide", () => { if (events) { events.close(); events = null; } });
//! addEventListener("pageshow", live);
//! live();
//! ```
//!
//! # Bounds
//!
//! At most [`per_session`](LiveOptions::per_session) streams per session (a new one
//! closes that session's oldest: a reloaded tab replaces its stream) and
//! [`total`](LiveOptions::total) in all (more are refused:
//! [`LiveRefused::TooManyStreams`]); a keep-alive comment every
//! [`keep_alive`](LiveOptions::keep_alive) notices closed connections;
//! [`MessagesConfig::close_live_streams`](crate::MessagesConfig::close_live_streams) ends
//! every stream for a graceful shutdown. With cookie-only storage there is nothing to
//! push from ([`LiveRefused::NoServerStore`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::present::Shown;
use crate::store::Lease;
use crate::{Error, Message, MessageStore, Result, SessionKey, ViewId};

mod hub;

pub use hub::{Interest, LiveHub, Watch};

/// The SSE comment sent every [`keep_alive`](LiveOptions::keep_alive), and before a
/// take that follows a wait (see [`PROBE_GRACE`]).
pub const SSE_KEEP_ALIVE: &str = ": keep-alive\n\n";

/// How long a stream waits after writing a keep-alive before it takes messages, so that
/// a closed peer's reset arrives first and the write of the messages fails instead of
/// vanishing (loopback and LAN round trips are well under it).
pub const PROBE_GRACE: Duration = Duration::from_millis(25);

/// The first chunk of a live stream's body: the `EventSource` reconnection delay (3 s).
/// Sent at once, so the response's headers go out before the first event (a server may
/// hold them until the body has bytes) and the browser's `open` fires.
pub const SSE_OPEN: &str = "retry: 3000\n\n";

/// The `content-type` of a live stream.
pub const SSE_CONTENT_TYPE: &str = "text/event-stream";

/// The headers of a live stream's `200`, for every adapter: the content type, no caching,
/// and no buffering by a proxy (nginx's `X-Accel-Buffering`).
pub const SSE_HEADERS: [(&str, &str); 3] = [
    ("content-type", SSE_CONTENT_TYPE),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
];

/// The request header a reconnecting `EventSource` names its last event with.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Bounds and timings of live streams; set with
/// [`MessagesConfig::live_options`](crate::MessagesConfig::live_options).
///
/// ```
/// use std::time::Duration;
/// use messages_core::live::LiveOptions;
///
/// let options = LiveOptions { total: 20_000, ..LiveOptions::default() };
/// assert_eq!(options.per_session, 8);
/// assert_eq!(options.keep_alive, Duration::from_secs(15));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// Most open streams of one session (default 8); a new one closes the oldest.
    pub per_session: usize,
    /// Most open streams in this process (default 10 000); more are refused.
    pub total: usize,
    /// How often an idle stream sends a keep-alive comment, and polls the store
    /// (default 15 s).
    pub keep_alive: Duration,
    /// How often a stream polls a store without a change feed (default 1 s).
    pub poll_interval: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            per_session: 8,
            total: 10_000,
            keep_alive: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl LiveOptions {
    /// Refuses zero bounds and a zero or over-an-hour interval.
    pub(crate) fn validate(&self) -> Result<()> {
        let hour = Duration::from_secs(3600);
        if self.per_session == 0 || self.total == 0 {
            return Err(Error::Config(
                "live streams: per_session and total must be at least 1".into(),
            ));
        }
        for (name, d) in [
            ("keep_alive", self.keep_alive),
            ("poll_interval", self.poll_interval),
        ] {
            if d.is_zero() || d > hour {
                return Err(Error::Config(format!(
                    "live streams: {name} must be more than 0 and at most an hour"
                )));
            }
        }
        Ok(())
    }
}

/// Why a live stream was not opened. [`status`](LiveRefused::status) is the HTTP
/// status to answer with; an `EventSource` does not retry on any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveRefused {
    /// The storage has no server store (cookie-only): messages live in the browser's
    /// cookie, which only a response can carry, so nothing can be pushed. `501`.
    #[error("live delivery needs a server store; this app keeps messages in a cookie only")]
    NoServerStore,
    /// The process holds [`LiveOptions::total`] streams. `503`.
    #[error("too many live streams are open")]
    TooManyStreams,
    /// [`close_live_streams`](crate::MessagesConfig::close_live_streams) was called. `503`.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// No session key could be made for a visitor without one. `500`.
    #[error(transparent)]
    Session(Error),
}

impl LiveRefused {
    /// The HTTP status to answer with.
    ///
    /// ```
    /// use messages_core::live::LiveRefused;
    /// assert_eq!(LiveRefused::NoServerStore.status(), 501);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            LiveRefused::NoServerStore => 501,
            LiveRefused::TooManyStreams | LiveRefused::ShuttingDown => 503,
            LiveRefused::Session(_) => 500,
        }
    }

    /// For the adapters: logs a refusal that is the server's fault, and gives
    /// [`status`](LiveRefused::status).
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn logged_status(&self) -> u16 {
        if let LiveRefused::Session(e) = self {
            crate::request::log_store_error("live session", e);
        }
        self.status()
    }
}

/// One event of a [`LiveStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveEvent {
    /// A message for the view, now taken from the store.
    Message(Message),
    /// Nothing arrived for [`keep_alive`](LiveOptions::keep_alive).
    KeepAlive,
}

impl LiveEvent {
    /// The event in the SSE wire format: `id`, `event: message` and the [`Shown`] JSON
    /// as `data` for a message, a comment for a keep-alive.
    ///
    /// ```
    /// use messages_core::Message;
    /// use messages_core::live::LiveEvent;
    ///
    /// let m = Message::info("Import finished");
    /// let sse = LiveEvent::Message(m.clone()).to_sse();
    /// assert!(sse.starts_with(&format!("id: {}\nevent: message\ndata: {{\"id\":", m.id())));
    /// assert!(sse.ends_with("}\n\n"));
    /// assert_eq!(LiveEvent::KeepAlive.to_sse(), ": keep-alive\n\n");
    /// ```
    pub fn to_sse(&self) -> String {
        match self {
            LiveEvent::Message(m) => {
                // JSON escapes line breaks, so the data is one line.
                let data = serde_json::to_string(&Shown::from(m)).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "messages: live event not serialized");
                    "{}".to_owned()
                });
                format!("id: {}\nevent: message\ndata: {data}\n\n", m.id())
            }
            LiveEvent::KeepAlive => SSE_KEEP_ALIVE.to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The registry of open streams, one per configuration.

#[derive(Debug, Default)]
struct Open {
    total: usize,
    next_id: u64,
    /// Per session, its streams oldest first, each with what ends it.
    sessions: HashMap<SessionKey, VecDeque<(u64, Arc<Notify>)>>,
}

/// The open streams of one configuration, their bounds, and the shutdown switch.
#[derive(Debug)]
pub(crate) struct Registry {
    options: LiveOptions,
    open: Mutex<Open>,
    closing: watch::Sender<bool>,
}

impl Registry {
    pub(crate) fn new(options: LiveOptions) -> Registry {
        Registry {
            options,
            open: Mutex::new(Open::default()),
            closing: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn options(&self) -> &LiveOptions {
        &self.options
    }

    pub(crate) fn close_all(&self) {
        self.closing.send_replace(true);
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.lock().total
    }

    /// A slot for a stream of `session`, closing the session's oldest when it is full.
    fn register(self: &Arc<Registry>, session: &SessionKey) -> Result<Slot, LiveRefused> {
        if *self.closing.borrow() {
            return Err(LiveRefused::ShuttingDown);
        }
        let mut open = self.lock();
        let streams = open.sessions.get(session).map_or(0, VecDeque::len);
        if streams < self.options.per_session && open.total >= self.options.total {
            return Err(LiveRefused::TooManyStreams);
        }
        let id = open.next_id;
        open.next_id += 1;
        let end = Arc::new(Notify::new());
        let list = open.sessions.entry(session.clone()).or_default();
        let mut replaced = 0;
        while list.len() >= self.options.per_session {
            if let Some((_, oldest)) = list.pop_front() {
                // Stored as a permit if the stream is not waiting right now.
                oldest.notify_one();
                replaced += 1;
            }
        }
        list.push_back((id, Arc::clone(&end)));
        open.total = open.total + 1 - replaced;
        Ok(Slot {
            registry: Arc::clone(self),
            session: session.clone(),
            id,
            end,
            closing: self.closing.subscribe(),
        })
    }
}

/// A stream's place in the [`Registry`]; freed on drop.
#[derive(Debug)]
struct Slot {
    registry: Arc<Registry>,
    session: SessionKey,
    id: u64,
    end: Arc<Notify>,
    closing: watch::Receiver<bool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.registry.lock();
        let Some(list) = open.sessions.get_mut(&self.session) else {
            return;
        };
        let before = list.len();
        list.retain(|(id, _)| *id != self.id);
        let removed = before - list.len();
        if list.is_empty() {
            open.sessions.remove(&self.session);
        }
        open.total -= removed;
    }
}

// ---------------------------------------------------------------------------------------
// The stream.

/// A stream's next step before it waits.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Nothing to take: wait.
    Wait,
    /// The last take failed: wait for a wake or [`poll_interval`](LiveOptions::poll_interval),
    /// whichever comes first, then take again.
    Retry,
    /// Woken after waiting: write a keep-alive, then take.
    Probe,
    /// Take the context's messages (after [`PROBE_GRACE`] when a keep-alive was just
    /// written).
    Take { grace: bool },
}

/// What ended a stream's wait.
enum Woke {
    End,
    Store,
    KeepAlive,
}

/// The live messages of one (session, view): what
/// [`Messages::live`](crate::Messages::live) opens and an adapter serves as SSE.
///
/// Call [`next`](LiveStream::next) until it returns `None` (the stream was closed by a
/// newer one of its session or by shutdown); each call also settles what the previous
/// call handed out. Drop it when the connection closes: messages taken and not yet handed
/// out go back to the store.
#[derive(Debug)]
pub struct LiveStream {
    store: Arc<dyn MessageStore>,
    session: SessionKey,
    view: ViewId,
    watch: Option<Watch>,
    options: LiveOptions,
    /// Taken, not yet handed out.
    batch: VecDeque<Message>,
    /// Handed out, not yet known written (put back if the stream is dropped).
    handed: Vec<Message>,
    /// The lease of the batch, settled once the batch is handed out.
    lease: Option<Lease>,
    last_event_id: Option<String>,
    /// What to do before waiting again.
    step: Step,
    next_keep_alive: Instant,
    slot: Slot,
    ended: bool,
}

impl LiveStream {
    pub(crate) fn open(
        registry: &Arc<Registry>,
        store: Arc<dyn MessageStore>,
        session: SessionKey,
        view: ViewId,
        last_event_id: Option<&str>,
    ) -> Result<LiveStream, LiveRefused> {
        let slot = registry.register(&session)?;
        // Watch before the first take, so an add between the two is not missed.
        let watch = store.watch(&session, &view);
        let options = *registry.options();
        Ok(LiveStream {
            store,
            watch,
            options,
            batch: VecDeque::new(),
            handed: Vec::new(),
            lease: None,
            last_event_id: last_event_id
                .map(str::trim)
                .filter(|id| !id.is_empty() && id.len() <= 64)
                .map(str::to_owned),
            step: Step::Take { grace: false },
            next_keep_alive: Instant::now() + options.keep_alive,
            slot,
            ended: false,
            session,
            view,
        })
    }

    /// The stream as SSE text chunks ([`SSE_OPEN`], then [`LiveEvent::to_sse`] of each
    /// event), ending when the stream is closed: what an adapter puts in a streaming
    /// response body.
    #[cfg(any(feature = "axum", feature = "actix"))]
    pub(crate) fn into_sse(
        self,
    ) -> impl futures_util::Stream<Item = Result<String, std::convert::Infallible>> + Send + 'static
    {
        use futures_util::StreamExt as _;
        let open = futures_util::stream::iter([Ok(SSE_OPEN.to_owned())]);
        open.chain(futures_util::stream::unfold(
            self,
            |mut stream| async move {
                let event = stream.next().await?;
                Some((Ok(event.to_sse()), stream))
            },
        ))
    }

    /// The session this stream delivers to.
    pub fn session(&self) -> &SessionKey {
        &self.session
    }

    /// The view this stream delivers.
    pub fn view(&self) -> &ViewId {
        &self.view
    }

    /// Whether the store wakes this stream (`false`: it polls).
    pub fn is_notified(&self) -> bool {
        self.watch.is_some()
    }

    /// The next event: a message as soon as one is in the store for this context, or a
    /// keep-alive when nothing came for [`keep_alive`](LiveOptions::keep_alive); `None`
    /// once the stream is closed. Store errors are logged and the take is retried on the
    /// next wake or after [`poll_interval`](LiveOptions::poll_interval), whichever comes
    /// first; they never end the stream.
    ///
    /// Cancel-safe between calls' awaits: a dropped call loses no message (a take in
    /// flight is finished or, for a store with read leases, comes back with the lease).
    pub async fn next(&mut self) -> Option<LiveEvent> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(m) = self.batch.pop_front() {
                self.handed.push(m.clone());
                return Some(LiveEvent::Message(m));
            }
            if !self.handed.is_empty() || self.lease.is_some() {
                // Return to the server once, so it writes what it was handed; a failed
                // write drops this stream here, and Drop puts the messages back.
                tokio::task::yield_now().await;
                self.handed.clear();
                self.settle().await;
            }
            match self.step {
                Step::Wait | Step::Retry => {}
                Step::Probe => {
                    // Idle until now: a closed peer is only seen by a failing write, so
                    // write one and give its reset time to arrive before taking.
                    self.step = Step::Take { grace: true };
                    return Some(LiveEvent::KeepAlive);
                }
                Step::Take { grace } => {
                    if grace {
                        tokio::time::sleep(PROBE_GRACE).await;
                    }
                    self.step = Step::Wait;
                    match self.store.take_leased(&self.session, &self.view).await {
                        Ok(taken) => {
                            self.lease = taken.lease;
                            let last = self.last_event_id.as_deref();
                            self.batch = taken
                                .messages
                                .into_iter()
                                .filter(|m| last != Some(m.id().to_string().as_str()))
                                .collect();
                            if !self.batch.is_empty() {
                                continue;
                            }
                            self.settle().await;
                        }
                        Err(e) => {
                            crate::request::log_store_error("live take", &e);
                            self.step = Step::Retry;
                        }
                    }
                }
            }
            let poll = self.options.poll_interval;
            let end = Arc::clone(&self.slot.end);
            let mut closing = self.slot.closing.clone();
            let keep_alive_at = self.next_keep_alive;
            let retry = matches!(self.step, Step::Retry);
            let watch = &mut self.watch;
            // A store without a change feed is polled; after a failed take, so is one
            // with a feed (a wake may come first).
            let woken = async {
                match watch {
                    Some(watch) if retry => tokio::select! {
                        () = watch.changed() => {}
                        () = tokio::time::sleep(poll) => {}
                    },
                    Some(watch) => watch.changed().await,
                    None => tokio::time::sleep(poll).await,
                }
            };
            let woke = tokio::select! {
                biased;
                () = end.notified() => Woke::End,
                _ = closing.wait_for(|closing| *closing) => Woke::End,
                () = woken => Woke::Store,
                () = tokio::time::sleep_until(keep_alive_at) => Woke::KeepAlive,
            };
            match woke {
                Woke::End => self.ended = true,
                Woke::Store => self.step = Step::Probe,
                Woke::KeepAlive => {
                    self.next_keep_alive = Instant::now() + self.options.keep_alive;
                    // Also a safety poll, for a notification the store's channel lost;
                    // this keep-alive is its probe.
                    self.step = Step::Take { grace: true };
                    return Some(LiveEvent::KeepAlive);
                }
            }
        }
    }

    async fn settle(&mut self) {
        if let Some(lease) = self.lease.take()
            && let Err(e) = self.store.settle(&self.session, &self.view, lease).await
        {
            // The lease runs out and the messages come back; Last-Event-ID keeps the
            // browser from seeing the last one twice.
            crate::request::log_store_error("live settle", &e);
        }
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        // Handed out but not known written, then not handed out: in order.
        let mut unsent = std::mem::take(&mut self.handed);
        unsent.extend(self.batch.drain(..));
        let lease = self.lease.take();
        if unsent.is_empty() && lease.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "messages: live stream dropped outside a tokio runtime; its unsent messages come back when their lease ends"
            );
            return;
        };
        let store = Arc::clone(&self.store);
        let (session, view) = (self.session.clone(), self.view.clone());
        runtime.spawn(async move {
            if !unsent.is_empty()
                && let Err(e) = store.put_back(&session, &view, unsent).await
            {
                crate::request::log_store_error("live put back", &e);
                // Leave the lease unsettled: its messages come back when it ends.
                return;
            }
            if let Some(lease) = lease
                && let Err(e) = store.settle(&session, &view, lease).await
            {
                crate::request::log_store_error("live settle", &e);
            }
        });
    }
}

#[cfg(test)]
mod tests;
