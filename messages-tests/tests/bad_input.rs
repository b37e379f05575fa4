//! The bad-input catalogue at the request-context level: hostile `Cookie` headers and
//! oversized messages go through `MessagesConfig::begin` → `context` → `commit`, for
//! memory, cookie and fallback storage. Each test is one row of the table in
//! `RELIABILITY.md` (what is sent, what must happen).
//!
//! Every response is checked the same way: its `Set-Cookie` values are `HttpOnly`,
//! `SameSite=Lax`, within the cookie budget, and either a valid session key or a removal.
//! Signed-cookie attacks (forged, bit-flipped, replayed, expired cookies) are the rows of
//! `cookie_store.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;

use messages_core::Storage;
use messages_core::{
    CookieStore, InvalidViewId, MAX_TAG_BYTES, MAX_TAGS, MAX_TEXT_BYTES, MAX_TITLE_BYTES,
    MAX_VIEW_ID_BYTES, MemoryStore, Message, MessagesConfig, SessionKey, ViewId,
};
use messages_tests::store_harness::LogCapture;
use messages_tests::{Browser, CountingStore};

const VIEW: ViewId = ViewId::from_static("bad_input::view");
const KEY: &[u8] = b"bad-input catalogue signing key, 32+ bytes";
const BUDGET: usize = 2048;
const SESSION: &str = "messages_session";
const MESSAGES: &str = "messages";

