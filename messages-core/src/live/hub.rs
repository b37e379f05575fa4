//! The in-process side of a store's change feed: who waits on which context, and waking
//! them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{mpsc, watch};

use crate::{SessionKey, ViewId};

/// A session gaining its first or losing its last [`Watch`] in a [`LiveHub`]: what a
/// store whose change feed is subscribed per session (Redis pub/sub) acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Interest {
    /// The session's first watch opened: subscribe to its adds.
    Watched(SessionKey),
    /// The session's last watch closed: unsubscribe.
    Unwatched(SessionKey),
}

/// The watched contexts of one session: one sender per view, whose receivers are the
/// [`Watch`]es; the session has watches as long as it has a sender.
type Views = HashMap<ViewId, watch::Sender<()>>;

#[derive(Debug, Default)]
struct Contexts {
    sessions: HashMap<SessionKey, Views>,
}

#[derive(Debug)]
struct HubInner {
    contexts: Mutex<Contexts>,
    interest: Option<mpsc::UnboundedSender<Interest>>,
}

impl HubInner {
    fn lock(&self) -> MutexGuard<'_, Contexts> {
        // The maps are consistent between statements.
        self.contexts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes the live streams of a context when messages arrive: the building block of a
/// store's change feed ([`MessageStore::watch`](crate::MessageStore::watch)).
///
/// A store keeps one hub, hands out [`watch`](LiveHub::watch)es, and calls
/// [`wake`](LiveHub::wake) when it learns of an add — directly for a store inside the
/// process ([`MemoryStore`](crate::MemoryStore)), from its notification channel for a
/// shared one (Redis pub/sub, Postgres `LISTEN`). A wake carries no message: the stream
/// then takes the context's messages from the store, so of two streams woken for one
/// context exactly one gets each message. Waking a context nobody watches costs one map
/// look-up.
///
/// ```
/// use messages_core::live::LiveHub;
/// use messages_core::{SessionKey, ViewId};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hub = LiveHub::new();
/// let session = SessionKey::generate().unwrap();
/// let view = ViewId::from_static("app::dashboard");
/// let mut watch = hub.watch(&session, &view);
/// hub.wake(&session, &view);
/// watch.changed().await; // returns at once: the context was woken
/// assert_eq!(hub.watched(), 1);
/// drop(watch);
/// assert_eq!(hub.watched(), 0);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LiveHub {
    inner: Arc<HubInner>,
}

impl Default for LiveHub {
    fn default() -> Self {
        LiveHub::new()
    }
}

impl LiveHub {
    /// A hub for a store that needs no [`Interest`] (one inside the process, or one whose
    /// notifications reach every process).
    pub fn new() -> LiveHub {
        LiveHub {
            inner: Arc::new(HubInner {
                contexts: Mutex::new(Contexts::default()),
                interest: None,
            }),
        }
    }

    /// A hub that reports each session's first and last [`Watch`] on the receiver, for a
    /// store that subscribes per session.
    pub fn with_interest() -> (LiveHub, mpsc::UnboundedReceiver<Interest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = LiveHub {
            inner: Arc::new(HubInner {
                contexts: Mutex::new(Contexts::default()),
                interest: Some(tx),
            }),
        };
        (hub, rx)
    }

    /// A watch on one context; it is woken by every later [`wake`](LiveHub::wake) of the
    /// context (wakes that come while nobody waits are kept as one).
    pub fn watch(&self, session: &SessionKey, view: &ViewId) -> Watch {
        let mut contexts = self.inner.lock();
        let first = !contexts.sessions.contains_key(session);
        let views = contexts.sessions.entry(session.clone()).or_default();
        let rx = if let Some(tx) = views.get(view) {
            tx.subscribe()
        } else {
            let (tx, rx) = watch::channel(());
            views.insert(view.clone(), tx);
            rx
        };
        if first && let Some(interest) = &self.inner.interest {
            // The receiver lives as long as the store; if it is gone nobody cares.
            let _ = interest.send(Interest::Watched(session.clone()));
        }
        Watch {
            rx,
            hub: Arc::downgrade(&self.inner),
            session: session.clone(),
            view: view.clone(),
        }
    }

