//! HTTP-level helpers: an application served on a real loopback listener (by any
//! framework: [`TestServer::serve`] takes a serve function; [`TestServer::axum`] serves an
//! axum `Router`), a client with a cookie jar, and a parser of the example's
//! `<ul id="messages">` contract.
//!
//! ```no_run
//! # async fn demo(app: axum::Router) {
//! use messages_tests::http::TestServer;
//!
//! let server = TestServer::axum(app).await;
//! let mut browser = server.client();
//! let posted = browser.post_form("/settings", &[("name", "Ada")]).await;
//! assert_eq!(posted.status, 303);
//! let page = browser.get("/settings").await;
//! assert_eq!(page.messages()[0].text, "Settings saved for Ada.");
//! # }
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use messages_core::request::Committed;
use tokio::task::JoinHandle;

use crate::Browser;

/// An application served on `127.0.0.1:<free port>` until dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    guards: Vec<Box<dyn std::any::Any + Send>>,
}

impl TestServer {
    /// Binds a free loopback port and runs `serve` on it, on a task of the current tokio
    /// runtime (so a current-thread test runtime runs the application on the test's
    /// thread), until the server is dropped.
    ///
    /// `serve` gets the bound listener (non-blocking, as tokio's and actix-web's
    /// `listen` want it) and returns the future that serves it; an error it ends with is
    /// printed. Any framework fits:
    ///
    /// ```no_run
    /// # async fn demo(app: axum::Router) {
    /// use messages_tests::http::TestServer;
    ///
    /// let server = TestServer::serve(|listener| async move {
    ///     let listener = tokio::net::TcpListener::from_std(listener)?;
    ///     axum::serve(listener, app).await
    /// })
    /// .await;
    /// // actix-web: `|l| async move { HttpServer::new(app).listen(l)?.run().await }`
    /// # }
    /// ```
    ///
    /// # Panics
    /// If no loopback port can be bound (a test environment failure).
    #[allow(clippy::expect_used)]
    pub async fn serve<F, Fut>(serve: F) -> TestServer
    where
        F: FnOnce(std::net::TcpListener) -> Fut,
        Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("listener address");
        let listener = listener.into_std().expect("a std listener");
        let serving = serve(listener);
        let task = tokio::spawn(async move {
            if let Err(e) = serving.await {
                eprintln!("test server stopped: {e}");
            }
        });
        TestServer {
            addr,
            task,
            guards: Vec::new(),
        }
    }

    /// Serves an axum `app` on a free loopback port: [`serve`](TestServer::serve) with
    /// `axum::serve`.
    pub async fn axum(app: Router) -> TestServer {
        TestServer::serve(|listener| async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app).await
        })
        .await
    }

    /// The same as [`axum`](TestServer::axum), under its former name (kept for the
    /// callers not moved yet).
    pub async fn start(app: Router) -> TestServer {
        TestServer::axum(app).await
    }

    /// Keeps `guard` (a Redis server the app uses, say) alive as long as the server.
    #[must_use]
    pub fn keep(mut self, guard: impl std::any::Any + Send) -> TestServer {
        self.guards.push(Box::new(guard));
        self
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new client with an empty cookie jar: one browser.
    pub fn client(&self) -> HttpClient {
        HttpClient::new(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One browser: sends its cookies, keeps the ones responses set, follows no redirects.
///
/// A clone is an independent browser with a copy of the jar, unless the client was made
/// a [`tab`](HttpClient::tab): then its clones are tabs of one browser, sharing one jar.
#[derive(Debug, Clone)]
pub struct HttpClient {
    addr: SocketAddr,
    http: HyperClient<HttpConnector, String>,
    /// The cookies this browser holds (for a tab: the jar as of its last request).
    pub cookies: Browser,
    /// The jar shared by the tabs of this browser.
    shared: Option<Arc<Mutex<Browser>>>,
}

impl HttpClient {
    /// A client of the server at `addr`, with no cookies.
    pub fn new(addr: SocketAddr) -> HttpClient {
        HttpClient {
            addr,
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
            cookies: Browser::new(),
            shared: None,
        }
    }

    /// This browser as a tab: it and its clones share one cookie jar, as the tabs of a
    /// browser do, and may send requests concurrently. Each request sends the jar as it
    /// is when the request starts; its response's cookies go into the jar when it
    /// arrives.
    #[must_use]
    pub fn tab(mut self) -> HttpClient {
        let jar = std::mem::take(&mut self.cookies);
        self.shared = Some(Arc::new(Mutex::new(jar)));
        self
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path), String::new()).await
    }

    /// `POST path` with an `application/x-www-form-urlencoded` body.
    ///
    /// # Panics
    /// If the fields cannot be encoded (they always can).
    #[allow(clippy::expect_used)]
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).expect("form fields encode");
        let request = Request::post(path).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(request, body).await
    }

    /// Sends a request with this browser's cookies and keeps the cookies of the response.
    ///
    /// # Panics
    /// If the request is malformed or the server does not answer (test failures).
    #[allow(clippy::expect_used)]
    pub async fn send(&mut self, request: axum::http::request::Builder, body: String) -> Reply {
        let (parts, body) = self.open(request, body).await.into_parts();
        let bytes = body.collect().await.expect("the body arrives").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// `GET path` as an `EventSource` does (`Accept: text/event-stream`, and
    /// `Last-Event-ID` when given), with this browser's cookies; the response's cookies go
    /// into the jar when its headers arrive, and its events are read as they come.
    pub async fn events(&mut self, path: &str, last_event_id: Option<&str>) -> EventStream {
        let mut request = Request::get(path).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let (parts, body) = self.open(request, String::new()).await.into_parts();
        EventStream {
            status: parts.status,
            headers: parts.headers,
            body,
            buffer: String::new(),
        }
    }

    /// Sends the request and keeps the cookies of the response's headers; the body is
    /// the caller's to read.
    #[allow(clippy::expect_used)]
    async fn open(
        &mut self,
        request: axum::http::request::Builder,
        body: String,
    ) -> axum::http::Response<hyper::body::Incoming> {
        if let Some(jar) = &self.shared {
            self.cookies = lock(jar).clone();
        }
        let mut request = request.body(body).expect("a well-formed request");
        let uri = format!("http://{}{}", self.addr, request.uri());
        *request.uri_mut() = uri.parse().expect("a well-formed path");
        if let Some(cookie) = self.cookies.cookie_header() {
            let value = HeaderValue::from_str(&cookie).expect("cookie header");
            request.headers_mut().insert(COOKIE, value);
        }
        let response = self
            .http
            .request(request)
            .await
            .expect("the server answers");
        // The jar applies Set-Cookie values as it does for a committed request.
        let mut committed = Committed::default();
        committed.set_cookie = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        self.cookies.apply(&committed);
        if let Some(jar) = &self.shared {
            lock(jar).apply(&committed);
        }
        response
    }

    /// The value of one cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.jar.get(name).map(String::as_str)
    }
}