/// The three storages, fresh.
fn storages() -> [(&'static str, MessagesConfig); 3] {
    let cookie = || CookieStore::new([KEY]).unwrap().budget(BUDGET).unwrap();
    [
        ("memory", MessagesConfig::new(MemoryStore::new())),
        ("cookie", MessagesConfig::new(cookie())),
        (
            "fallback",
            MessagesConfig::new(Storage::fallback(cookie(), MemoryStore::new())),
        ),
    ]
}

/// Checks a response's cookies and applies them to `browser`.
async fn finish(browser: &mut Browser, request: &messages_core::Messages, what: &str) {
    let done = browser.finish(request, true).await;
    for set in &done.set_cookie {
        let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
        let (name, value) = pair.split_once('=').unwrap();
        assert!(attributes.contains("HttpOnly"), "{what}: {set}");
        assert!(attributes.contains("SameSite=Lax"), "{what}: {set}");
        let removal = attributes.contains("Max-Age=0");
        assert_eq!(removal, value.is_empty(), "{what}: {set}");
        match name {
            SESSION => assert!(
                removal || value.parse::<SessionKey>().is_ok(),
                "{what}: {set}"
            ),
            MESSAGES => assert!(value.len() <= BUDGET, "{what}: {} bytes", value.len()),
            other => panic!("{what}: unexpected cookie {other}"),
        }
    }
}

/// Sends `headers` as the request's `Cookie` headers, reads the view, commits: what was
/// shown, after checking the response. The browser's own cookies go first.
async fn read_with(
    browser: &mut Browser,
    config: &MessagesConfig,
    headers: &[&str],
    what: &str,
) -> Vec<String> {
    let own = browser.cookie_header().unwrap_or_default();
    let request = config.begin(std::iter::once(own.as_str()).chain(headers.iter().copied()));
    let shown = request.context(&VIEW).messages().await.into_vec();
    finish(browser, &request, what).await;
    shown.iter().map(|m| m.text().to_owned()).collect()
}

/// A browser that holds one message for [`VIEW`] under `config`.
async fn browser_with(config: &MessagesConfig, text: &str) -> Browser {
    let mut browser = Browser::new();
    let request = browser.begin(config);
    request.context(&VIEW).add_message(Message::info(text));
    finish(&mut browser, &request, text).await;
    browser
}

/// Whether one of the captured warnings contains `what`.
fn warned(logs: &LogCapture, what: &str) -> bool {
    logs.warnings().iter().any(|w| w.contains(what))
}

/// A valid session key other than any in use.
fn key() -> String {
    SessionKey::generate().unwrap().as_str().to_owned()
}

#[tokio::test]
async fn huge_cookie_headers_are_parsed_and_ignored() {
    let junk_pairs = "aaaaaaa=bbbbbbbbbbbb; ".repeat((1 << 20) / 22 + 1); // 1 MiB
    let one_token = "x".repeat(1 << 20);
    let huge_session = format!("{SESSION}={}", "A".repeat(1 << 20));
    let huge_messages = format!("{MESSAGES}=v1.{}", "A".repeat(1 << 20));
    for (name, config) in storages() {
        // Each huge shape, on a fresh browser: nothing shown, nothing but removals sent.
        for (shape, header) in [
            ("many pairs", junk_pairs.as_str()),
            ("one token", one_token.as_str()),
            ("session value", huge_session.as_str()),
            ("messages value", huge_messages.as_str()),
        ] {
            assert!(header.len() >= 1 << 20);
            let mut fresh = Browser::new();
            let what = format!("{name}/{shape}");
            assert!(
                read_with(&mut fresh, &config, &[header], &what)
                    .await
                    .is_empty()
            );
            assert!(fresh.jar.is_empty(), "{what}: {:?}", fresh.jar);
        }
        // Behind a megabyte of other cookies, the visitor's own cookies still work.
        let mut browser = browser_with(&config, "kept").await;
        let own = browser.cookie_header().unwrap();
        let header = format!("{junk_pairs}{own}");
        let request = config.begin([header.as_str()]);
        let shown = request.context(&VIEW).messages().await.into_vec();
        assert_eq!(shown.len(), 1, "{name}");
        finish(&mut browser, &request, name).await;
    }
}

#[tokio::test]
async fn many_cookies_of_one_name_cannot_displace_ours() {
    for (name, config) in storages() {
        let mut first = browser_with(&config, "first").await;
        let second = browser_with(&config, "second").await;
        let (a, b) = (
            first.cookie_header().unwrap(),
            second.cookie_header().unwrap(),
        );
        // 10 000 copies of the other browser's cookies after our own, in one header and in
        // 10 000 headers: the first session cookie counts, and the other browser's messages
        // cookies do not verify under it (only the first few are even checked).
        let one_header = format!("{a}; {}", vec![b.as_str(); 10_000].join("; "));
        let request = config.begin([one_header.as_str()]);
        assert_eq!(request.context(&VIEW).count().await, 1, "{name}");
        assert_eq!(
            request.context(&VIEW).peek().await[0].text(),
            "first",
            "{name}"
        );
        request.commit(true).await;
        let mut headers = vec![a.as_str()];
        headers.extend(vec![b.as_str(); 10_000]);
        first.jar.clear();
        let shown = read_with(&mut first, &config, &headers, name).await;
        assert_eq!(shown, ["first"], "{name}");
        // The other browser's message stayed where it was.
        let mut second = second;
        assert_eq!(read_with(&mut second, &config, &[], name).await, ["second"]);
    }
    // A bad first session value (planted by a sibling domain or another path) is skipped:
    // the first valid one counts, and the response does not remove the visitor's session.
    let config = MessagesConfig::new(MemoryStore::new());
    let good = browser_with(&config, "not hidden")
        .await
        .cookie_header()
        .unwrap();
    let header = format!("{SESSION}=garbage; {good}");
    let request = config.begin([header.as_str()]);
    assert!(request.session().is_some());
    assert_eq!(
        request.context(&VIEW).messages().await.into_vec()[0].text(),
        "not hidden"
    );
    assert!(request.commit(true).await.set_cookie.is_empty());
}

#[tokio::test]
async fn invalid_percent_encoding_is_never_decoded() {
    let valid = key();
    let encoded_valid = format!("%{:02X}{}", valid.as_bytes()[0], &valid[1..]);
    let values = [
        "%zz%",
        "%E0%A4%A",
        "%",
        "%00",
        "%%%%",
        encoded_valid.as_str(),
    ];
    let store_calls = CountingStore::new(MemoryStore::new());
    let counted = MessagesConfig::new(store_calls.clone());
    for (name, config) in storages() {
        for value in values {
            for cookie in [SESSION, MESSAGES] {
                let header = format!("{cookie}={value}");
                let what = format!("{name}: {header}");
                let mut browser = Browser::new();
                assert!(
                    read_with(&mut browser, &config, &[&header], &what)
                        .await
                        .is_empty()
                );
                assert!(browser.jar.is_empty(), "{what}");
                let request = counted.begin([header.as_str()]);
                assert!(request.session().is_none(), "{what}");
                assert!(request.context(&VIEW).messages().await.is_empty());
            }
        }
        // A name spelled with percent-escapes is another cookie.
        let mut browser = browser_with(&config, "x").await;
        let own = browser.jar.remove(SESSION).unwrap();
        let header = format!("messages%5Fsession={own}");
        assert!(
            read_with(&mut browser, &config, &[&header], name)
                .await
                .is_empty()
        );
    }
    assert_eq!(store_calls.calls(), 0, "no store I/O without a session");
}

#[tokio::test]
async fn odd_cookie_names_are_not_ours() {
    for (name, config) in storages() {
        let browser = browser_with(&config, "mine").await;
        let session = browser.jar[SESSION].clone();
        let messages = browser.jar.get(MESSAGES).cloned().unwrap_or_default();
        let with = |n: &str, m: &str| format!("{n}={session}; {m}={messages}");
        for (odd_session, odd_messages) in [
            ("Messages_Session", "Messages"),
            ("MESSAGES_SESSION", "MESSAGES"),
            ("messages_session\0", "messages\0"),
            ("\"messages_session\"", "\"messages\""),
            ("messages_session[]", "messages[]"),
            ("messages_sessión", "messagés"),
            ("messages-session", "messages-"),
            ("__Host-messages_session", "__Host-messages"),
        ] {
            let header = with(odd_session, odd_messages);
            let what = format!("{name}: {header}");
            let request = config.begin([header.as_str()]);
            assert!(request.session().is_none(), "{what}");
            assert!(request.context(&VIEW).messages().await.is_empty(), "{what}");
            request.commit(true).await;
        }
        // Blanks around names and values are trimmed (RFC 6265): still ours.
        let header = format!(" {SESSION} = {session} ;\t{MESSAGES}={messages}\t");
        let mut fresh = Browser::new();
        assert_eq!(
            read_with(&mut fresh, &config, &[&header], name).await,
            ["mine"]
        );
    }
}

#[tokio::test]
async fn session_keys_of_wrong_length_charset_or_form_are_ignored() {
    let good = key();
    let last = good.as_bytes()[42];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let flipped = alphabet[alphabet.iter().position(|&c| c == last).unwrap() ^ 1] as char;
    let bad = [
        String::new(),
        good[..42].to_owned(),
        format!("{good}A"),
        "A".repeat(64),
        format!("{}+", &good[..42]),
        format!("{}/", &good[..42]),
        format!("{}=", &good[..42]),
        format!("{}{flipped}", &good[..42]), // non-canonical: unused bits set
        format!("\"{good}\""),
        format!("{}é", &good[..41]), // 43 bytes, not 43 characters of the alphabet
        format!("{}\u{7f}", &good[..42]),
        "../../../../../../../../../../etc/passwd!!!".to_owned(),
        "{session}:dashboard*AAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
    ];
    for (name, config) in storages() {
        for value in &bad {
            assert!(value.parse::<SessionKey>().is_err(), "{value:?}");
            let header = format!("{SESSION}={value}");
            let what = format!("{name}: {value:?}");
            // Reading: no session, nothing shown, the bad cookie removed.
            let mut browser = Browser::new();
            assert!(
                read_with(&mut browser, &config, &[&header], &what)
                    .await
                    .is_empty()
            );
            // Adding: a new valid key replaces it.
            let mut browser = Browser::new();
            let request = config.begin([header.as_str()]);
            request.context(&VIEW).add_message(Message::info("fresh"));
            finish(&mut browser, &request, &what).await;
            let new_key = browser.jar[SESSION].clone();
            assert_ne!(&new_key, value, "{what}");
            assert_eq!(
                read_with(&mut browser, &config, &[], &what).await,
                ["fresh"]
            );
        }
    }
}

#[tokio::test]
async fn unusual_text_passes_through_unchanged() {
    let texts = [
        "Ã©tÃ© â€” mojibake",
        "\u{fffd}\u{fffd} replacement characters",
        "nul \0 and controls \u{1} \u{1b}[31m \r\n",
        "\u{202e}override\u{202c} and e\u{301}\u{301}\u{301}",
        "<script>alert(1)</script> & \"quotes\" 'single'",
        "; messages_session=AAAA; Path=/",
        "𝕊𝕦𝕣𝕣𝕠𝕘𝕒𝕥𝕖𝕤 🙂",
    ];
    for (name, config) in storages() {
        let mut browser = Browser::new();
        let request = browser.begin(&config);
        for t in texts {
            request.context(&VIEW).add_message(
                Message::info(t)
                    .with_title(t)
                    .with_tag(t)
                    .with_data(t.into()),
            );
        }
        finish(&mut browser, &request, name).await;
        let request = browser.begin(&config);
        let shown = request.context(&VIEW).messages().await.into_vec();
        finish(&mut browser, &request, name).await;
        let got: Vec<&str> = shown.iter().map(Message::text).collect();
        assert_eq!(got, texts, "{name}: text changed in storage");
        for (m, t) in shown.iter().zip(texts) {
            assert_eq!((m.title(), m.tags()), (Some(t), &[t.to_owned()][..]));
            assert_eq!(m.data(), Some(&t.into()), "{name}");
        }
    }
    // A header that was not UTF-8 reaches `begin` with replacement characters, at worst.
    let lossy = String::from_utf8_lossy(b"\xff\xfe=\xc3; messages_session=\xe9t\xe9; a=\x80");
    for (name, config) in storages() {
        let mut browser = Browser::new();
        assert!(
            read_with(&mut browser, &config, &[&lossy], name)
                .await
                .is_empty()
        );
    }
    // JSON text that is not valid Unicode (a lone surrogate) does not decode as a message.
    let json = r#"{"id":"00000000000000010000000000000000","level":"info","text":"\ud800","created_at":1}"#;
    assert!(serde_json::from_str::<Message>(json).is_err());
}

/// Text made from a counter: does not compress well, so it fills a cookie.
fn incompressible(len: usize) -> String {
    let mut s = String::with_capacity(len + 16);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        write!(s, "{x:x}").unwrap();
    }
    s.truncate(len);
    s
}