    /// Wakes every watch of a context.
    pub fn wake(&self, session: &SessionKey, view: &ViewId) {
        let contexts = self.inner.lock();
        if let Some(tx) = contexts
            .sessions
            .get(session)
            .and_then(|views| views.get(view))
        {
            tx.send_replace(());
        }
    }

    /// Wakes every watch of a session (after a rotation moved messages to it, say).
    pub fn wake_session(&self, session: &SessionKey) {
        let contexts = self.inner.lock();
        for tx in contexts
            .sessions
            .get(session)
            .into_iter()
            .flat_map(HashMap::values)
        {
            tx.send_replace(());
        }
    }

    /// Wakes every watch: after the store's notification channel was down and may have
    /// missed adds.
    pub fn wake_all(&self) {
        for tx in self
            .inner
            .lock()
            .sessions
            .values()
            .flat_map(HashMap::values)
        {
            tx.send_replace(());
        }
    }

    /// How many watches are open.
    pub fn watched(&self) -> usize {
        let contexts = self.inner.lock();
        let views = contexts.sessions.values().flat_map(HashMap::values);
        views.map(watch::Sender::receiver_count).sum()
    }

    /// The sessions with at least one open watch (to subscribe again after a reconnect).
    pub fn sessions(&self) -> Vec<SessionKey> {
        self.inner.lock().sessions.keys().cloned().collect()
    }
}

/// One live stream's subscription to a context's adds, made by a [`LiveHub`]; closed
/// when dropped.
#[derive(Debug)]
pub struct Watch {
    rx: watch::Receiver<()>,
    hub: Weak<HubInner>,
    session: SessionKey,
    view: ViewId,
}

impl Watch {
    /// Returns when the context was woken since the last call (or since the watch was
    /// made). If the store is gone, never returns: the stream's keep-alive poll remains.
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let mut contexts = hub.lock();
        let Some(views) = contexts.sessions.get_mut(&self.session) else {
            return;
        };
        // This watch's receiver is still alive here: it is the last one at a count of 1.
        if views
            .get(&self.view)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            views.remove(&self.view);
        }
        if views.is_empty() {
            contexts.sessions.remove(&self.session);
            if let Some(interest) = &hub.interest {
                let _ = interest.send(Interest::Unwatched(self.session.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> SessionKey {
        SessionKey::generate().unwrap()
    }

    #[tokio::test]
    async fn interest_is_reported_per_session_once() {
        let (hub, mut rx) = LiveHub::with_interest();
        let (a, b) = (key(), key());
        let v1 = ViewId::from_static("app::one");
        let v2 = ViewId::from_static("app::two");
        let w1 = hub.watch(&a, &v1);
        let w2 = hub.watch(&a, &v2);
        let w3 = hub.watch(&b, &v1);
        assert_eq!(rx.recv().await, Some(Interest::Watched(a.clone())));
        assert_eq!(rx.recv().await, Some(Interest::Watched(b.clone())));
        drop(w1);
        assert!(rx.try_recv().is_err(), "a still has a watch");
        drop(w2);
        assert_eq!(rx.recv().await, Some(Interest::Unwatched(a.clone())));
        assert_eq!(hub.sessions(), vec![b.clone()]);
        drop(w3);
        assert_eq!(rx.recv().await, Some(Interest::Unwatched(b)));
        assert_eq!(hub.watched(), 0);
        assert!(
            hub.inner.lock().sessions.is_empty(),
            "no sender left behind"
        );
    }

    #[tokio::test]
    async fn a_wake_reaches_only_its_context_and_is_kept_until_awaited() {
        let hub = LiveHub::new();
        let s = key();
        let (v1, v2) = (
            ViewId::from_static("app::one"),
            ViewId::from_static("app::two"),
        );
        let mut on1 = hub.watch(&s, &v1);
        let mut also_on1 = hub.watch(&s, &v1);
        let mut on2 = hub.watch(&s, &v2);
        hub.wake(&s, &v1);
        hub.wake(&s, &v1);
        on1.changed().await;
        also_on1.changed().await;
        // Two wakes while nobody waited count once.
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), on1.changed());
        assert!(again.await.is_err());
        let other = tokio::time::timeout(std::time::Duration::from_millis(20), on2.changed());
        assert!(other.await.is_err(), "v2 was never woken");
        hub.wake_session(&s);
        on2.changed().await;
        drop(on1);
        hub.wake_all();
        also_on1.changed().await;
    }
}
