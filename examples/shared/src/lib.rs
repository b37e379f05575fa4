//! What the two example applications of `messages-core` share: the axum one
//! (`messages-example`, `examples/axum-app`) and the actix-web 4 one
//! (`messages-example-actix`, `examples/actix-app`). Their HTTP contract is written once,
//! below; this crate holds everything of it that is not routing, extraction or building a
//! response: the templates and stylesheet ([`Templates`], [`STYLESHEET`]), the
//! configuration from environment variables ([`config_from`], [`port_from`],
//! [`startup_from_env`]), the forms and what they add ([`SettingsForm`], [`NotesForm`],
//! [`parse_notes`], [`FragmentQuery`]), the texts, the view ids ([`SETTINGS_VIEW`],
//! [`DASHBOARD_VIEW`]) and the import job ([`spawn_import`]). It depends on no web
//! framework.
//!
//! ```sh
//! cargo run -p messages-example         # axum,      http://127.0.0.1:3000
//! cargo run -p messages-example-actix   # actix-web, the same contract
//! examples/compare.sh                   # serves both, diffs every route of the contract
//! ```
//!
//! # The HTTP contract
//!
//! | Route | What it does |
//! |---|---|
//! | `GET /` | `303` to `/dashboard` |
//! | `GET /settings` | a form (field `name`) and the settings view's messages |
//! | `POST /settings` | adds success "Settings saved for {name}." to the settings view, `303` to `/settings` |
//! | `GET /dashboard` | the dashboard view's messages, the notes form, the import button |
//! | `POST /notes` | adds `count` (1..=200) info messages "{text} #{i}" to the dashboard view, `303` to `/dashboard`; with `HX-Request: true` instead a `200` whose body is the dashboard's `<ul id="messages">` fragment with every pending dashboard message, the new notes last (consumed), and whose `hx-trigger` header carries the same messages as `{"messages":[…]}` (items as in the JSON route; ASCII, non-ASCII as `\u` escapes) |
//! | `POST /jobs/import` | a background task adds info "Import finished" to the dashboard view 300 ms later, `303` to `/dashboard` |
//! | `POST /login` | (field `name`) rotates the session — a new session key, every pending message carried over on its own view, in order; the old key sees nothing afterwards, and what is added under it never reaches this browser — adds success "Welcome, {name}." to the dashboard view, `303` to `/dashboard` (a new `set-cookie` session value); a blank name adds error [`NAME_MISSING`] instead and rotates nothing |
//! | `POST /logout` | ends the session (its messages are dropped, the session cookie removed), `303` to `/settings` |
//! | `GET /api/dashboard/messages` | the dashboard view's messages as JSON (consuming, like the page) |
//! | `GET /dashboard/messages` | only the `<ul id="messages">` fragment of the dashboard (consuming) |
//! | `GET /dashboard/events` | `200` `text/event-stream`: each message of the dashboard view of this browser's session, as it arrives, as an event `message` whose `id` is the message id and whose `data` is the message's JSON (an item of the JSON route); a pushed message is consumed. A `: keep-alive` comment every 15 s. With cookie-only storage a `501` with a `text/plain` reason (see [Live](crate#live)) |
//! | `GET /views` | the registry of message-bearing views as JSON: `id`, `name`, `file`, `line` |
//! | `GET /static/app.css` | the stylesheet |
//!
//! Pages and the fragment are `200` `text/html; charset=utf-8`, the JSON routes
//! `application/json`, the stylesheet `text/css; charset=utf-8` with
//! `cache-control: public, max-age=3600`; a redirect is a `303` with `location` and an
//! empty body. Every `GET` route answers `HEAD` the same way without the body (a `HEAD`
//! of a page consumes its messages like a `GET`). Another method on a route of the table
//! is a `405` with an empty body and `allow: GET,HEAD` (`GET,HEAD,POST` on `/settings`,
//! `POST` on `/notes`, `/jobs/import`, `/login` and `/logout`); any other path a `404`
//! with an empty body. Paths are matched as sent: the contract does not cover
//! percent-encoded spellings of its paths (`/%73ettings`), which actix-web decodes and
//! routes (RFC 3986 calls them the same path) and axum answers with a `404`.
//!
//! A response that read or added messages carries `vary: Cookie` and
//! `cache-control: private`, and `set-cookie` when the session or the messages cookie
//! changed; one that did not (`/`, `/views`, the stylesheet, a rejected request) carries
//! none of them.
//!
//! Every page renders its view's messages as `<ul id="messages">` (present, empty or
//! not) with one `<li class="message {tag}" data-level="{tag}" data-id="{id}">{text}</li>`
//! per message, oldest first, the text HTML-escaped. A message with a title also carries
//! `data-title="{title}"` (the stylesheet shows it before the text), one that closes by
//! itself `data-autoclose` (a small inline script removes it after 3 s).
//!
//! Bad form input never fails a request: `POST /notes` with an empty text or a `count`
//! that is not a number from 1 to 200 redirects to the dashboard like a good one and
//! shows an error message there, and `POST /settings` with an empty name shows one on
//! the settings page. Only a request that is not a form at all is refused, with a
//! `text/plain; charset=utf-8` body (axum's rejections; the actix-web app answers the
//! same):
//!
//! | Request | Status | Body |
//! |---|---|---|
//! | `POST /settings`, `/notes` or `/login` whose `content-type` does not start with `application/x-www-form-urlencoded` | `415` | ``Form requests must have `Content-Type: application/x-www-form-urlencoded` `` |
//! | a form field given twice | `422` | ``Failed to deserialize form body: duplicate field `name` `` |
//! | a form body over 2 MiB | `413` | `Failed to buffer the request body: length limit exceeded` |
//! | `GET /dashboard/messages` with `oob` other than `true` or `false` | `400` | ``Failed to deserialize query string: oob: provided string was not `true` or `false` `` |
//!
//! With cookie-only storage (`MESSAGES_STORE=cookie`) a background job has nowhere to put
//! its message, since only a response can carry the cookie: `POST /jobs/import` then
//! shows a warning ([`JOBS_NEED_SERVER_STORE`]) instead of starting the job.
//!
//! # View ids
//!
//! | View | Id | Routes |
//! |---|---|---|
//! | `settings` | `messages_example::settings` ([`SETTINGS_VIEW`]) | `/settings` |
//! | `dashboard` | `messages_example::dashboard` ([`DASHBOARD_VIEW`]) | `/dashboard`, `/dashboard/messages`, `/dashboard/events`, `/api/dashboard/messages`, `/notes`, `/jobs/import`, `/login` |
//!
//! Both apps bind their messages to these ids: the axum app derives them from its module
//! path (`#[with_messages]` at the root of `messages_example`), the actix-web app states
//! them (`#[with_messages(view = "messages_example::settings")]`); each app's tests check
//! its ids against these constants. A view id is part of what is stored, so a browser's
//! messages cookie and a session's messages in Redis or a database mean the same to either
//! app: behind one domain and one `MESSAGES_KEY`, Redis or database, either may answer any
//! request.
//!
//! `GET /views` lists every message-bearing view of the program, sorted by id: in either
//! app `settings` and `dashboard`, with the `file` and `line` of the handler that declares
//! each (`examples/axum-app/src/lib.rs` or `examples/actix-app/src/lib.rs`), the one part
//! of the two apps' responses that differs by design. Link one app per program: a program
//! linking both has each id declared twice (`messages_core::check_views()` reports it).
//!
//! # JSON, for scripts
//!
//! `GET /api/dashboard/messages` answers a JSON array, oldest first, and consumes the
//! messages like the page does:
//!
//! ```text
//! [{"id":"0000000000000005a3c1…","level":"success","text":"Saved.","title":null,
//!   "autoclose":false,"tags":[],"created_at":1767225600000}]
//! ```
//!
//! # HTMX
//!
//! `GET /dashboard/messages` returns only the list, so htmx can refresh it in place:
//!
//! ```html
//! <ul id="messages" hx-get="/dashboard/messages" hx-trigger="every 5s" hx-swap="outerHTML"></ul>
//! ```
//!
//! `GET /dashboard/messages?oob=true` adds `hx-swap-oob="true"` to the list, for a
//! response that updates the messages beside its main target. The page itself needs no
//! htmx: its "Check for new messages" button does the same with `fetch`.
//!
//! A form posted by htmx gets the messages back in the same response, with no redirect:
//!
//! ```html
//! <form hx-post="/notes" hx-target="#messages" hx-swap="outerHTML">…</form>
//! ```
//!
//! `POST /notes` with `HX-Request: true` answers the fragment (for `hx-target`) and the
//! same messages in `HX-Trigger` (for a script: `document.body.addEventListener("messages",
//! e => …e.detail.value…)`). A redirect (`303`) or an `HX-Redirect` response never
//! consumes messages it read: they stay for the page it leads to.
//!
//! # Live
//!
//! The dashboard subscribes to `GET /dashboard/events` with `EventSource` and appends
//! each pushed message to its list: "Import finished" appears without a reload. A pushed
//! message is taken from the store, so of two open dashboards of one browser exactly one
//! shows it, and a later page load does not; a message added while no dashboard is open
//! waits for the next load. A reconnecting `EventSource` sends `Last-Event-ID`, and that
//! message is not sent again. Each session keeps at most 8 streams (a new one closes its
//! oldest), the process 10 000; at shutdown (Ctrl-C) both binaries close every stream
//! first, so the graceful stop does not wait on them.
//!
//! # Start-up
//!
//! Both binaries read `MESSAGES_STORE`, `MESSAGES_KEY`, `REDIS_URL` and `DATABASE_URL`
//! ([`config_from`]): `MESSAGES_STORE` is `memory` (the default), `cookie`, `fallback`,
//! `redis` (with `REDIS_URL`), `postgres` (with `DATABASE_URL`,
//! `postgres://user@host:5432/db`) or `sqlite` (`DATABASE_URL` a `sqlite:///path/file.db`
//! URL or a path, by default `messages.db` next to the binary, [`default_sqlite_path`]);
//! the SQL stores create their tables at start-up when they are missing. Then they read
//! `PORT` ([`port_from`]: default 3000, `0` for a free port), listen on `127.0.0.1`,
//! print `messages example listening on http://127.0.0.1:{port}/` on stdout, log to
//! stderr as `RUST_LOG` says (default `info`, see [`init_tracing`]), and stop gracefully
//! on Ctrl-C (exit status 0). A refused configuration is one error line and exit
//! status 1.
//!
//! The axum binary also reads `MESSAGES_SESSION`: `tower-sessions` makes the app's own
//! tower-sessions session the messages identity (one cookie, `id`; sessions in memory;
//! a server store needed), `messages` or unset keeps the messages session cookie.
//! tower-sessions is a tower layer, so the actix-web binary has no such variant.

