//! Live streams under test: each pumped by a task of its own into one channel, every
//! message stamped with when it arrived, so a test can wait for deliveries with a
//! generous deadline and tell which stream made them.
#![allow(clippy::panic, clippy::missing_panics_doc)]

use std::time::{Duration, Instant};

use messages_core::live::{LiveEvent, LiveOptions, LiveStream};
use messages_core::{Message, MessagesConfig, SessionKey, ViewId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A message a stream handed out.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The label the stream was pumped with.
    pub by: &'static str,
    /// The message.
    pub message: Message,
    /// When the stream handed it out.
    pub at: Instant,
}

/// Options under which only a change feed delivers within a minute: keep-alives (which
/// also poll) and polls a minute apart.
pub fn notify_only() -> LiveOptions {
    LiveOptions {
        keep_alive: Duration::from_secs(60),
        poll_interval: Duration::from_secs(60),
        ..LiveOptions::default()
    }
}

/// Runs `stream` on a task, sending each message it hands out to `to` (keep-alives are
/// skipped), until the stream ends or `to`'s receiver is dropped; the stream is dropped
/// with the task (what it took and did not hand out goes back).
pub fn pump(
    by: &'static str,
    mut stream: LiveStream,
    to: mpsc::UnboundedSender<Delivered>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                () = to.closed() => return,
                event = stream.next() => event,
            };
            match event {
                Some(LiveEvent::Message(message)) => {
                    let at = Instant::now();
                    if to.send(Delivered { by, message, at }).is_err() {
                        return;
                    }
                }
                Some(_) => {}
                None => return,
            }
        }
    })
}

/// A new browser's live stream, pumped.
#[derive(Debug)]
pub struct Pumped {
    /// The browser's session (made when the stream opened).
    pub session: SessionKey,
    /// Whether the store wakes the stream ([`LiveStream::is_notified`]).
    pub notified: bool,
    /// What it hands out.
    pub deliveries: mpsc::UnboundedReceiver<Delivered>,
    /// The pump; it ends once `deliveries` is dropped.
    pub task: JoinHandle<()>,
}

/// Opens the live stream of `view` for a new browser through `config` and pumps it.
pub fn open(config: &MessagesConfig, view: &ViewId) -> Pumped {
    let stream = config
        .begin([])
        .live(view, None)
        .unwrap_or_else(|e| panic!("live stream refused: {e}"));
    let (session, notified) = (stream.session().clone(), stream.is_notified());
    let (tx, deliveries) = mpsc::unbounded_channel();
    Pumped {
        session,
        notified,
        deliveries,
        task: pump("stream", stream, tx),
    }
}

/// The next delivery, failing the test if none comes `within`.
pub async fn next_within(
    deliveries: &mut mpsc::UnboundedReceiver<Delivered>,
    within: Duration,
) -> Delivered {
    match tokio::time::timeout(within, deliveries.recv()).await {
        Ok(Some(delivered)) => delivered,
        Ok(None) => panic!("every live stream ended"),
        Err(elapsed) => panic!("no live delivery within {within:?}: {elapsed}"),
    }
}