#[tokio::test]
async fn text_over_the_cap_is_cut_not_refused() {
    let huge = "é".repeat(1 << 20); // 2 MiB of two-byte characters
    let logs = LogCapture::start();
    let message = Message::warning(huge.as_str()).with_title(huge.as_str());
    assert!(warned(&logs, "text cut to its size limit"));
    assert!(message.text().len() <= MAX_TEXT_BYTES && message.text().ends_with('…'));
    assert!(message.title().unwrap().len() <= MAX_TITLE_BYTES);
    for (name, config) in storages() {
        // Cut text that compresses fits even the cookie.
        let mut browser = Browser::new();
        let request = browser.begin(&config);
        request.context(&VIEW).add_message(message.clone());
        finish(&mut browser, &request, name).await;
        let shown = read_with(&mut browser, &config, &[], name).await;
        assert_eq!(shown, [message.text()], "{name}");
        // Cut text that does not compress: over the cookie's budget on its own.
        let mut browser = Browser::new();
        let request = browser.begin(&config);
        let noise = Message::info(incompressible(1 << 20));
        assert_eq!(noise.text().len(), MAX_TEXT_BYTES);
        request.context(&VIEW).add_message(noise.clone());
        finish(&mut browser, &request, name).await;
        let shown = read_with(&mut browser, &config, &[], name).await;
        if name == "cookie" {
            // Cookie-only storage has nowhere else to put it: dropped, with a warning.
            assert!(shown.is_empty());
            assert!(warned(&logs, "cookie full, oldest messages dropped"));
        } else {
            assert_eq!(shown, [noise.text()], "{name}");
        }
    }
}

