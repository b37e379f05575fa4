//! One view's messages in a request, and the list a read returns.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Serialize, Serializer};

use super::Messages;
use crate::{Message, Result, SessionKey, ViewId};

/// The messages of one view in one request — what `self` is inside a
/// `#[with_messages]` handler.
///
/// Adding is synchronous and queued until the response; reading is lazy: nothing is read
/// from the store until [`messages`](ViewMessages::messages), [`peek`](ViewMessages::peek) or
/// [`count`](ViewMessages::count) is called, and a request that calls none of them does no
/// store I/O and sends no messages cookie.
#[derive(Clone)]
pub struct ViewMessages {
    request: Messages,
    view: ViewId,
}

impl fmt::Debug for ViewMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewMessages")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

impl ViewMessages {
    pub(super) fn new(request: Messages, view: ViewId) -> ViewMessages {
        ViewMessages { request, view }
    }

    /// The view this context is bound to.
    pub fn view(&self) -> &ViewId {
        &self.view
    }

    /// The request this context belongs to.
    pub fn request(&self) -> &Messages {
        &self.request
    }

    /// Adds a message for this view, stored when the response is committed — for the next
    /// request of the view, or for this one if it reads messages afterwards. Messages
    /// below the configured minimum level are ignored.
    pub fn add_message(&self, message: Message) {
        let config = &self.request.inner.config;
        if message.level() < config.min_level {
            tracing::debug!(level = %message.level(), "messages: below the minimum level, ignored");
            return;
        }
        let mut st = self.request.state();
        st.touched = true;
        let vs = st.views.entry(self.view.clone()).or_default();
        vs.queued.push(message);
        if vs.queued.len() > config.queue_cap {
            let excess = vs.queued.len() - config.queue_cap;
            vs.queued.drain(..excess);
            if !vs.overflowed {
                vs.overflowed = true;
                tracing::warn!(view = %self.view, cap = config.queue_cap, "messages: too many adds in one request, oldest dropped");
            }
        }
    }

    /// This view's messages, in arrival order: the stored ones, then those added so far
    /// in this request. Loading reserves them for this request (a concurrent request does not get
    /// them); iterating or serializing the list consumes them. A list never iterated, or
    /// a failed response, keeps them for the next request.
    pub async fn messages(&self) -> MessageList {
        self.request.load(&self.view).await;
        let mut st = self.request.state();
        let vs = st.views.entry(self.view.clone()).or_default();
        let mut queued = std::mem::take(&mut vs.queued);
        vs.loaded.append(&mut queued);
        let rendered = Arc::new(AtomicBool::new(false));
        vs.lists.push((Arc::clone(&rendered), vs.loaded.len()));
        MessageList {
            messages: vs.loaded.clone(),
            rendered,
        }
    }

    /// This view's messages for an htmx request (`HX-Request: true`): the
    /// `<ul id="messages">` fragment and the `HX-Trigger` value with the same messages
    /// ([`Htmx`](crate::present::Htmx)); consumes them, like rendering a page. Answer it
    /// as is (the axum and actix-web adapters implement their response traits for it).
    pub async fn htmx(&self, oob: bool) -> crate::present::Htmx {
        let shown = self
            .messages()
            .await
            .into_iter()
            .map(crate::present::Shown::from)
            .collect();
        crate::present::Htmx::new(shown, oob)
    }

    /// This view's messages without consuming or reserving them.
    pub async fn peek(&self) -> Vec<Message> {
        self.request.peek(&self.view).await
    }

    /// How many messages [`messages`](ViewMessages::messages) would return now.
    pub async fn count(&self) -> usize {
        self.request.count(&self.view).await
    }

    /// Drops this view's messages unread, stored and queued.
    pub fn discard(&self) {
        let mut st = self.request.state();
        st.touched = true;
        let vs = st.views.entry(self.view.clone()).or_default();
        vs.loaded.clear();
        vs.lists.clear();
        vs.queued.clear();
        vs.is_loaded = true;
        vs.discard = true;
    }

    /// Announces messages that will be added out of band (by a background job) for this
    /// view: with [`Storage::fallback`](crate::Storage::fallback) the cookie then tells a later read to ask the server
    /// store, and keeps telling every read of the view until the server store has
    /// delivered (a read before the job has written loses nothing). Other storage needs no
    /// announcement. Makes sure the session exists.
    ///
    /// # Errors
    /// [`Error::Random`](crate::Error::Random) if no session key can be made.
    pub fn expect_later(&self) -> Result<SessionKey> {
        let session = self.request.ensure_session()?;
        let mut st = self.request.state();
        st.views.entry(self.view.clone()).or_default().expect_later = true;
        Ok(session)
    }
}

/// The messages of a view, read by [`ViewMessages::messages`].
///
/// Iterating (`for m in &list`, [`iter`](MessageList::iter)), serializing, or
/// [`into_vec`](MessageList::into_vec) consumes them: they will not be shown again.
/// Exactly the messages this list holds are consumed: one added to the view after the list
/// was loaded is not, even if a later list of the view holding it is never rendered.
/// [`len`](MessageList::len) and [`is_empty`](MessageList::is_empty) do not.
#[derive(Clone)]
pub struct MessageList {
    messages: Vec<Message>,
    /// Shared with the request (and with clones of this list): set once rendered.
    rendered: Arc<AtomicBool>,
}

impl fmt::Debug for MessageList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.messages).finish()
    }
}

impl MessageList {
    fn consume(&self) {
        self.rendered.store(true, Ordering::Release);
    }
    /// How many messages; does not consume.
    pub fn len(&self) -> usize {
        self.messages.len()
    }
    /// Whether there are none; does not consume.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
    /// Iterates, oldest first; consumes.
    pub fn iter(&self) -> std::slice::Iter<'_, Message> {
        self.consume();
        self.messages.iter()
    }
    /// The messages, oldest first; consumes.
    pub fn into_vec(self) -> Vec<Message> {
        self.consume();
        self.messages
    }
}

impl<'a> IntoIterator for &'a MessageList {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl IntoIterator for MessageList {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.into_vec().into_iter()
    }
}

impl Serialize for MessageList {
    /// A JSON array of the messages; consumes.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.consume();
        self.messages.serialize(serializer)
    }
}
