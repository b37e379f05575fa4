//! The import job: a background task that reports on the dashboard with no request in
//! hand.

use std::sync::Arc;

use messages_core::{Message, MessageStore, SessionKey, View};

use crate::IMPORT_DELAY;

/// The message the import job adds when it is done.
pub const IMPORT_FINISHED: &str = "Import finished";

/// Shown instead of starting the job when messages live in the cookie only.
pub const JOBS_NEED_SERVER_STORE: &str = "Background jobs need a server store: with MESSAGES_STORE=cookie only a response can carry a message.";

/// Shown when the job could not be given a session (no randomness for a session key).
pub const IMPORT_NOT_STARTED: &str = "The import could not be started.";

/// The error shown on the dashboard when no new session key could be made at login.
pub const LOGIN_FAILED: &str = "You could not be logged in, please try again.";

/// Starts the import job on the current tokio runtime: after [`IMPORT_DELAY`] it adds
/// info [`IMPORT_FINISHED`] to `view` of `session`, straight into the server `store`
/// (out of band: the view named by the compiler with `view_of!`, the session from
/// `ViewMessages::expect_later`). A failed delivery is logged.
///
/// Needs a tokio runtime: axum's, or the actix-web worker's (actix-rt runs on tokio).
pub fn spawn_import(
    store: Arc<dyn MessageStore>,
    session: SessionKey,
    view: &'static View,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(IMPORT_DELAY).await;
        let done = Message::info(IMPORT_FINISHED);
        if let Err(e) = store.add(&session, view.id(), done).await {
            tracing::error!(error = %e, "import job could not deliver its message");
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use messages_core::MemoryStore;

    use super::*;

    static VIEW: View = View::new("test::dashboard", "dashboard", file!(), line!());

    #[tokio::test]
    async fn the_job_reports_after_its_delay() {
        let store = Arc::new(MemoryStore::new());
        let session = SessionKey::generate().unwrap();
        let started = Instant::now();
        let job = spawn_import(store.clone(), session.clone(), &VIEW);
        assert_eq!(store.count(&session, VIEW.id()).await.unwrap(), 0);
        job.await.unwrap();
        assert!(started.elapsed() >= IMPORT_DELAY);
        let taken = store.take(&session, VIEW.id()).await.unwrap();
        let texts: Vec<&str> = taken.iter().map(Message::text).collect();
        assert_eq!(texts, [IMPORT_FINISHED]);
    }
}