#[tokio::test]
async fn data_and_tags_over_their_limits_are_left_out() {
    let big_data = serde_json::json!({ "blob": "d".repeat(8192) });
    let logs = LogCapture::start();
    let mut message = Message::error("with too much attached")
        .with_data(big_data)
        .with_tag("t".repeat(MAX_TAG_BYTES + 1));
    for i in 0..100 {
        message = message.with_tag(format!("tag{i}"));
    }
    assert!(message.data().is_none());
    assert_eq!(message.tags().len(), MAX_TAGS);
    assert_eq!(message.tags()[0], "tag0", "the over-long tag was skipped");
    assert!(warned(&logs, "data dropped, over its size limit"));
    assert!(warned(&logs, "extra tag dropped"));
    for (name, config) in storages() {
        let mut browser = Browser::new();
        let request = browser.begin(&config);
        request.context(&VIEW).add_message(message.clone());
        finish(&mut browser, &request, name).await;
        let request = browser.begin(&config);
        let shown = request.context(&VIEW).messages().await.into_vec();
        finish(&mut browser, &request, name).await;
        assert_eq!(shown, [message.clone()], "{name}: delivered as built");
    }
}

#[tokio::test]
async fn a_hundred_thousand_adds_to_one_cookie_context_are_bounded() {
    // The memory-store case is context.rs::a_hundred_thousand_adds_in_one_request_are_bounded.
    for (name, config) in storages().into_iter().skip(1) {
        let mut browser = Browser::new();
        let request = browser.begin(&config);
        let context = request.context(&VIEW);
        let logs = LogCapture::start();
        for i in 0..100_000 {
            context.add_message(Message::info(format!("m{i}")));
        }
        assert!(warned(&logs, "too many adds in one request"), "{name}");
        drop(logs);
        finish(&mut browser, &request, name).await;
        let shown = read_with(&mut browser, &config, &[], name).await;
        let numbers: Vec<u32> = shown.iter().map(|t| t[1..].parse().unwrap()).collect();
        assert!(
            !numbers.is_empty() && numbers.len() <= 1000,
            "{name}: {}",
            numbers.len()
        );
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{name}: in order");
        assert_eq!(
            *numbers.last().unwrap(),
            99_999,
            "{name}: the newest is kept"
        );
        assert!(
            numbers[0] >= 99_000,
            "{name}: the request's queue keeps the newest 1000"
        );
        assert!(read_with(&mut browser, &config, &[], name).await.is_empty());
    }
}