use std::time::Duration;

use messages_core::ViewId;

mod config;
mod forms;
mod job;
mod render;
mod startup;
#[doc(hidden)]
pub mod testing;

pub use config::{
    ConfigError, DEFAULT_PORT, DEFAULT_SQLITE_FILE, config_from, config_from_env,
    default_sqlite_path, port_from,
};
pub use forms::{FragmentQuery, LoginForm, NAME_MISSING, NotesForm, SettingsForm, parse_notes};
pub use job::{
    IMPORT_FINISHED, IMPORT_NOT_STARTED, JOBS_NEED_SERVER_STORE, LOGIN_FAILED, spawn_import,
};
pub use render::{RenderError, STYLESHEET, ShownMessage, Templates, shown};
pub use startup::{
    Startup, init_tracing, listening_line, shutdown_signal, startup, startup_from_env,
};

/// Most notes one `POST /notes` adds.
pub const MAX_NOTES: u32 = 200;

/// How long the import job runs before it reports.
pub const IMPORT_DELAY: Duration = Duration::from_millis(300);

/// The id of the settings view (see [View ids](crate#view-ids)).
pub const SETTINGS_VIEW: ViewId = ViewId::from_static("messages_example::settings");

/// The id of the dashboard view, which the fragment, the JSON route, the notes form and
/// the import job share (see [View ids](crate#view-ids)).
pub const DASHBOARD_VIEW: ViewId = ViewId::from_static("messages_example::dashboard");

/// The `content-type` of pages and of the fragment.
pub const HTML_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The `content-type` of [`STYLESHEET`].
pub const STYLESHEET_CONTENT_TYPE: &str = "text/css; charset=utf-8";

/// The `cache-control` of [`STYLESHEET`] (the messages middleware leaves it alone: the
/// stylesheet never touches messages).
pub const STYLESHEET_CACHE_CONTROL: &str = "public, max-age=3600";

/// The `content-type` of a rejection's (and of a `500`'s) text body.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Most bytes of a form body (axum's default body limit).
pub const MAX_FORM_BYTES: usize = 2 * 1024 * 1024;