/// A Server-Sent Events response being read ([`HttpClient::events`]). Dropping it closes
/// the connection, as closing a tab does.
#[derive(Debug)]
pub struct EventStream {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    body: hyper::body::Incoming,
    buffer: String,
}

/// One event of an [`EventStream`]; comments (keep-alives) are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` field.
    pub id: Option<String>,
    /// The `event` field (`message` when absent).
    pub event: String,
    /// The `data` lines, joined with `\n`.
    pub data: String,
}

impl EventStream {
    /// The next event, or `None` when the stream ends or nothing comes `within`.
    pub async fn next_within(&mut self, within: std::time::Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, self.next())
            .await
            .ok()
            .flatten()
    }

    /// The next event (waits as long as it takes), `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
            }
            let frame = self.body.frame().await?.ok()?;
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// The body read so far and not yet parsed (for failure messages).
    pub fn pending(&self) -> &str {
        &self.buffer
    }
}

/// One SSE block; `None` for a block without data (comments, `retry`), which an
/// `EventSource` does not dispatch either.
fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: "message".to_owned(),
        data: String::new(),
    };
    for line in block.lines() {
        if line.is_empty() || line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_owned()),
            "event" => value.clone_into(&mut event.event),
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
            }
            _ => {}
        }
    }
    (!event.data.is_empty()).then_some(event)
}

/// The jar, also after a tab panicked while holding it (its state is whole between
/// statements).
fn lock(jar: &Mutex<Browser>) -> std::sync::MutexGuard<'_, Browser> {
    jar.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A response, its body read.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The first value of a header, if it has one and it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every text value of a header.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// `Location`, if any.
    pub fn location(&self) -> Option<&str> {
        self.header(LOCATION.as_str())
    }

    /// The `Set-Cookie` values.
    pub fn set_cookies(&self) -> Vec<String> {
        self.all(SET_COOKIE.as_str())
    }

    /// The messages the page shows; see [`parse_messages`].
    ///
    /// # Panics
    /// If the body breaks the contract.
    #[allow(clippy::panic)]
    pub fn messages(&self) -> Vec<ShownMessage> {
        match parse_messages(&self.body) {
            Ok(shown) => shown,
            Err(e) => panic!("{e}\n--- body ---\n{}", self.body),
        }
    }

    /// The texts of [`messages`](Reply::messages).
    pub fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|m| m.text).collect()
    }
}