#[tokio::test]
async fn invalid_view_ids_are_refused_before_any_store() {
    let too_long = "v".repeat(MAX_VIEW_ID_BYTES + 1);
    for id in [
        "",
        " ",
        "a b",
        "a;b",
        "{session}",
        "a\"b",
        "a\\b",
        "vue\u{e9}",
        "a\0b",
        "tab\there",
        "line\nbreak",
        too_long.as_str(),
    ] {
        assert_eq!(ViewId::new(id), Err(InvalidViewId), "{id:?}");
        let json = serde_json::to_string(id).unwrap();
        assert!(serde_json::from_str::<ViewId>(&json).is_err(), "{id:?}");
    }
    // The longest and most punctuated valid ids work through every storage.
    let longest = ViewId::new("v".repeat(MAX_VIEW_ID_BYTES)).unwrap();
    let punctuated = ViewId::new("a::b-c.d/e?f=g&h#i[j]<k>!~*'(),:@$%+").unwrap();
    for (name, config) in storages() {
        let mut browser = Browser::new();
        let request = browser.begin(&config);
        for view in [&longest, &punctuated] {
            request
                .context(view)
                .add_message(Message::info(view.as_str()));
        }
        finish(&mut browser, &request, name).await;
        let request = browser.begin(&config);
        for view in [&longest, &punctuated] {
            let shown = request.context(view).messages().await.into_vec();
            assert_eq!(shown.len(), 1, "{name}: {view}");
            assert_eq!(shown[0].text(), view.as_str());
        }
        finish(&mut browser, &request, name).await;
    }
}

