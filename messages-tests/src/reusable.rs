//! A **reusable component** that gives feedback through messages: the kind of code a
//! library ships for applications to call from their handlers, whatever web framework
//! they use. It names no framework: it takes the request's [`Messages`] — the one type
//! every integration hands to handlers (`messages_core::axum`, `messages_core::actix`,
//! or any adapter built on [`messages_core::request`]) — and works with [`ViewMessages`],
//! [`Message`] and [`ViewId`] only.
//!
//! `tests/http.rs` (`http::reusable::*`) calls it from an axum handler and from an
//! actix-web handler and checks that both show the same thing.
//!
//! ```
//! use messages_core::{MemoryStore, MessagesConfig};
//! use messages_tests::reusable::{record_import, recent};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = MessagesConfig::new(MemoryStore::new());
//! // One request (what a framework's middleware begins), the browser's cookies in hand.
//! let request = config.begin([]);
//! assert_eq!(record_import(&request, 3).await, 1);
//! assert_eq!(recent(&request).await, ["success: Imported 3 rows."]);
//! # }
//! ```

use messages_core::{Message, Messages, ViewId, ViewMessages};

/// The view the component reports on: its own, so its messages never show up on an
/// application's pages by accident.
pub const IMPORTS: ViewId = ViewId::from_static("reusable::imports");

/// What an import of `rows` rows reports: success "Imported {rows} rows." (titled
/// "Import"), or a warning for an empty file.
pub fn report(rows: usize) -> Message {
    match rows {
        0 => Message::warning("The file held no rows."),
        1 => Message::success("Imported 1 row.").with_title("Import"),
        n => Message::success(format!("Imported {n} rows.")).with_title("Import"),
    }
}

/// Adds the [`report`] of an import of `rows` rows to `view` (any view of the
/// application's, for a component that reports where the application says).
pub fn report_to(view: &ViewMessages, rows: usize) {
    view.add_message(report(rows));
}

/// Records an import of `rows` rows for the request's browser, on [`IMPORTS`]; returns
/// how many import reports now wait for that view, this one included (counted, not
/// consumed).
pub async fn record_import(messages: &Messages, rows: usize) -> usize {
    let imports = messages.context(&IMPORTS);
    report_to(&imports, rows);
    imports.count().await
}

/// The reports waiting for the request's browser on [`IMPORTS`], oldest first, as
/// `"{level}: {text}"` lines. Consumes them: the next call shows only newer ones.
pub async fn recent(messages: &Messages) -> Vec<String> {
    let list = messages.context(&IMPORTS).messages().await;
    list.iter()
        .map(|m| format!("{}: {}", m.level_tag(), m.text()))
        .collect()
}