/// What a load over HTTP added and what its readers were shown, by unique message text:
/// counts the messages lost, shown twice, or shown in another context (session and view)
/// than the one they were added to.
///
/// Shared by the tasks of a load (`&self` methods). Adds and reads may be recorded in any
/// order: a read can show a message before the response to its add has arrived.
///
/// ```
/// use messages_tests::http::Ledger;
///
/// let ledger = Ledger::default();
/// ledger.confirmed("s1/settings", "a");
/// ledger.confirmed("s1/settings", "b");
/// ledger.unconfirmed("s1/settings", "c");
/// ledger.shown("s1/settings", "a");
/// ledger.shown("s1/settings", "c");
/// ledger.shown("s2/settings", "b");
/// let tally = ledger.tally();
/// assert_eq!((tally.added, tally.delivered, tally.lost, tally.wrong_context), (2, 1, 1, 1));
/// assert_eq!(tally.unconfirmed_delivered, 1);
/// ```
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<LedgerInner>,
}

#[derive(Debug, Default)]
struct LedgerInner {
    /// Text → (context, whether the server confirmed the add).
    added: HashMap<String, (String, bool)>,
    /// (Context of the reader, text shown).
    shown: Vec<(String, String)>,
}

/// The counts of a [`Ledger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Adds the server confirmed.
    pub added: usize,
    /// Adds whose outcome the client does not know (refused or failed).
    pub unconfirmed: usize,
    /// Confirmed adds shown in their context.
    pub delivered: usize,
    /// Unconfirmed adds shown in their context anyway.
    pub unconfirmed_delivered: usize,
    /// Showings beyond the first of a message, in its context.
    pub duplicated: usize,
    /// Confirmed adds never shown in their context.
    pub lost: usize,
    /// Showings in another context than the message's, or of a text nobody added.
    pub wrong_context: usize,
}

impl Ledger {
    fn inner(&self) -> std::sync::MutexGuard<'_, LedgerInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The server confirmed the add of `text` to `context`: it must be shown there once.
    pub fn confirmed(&self, context: &str, text: &str) {
        self.inner()
            .added
            .insert(text.to_owned(), (context.to_owned(), true));
    }

    /// The add of `text` to `context` was refused or failed: it may be shown there once,
    /// or never.
    pub fn unconfirmed(&self, context: &str, text: &str) {
        self.inner()
            .added
            .insert(text.to_owned(), (context.to_owned(), false));
    }

    /// A reader in `context` was shown `text`.
    pub fn shown(&self, context: &str, text: &str) {
        self.inner()
            .shown
            .push((context.to_owned(), text.to_owned()));
    }

    /// The confirmed adds not shown in their context so far, as (context, text), sorted.
    pub fn lost(&self) -> Vec<(String, String)> {
        let inner = self.inner();
        let shown: std::collections::HashSet<(&str, &str)> = inner
            .shown
            .iter()
            .map(|(r, t)| (r.as_str(), t.as_str()))
            .collect();
        let mut lost: Vec<(String, String)> = inner
            .added
            .iter()
            .filter(|(text, (context, confirmed))| {
                *confirmed && !shown.contains(&(context.as_str(), text.as_str()))
            })
            .map(|(text, (context, _))| (context.clone(), text.clone()))
            .collect();
        lost.sort();
        lost
    }

    /// The adds shown more than once in their context so far, as (context, text), sorted.
    pub fn duplicated(&self) -> Vec<(String, String)> {
        let inner = self.inner();
        let mut times: HashMap<(&str, &str), usize> = HashMap::new();
        for (reader, text) in &inner.shown {
            *times.entry((reader.as_str(), text.as_str())).or_default() += 1;
        }
        let mut twice: Vec<(String, String)> = times
            .into_iter()
            .filter(|&((reader, text), n)| {
                n > 1 && inner.added.get(text).is_some_and(|(c, _)| c == reader)
            })
            .map(|((reader, text), _)| (reader.to_owned(), text.to_owned()))
            .collect();
        twice.sort();
        twice
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let inner = self.inner();
        let mut times: HashMap<&str, usize> = HashMap::new();
        let mut tally = Tally::default();
        for (reader, text) in &inner.shown {
            match inner.added.get(text) {
                Some((context, _)) if context == reader => {
                    *times.entry(text.as_str()).or_default() += 1;
                }
                _ => tally.wrong_context += 1,
            }
        }
        for (text, (_, confirmed)) in &inner.added {
            let shown = times.get(text.as_str()).copied().unwrap_or(0);
            tally.duplicated += shown.saturating_sub(1);
            match (confirmed, shown > 0) {
                (true, true) => tally.delivered += 1,
                (true, false) => tally.lost += 1,
                (false, true) => tally.unconfirmed_delivered += 1,
                (false, false) => {}
            }
            if *confirmed {
                tally.added += 1;
            } else {
                tally.unconfirmed += 1;
            }
        }
        tally
    }
}