#[tokio::test]
async fn empty_and_malformed_headers_mean_no_cookies() {
    let semicolons = ";".repeat(1 << 20);
    for (name, config) in storages() {
        for header in [
            "",
            ";",
            ";;; ;",
            "=",
            "==",
            "=value",
            "noequals",
            SESSION,
            MESSAGES,
            "messages_session=",
            "messages=",
            "messages=;messages_session=;",
            "\t \t",
            semicolons.as_str(),
        ] {
            let what = format!("{name}: {:?}", &header[..header.len().min(40)]);
            let request = config.begin([header, header]);
            assert!(request.session().is_none(), "{what}");
            let mut browser = Browser::new();
            assert!(
                read_with(&mut browser, &config, &[header], &what)
                    .await
                    .is_empty()
            );
            assert!(browser.jar.is_empty(), "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Through HTTP, against both example apps (`bad_input::axum::*`, `bad_input::actix::*`):
// the contract's refusals of input that is not a form, and hostile `Cookie` headers sent
// to a real server, on memory, cookie and fallback storage.

#[path = "support/example.rs"]
mod example_app;

use ::axum::http::{Method, Request, StatusCode};
use example_app::Framework;
use messages_tests::http::{HttpClient, Reply};

/// The text body of a refusal.
const PLAIN: &str = "text/plain; charset=utf-8";

/// Checks a reply's `Set-Cookie` values as [`finish`] does, and that it is no `5xx`.
fn check_reply(r: &Reply, what: &str) {
    assert!(
        !r.status.is_server_error(),
        "{what}: {} {}",
        r.status,
        r.body
    );
    for set in r.set_cookies() {
        let (pair, attributes) = set.split_once(';').unwrap_or((&set, ""));
        let (name, value) = pair.split_once('=').unwrap();
        assert!(attributes.contains("HttpOnly"), "{what}: {set}");
        assert!(attributes.contains("SameSite=Lax"), "{what}: {set}");
        let removal = attributes.contains("Max-Age=0");
        assert_eq!(removal, value.is_empty(), "{what}: {set}");
        match name {
            SESSION => assert!(
                removal || value.parse::<SessionKey>().is_ok(),
                "{what}: {set}"
            ),
            MESSAGES => assert!(value.len() <= BUDGET, "{what}: {} bytes", value.len()),
            other => panic!("{what}: unexpected cookie {other}"),
        }
    }
}

/// Whether a reply set a cookie other than a removal.
fn sets_a_value(r: &Reply) -> bool {
    r.set_cookies()
        .iter()
        .any(|c| !c.contains("Max-Age=0") && !c.split(';').next().unwrap().ends_with('='))
}

/// `method path` with `headers` and `body`, sent by `b` (its own cookies, if any, replace
/// a `cookie` among `headers`).
async fn request(
    b: &mut HttpClient,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: String,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    b.send(builder, body).await
}

/// A request the contract refuses, and its answer.
struct Refusal {
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    body: String,
    status: StatusCode,
    text: String,
}

/// `POST path` with `content_type` and `body`, refused with `status` and `text`.
fn post(
    path: &'static str,
    content_type: Option<&'static str>,
    body: &str,
    status: StatusCode,
    text: &str,
) -> Refusal {
    Refusal {
        method: Method::POST,
        path,
        content_type,
        body: body.to_owned(),
        status,
        text: text.to_owned(),
    }
}

/// The contract's refusals (the table "Bad form input" in `messages_example_shared`):
/// status, `text/plain` body, no cookie and no cache headers; a refused request changes
/// nothing of the browser's messages or session.
async fn requests_that_are_not_forms_are_refused_as_the_contract_says(fw: Framework) {
    let server = example_app::serve(fw, "fallback").await.unwrap();
    let mut b = server.client();
    b.post_form("/settings", &[("name", "Ada")]).await;
    let session = b.cookie(SESSION).unwrap().to_owned();
    let form = Some("application/x-www-form-urlencoded");
    let unsupported = "Form requests must have `Content-Type: application/x-www-form-urlencoded`";
    let duplicate =
        |field: &str| format!("Failed to deserialize form body: duplicate field `{field}`");
    let too_long = "Failed to buffer the request body: length limit exceeded";
    let big = format!("name={}", "a".repeat(2 * 1024 * 1024));
    let (media, unprocessable, too_large) = (
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNPROCESSABLE_ENTITY,
        StatusCode::PAYLOAD_TOO_LARGE,
    );
    let cases = [
        post(
            "/settings",
            Some("text/plain"),
            "name=Mallory",
            media,
            unsupported,
        ),
        post("/notes", None, "text=x&count=1", media, unsupported),
        post(
            "/login",
            Some("application/json"),
            r#"{"name":"Mallory"}"#,
            media,
            unsupported,
        ),
        post(
            "/login",
            Some("multipart/form-data; boundary=x"),
            "--x--",
            media,
            unsupported,
        ),
        post(
            "/settings",
            form,
            "name=a&name=b",
            unprocessable,
            &duplicate("name"),
        ),
        post(
            "/login",
            form,
            "name=a&name=b",
            unprocessable,
            &duplicate("name"),
        ),
        post(
            "/notes",
            form,
            "text=a&count=1&count=2",
            unprocessable,
            &duplicate("count"),
        ),
        post("/settings", form, &big, too_large, too_long),
        post("/login", form, &big, too_large, too_long),
        Refusal {
            method: Method::GET,
            path: "/dashboard/messages?oob=maybe",
            content_type: None,
            body: String::new(),
            status: StatusCode::BAD_REQUEST,
            text:
                "Failed to deserialize query string: oob: provided string was not `true` or `false`"
                    .to_owned(),
        },
    ];
    for case in cases {
        let what = format!(
            "[{fw}] {} {} {:?}",
            case.method, case.path, case.content_type
        );
        let headers: Vec<(&str, &str)> = case
            .content_type
            .iter()
            .map(|c| ("content-type", *c))
            .collect();
        let r = request(&mut b, case.method, case.path, &headers, case.body).await;
        assert_eq!(r.status, case.status, "{what}: {}", r.body);
        assert_eq!(r.header("content-type"), Some(PLAIN), "{what}");
        assert_eq!(r.body, case.text, "{what}");
        assert!(r.set_cookies().is_empty(), "{what}: {:?}", r.set_cookies());
        assert!(r.header("vary").is_none(), "{what}");
        assert!(r.header("cache-control").is_none(), "{what}");
    }
    assert_eq!(
        b.cookie(SESSION),
        Some(session.as_str()),
        "[{fw}] no rotation"
    );
    let page = b.get("/settings").await;
    assert_eq!(page.texts(), ["Settings saved for Ada."], "[{fw}]");
    assert!(b.get("/dashboard").await.messages().is_empty(), "[{fw}]");
}

/// Rows 1, 3, 4, 5 and 11 of the catalogue through a real server: hostile `Cookie`
/// headers never fail a page, show nothing, and get only removals (reading) or a fresh
/// valid session (adding); behind 64 KiB of junk the visitor's own cookies still work.
/// (A head over the HTTP server's own limit — hyper's ~400 KiB, actix-web's 128 KiB — is
/// refused by the server, `431`, before any application code.)
async fn hostile_cookie_headers_over_http(fw: Framework) {
    let valid = key();
    let encoded_valid = format!("%{:02X}{}", valid.as_bytes()[0], &valid[1..]);
    let junk = "aaaaaaa=bbbbbbbbbbbb; ".repeat(64 * 1024 / 22);
    let long_session = format!("{SESSION}={}", "A".repeat(64 * 1024));
    let long_messages = format!("{MESSAGES}=v1.{}", "A".repeat(64 * 1024));
    let mut headers: Vec<String> = vec![
        junk.clone(),
        long_session,
        long_messages,
        String::new(),
        ";;; ;".into(),
        "=value".into(),
        "messages_session=".into(),
        "messages=;messages_session=;".into(),
    ];
    for value in ["%zz%", "%E0%A4%A", "%", "%00", encoded_valid.as_str()] {
        headers.push(format!("{SESSION}={value}"));
        headers.push(format!("{MESSAGES}={value}"));
    }
    for value in [
        "\"quoted\"".to_owned(),
        "A".repeat(42),
        "A".repeat(64),
        format!("{}+", &valid[..42]),
        "../../../../../../../../../../etc/passwd!!!".to_owned(),
    ] {
        headers.push(format!("{SESSION}={value}"));
    }
    for odd in [
        "Messages_Session",
        "MESSAGES_SESSION",
        "messages-session",
        "__Host-messages_session",
    ] {
        headers.push(format!("{odd}={valid}"));
    }
    for store in ["memory", "cookie", "fallback"] {
        let server = example_app::serve(fw, store).await.unwrap();
        for header in &headers {
            let what = format!("[{fw}/{store}] {:?}", &header[..header.len().min(48)]);
            let mut reader = server.client();
            let cookie = [("cookie", header.as_str())];
            for path in ["/settings", "/dashboard", "/api/dashboard/messages"] {
                let r = request(&mut reader, Method::GET, path, &cookie, String::new()).await;
                assert_eq!(r.status, StatusCode::OK, "{what} {path}");
                check_reply(&r, &what);
                assert!(!sets_a_value(&r), "{what}: {:?}", r.set_cookies());
                if path.starts_with("/api") {
                    assert_eq!(r.body, "[]", "{what}");
                } else {
                    assert!(r.messages().is_empty(), "{what} {path}");
                }
            }
            assert!(
                reader.cookies.jar.is_empty(),
                "{what}: {:?}",
                reader.cookies.jar
            );

            let mut writer = server.client();
            let form = [
                ("cookie", header.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ];
            let r = request(
                &mut writer,
                Method::POST,
                "/settings",
                &form,
                "name=Ada".into(),
            )
            .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{what}");
            check_reply(&r, &what);
            let fresh = writer.cookie(SESSION).expect("a fresh session").to_owned();
            assert!(
                fresh.parse::<SessionKey>().is_ok() && fresh != valid,
                "{what}"
            );
            assert_eq!(
                writer.get("/settings").await.texts(),
                ["Settings saved for Ada."],
                "{what}"
            );
        }
        // A head over the server's limit never reaches the application.
        let huge = format!("{SESSION}={}", "A".repeat(512 * 1024));
        let r = request(
            &mut server.client(),
            Method::GET,
            "/settings",
            &[("cookie", &huge)],
            String::new(),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "[{fw}/{store}]"
        );
        assert!(r.set_cookies().is_empty(), "[{fw}/{store}]");
        // Behind 64 KiB of other cookies, the visitor's own cookies still work.
        let mut own = server.client();
        own.post_form("/settings", &[("name", "Ada")]).await;
        let header = format!("{junk}{}", own.cookies.cookie_header().unwrap());
        let mut same = server.client();
        let r = request(
            &mut same,
            Method::GET,
            "/settings",
            &[("cookie", &header)],
            String::new(),
        )
        .await;
        check_reply(&r, &format!("[{fw}/{store}] behind junk"));
        assert_eq!(r.texts(), ["Settings saved for Ada."], "[{fw}/{store}]");
    }
}

/// `mod axum` and `mod actix`: the HTTP cases, one test each per framework.
macro_rules! over_http {
    ($($module:ident => $framework:ident),*) => {$(
        mod $module {
            #[tokio::test]
            async fn requests_that_are_not_forms_are_refused_as_the_contract_says() {
                super::requests_that_are_not_forms_are_refused_as_the_contract_says(
                    super::Framework::$framework,
                )
                .await;
            }

            #[tokio::test]
            async fn hostile_cookie_headers_over_http() {
                super::hostile_cookie_headers_over_http(super::Framework::$framework).await;
            }
        }
    )*};
}

over_http!(axum => Axum, actix => Actix);