/// One `<li>` of a `<ul id="messages">`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownMessage {
    /// The level tag (`class="message {tag}"`, `data-level`).
    pub level: String,
    /// `data-id`.
    pub id: String,
    /// The text, unescaped.
    pub text: String,
    /// `data-title`, unescaped.
    pub title: Option<String>,
    /// `data-autoclose` is present.
    pub autoclose: bool,
}

/// Parses the messages list of a page, checking the contract: one `<ul id="messages">`
/// (present even when empty), each item starting exactly
/// `<li class="message {tag}" data-level="{tag}" data-id="{id}"`, its only content the
/// escaped text (no raw `<` inside).
///
/// # Errors
/// What breaks the contract.
pub fn parse_messages(html: &str) -> Result<Vec<ShownMessage>, String> {
    const OPEN: &str = "<ul id=\"messages\"";
    let start = html.find(OPEN).ok_or("no <ul id=\"messages\">")?;
    if html[start + OPEN.len()..].contains(OPEN) {
        return Err("two <ul id=\"messages\">".into());
    }
    let list = &html[start..];
    let list = &list[..list
        .find("</ul>")
        .ok_or("<ul id=\"messages\"> is not closed")?];
    let mut shown = Vec::new();
    for item in list.split("<li ").skip(1) {
        let (tag, rest) = item.split_once('>').ok_or("unclosed <li>")?;
        let text = rest.split_once("</li>").ok_or("<li> without </li>")?.0;
        if text.contains('<') {
            return Err(format!("markup inside a message: {text:?}"));
        }
        let attrs = attributes(tag)?;
        let names: Vec<&str> = attrs.iter().map(|(n, _)| n.as_str()).collect();
        if names.get(..3) != Some(&["class", "data-level", "data-id"][..]) {
            return Err(format!("<li> attributes out of contract: {tag:?}"));
        }
        let level = attrs[1].1.clone().unwrap_or_default();
        if attrs[0].1.as_deref() != Some(&format!("message {level}")) {
            return Err(format!("class does not match data-level: {tag:?}"));
        }
        let find = |name: &str| attrs.iter().find(|(n, _)| n == name);
        shown.push(ShownMessage {
            level,
            id: attrs[2].1.clone().unwrap_or_default(),
            text: unescape(text),
            title: find("data-title").and_then(|(_, v)| v.clone()),
            autoclose: find("data-autoclose").is_some(),
        });
    }
    Ok(shown)
}

/// `name="value"` and bare `name` attributes, in order, values unescaped.
fn attributes(tag: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut rest = tag.trim();
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..end].to_owned();
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix("=\"") {
            let close = after
                .find('"')
                .ok_or_else(|| format!("unquoted value in {tag:?}"))?;
            out.push((name, Some(unescape(&after[..close]))));
            rest = &after[close + 1..];
        } else {
            out.push((name, None));
        }
        rest = rest.trim_start();
    }
    Ok(out)
}

/// Undoes HTML escaping of text (the entities minijinja writes, and numeric ones).
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let entity = rest.find(';').map(|semi| (&rest[1..semi], semi));
        let decoded = entity.and_then(|(name, semi)| {
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi))
        });
        if let Some((c, semi)) = decoded {
            out.push(c);
            rest = &rest[semi + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_the_contract() {
        let html = "<p>x</p><ul id=\"messages\">\n<li class=\"message info\" data-level=\"info\" data-id=\"01\">a &lt;b&gt; &amp;&#x2f;&#39;</li>\n\
                    <li class=\"message success\" data-level=\"success\" data-id=\"02\" data-title=\"T&quot;\" data-autoclose>ok</li>\n</ul>";
        let shown = parse_messages(html).unwrap();
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0].text, "a <b> &/'");
        assert_eq!(
            (shown[0].level.as_str(), shown[0].id.as_str()),
            ("info", "01")
        );
        assert_eq!(shown[1].title.as_deref(), Some("T\""));
        assert!(shown[1].autoclose && !shown[0].autoclose);
        assert_eq!(parse_messages("<ul id=\"messages\">\n</ul>").unwrap(), []);
    }

    #[test]
    fn refuses_what_breaks_it() {
        assert!(parse_messages("<ul></ul>").is_err());
        let swapped = "<ul id=\"messages\"><li data-level=\"info\" class=\"message info\" data-id=\"1\">a</li></ul>";
        assert!(parse_messages(swapped).is_err());
        let raw = "<ul id=\"messages\"><li class=\"message info\" data-level=\"info\" data-id=\"1\"><b>a</b></li></ul>";
        assert!(parse_messages(raw).is_err());
        let mismatch = "<ul id=\"messages\"><li class=\"message error\" data-level=\"info\" data-id=\"1\">a</li></ul>";
        assert!(parse_messages(mismatch).is_err());
    }
}
