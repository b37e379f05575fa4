//! Delivery under concurrency, over real HTTP (issue #8, item 2): the example application
//! — on axum (`delivery::axum::*`) and on actix-web (`delivery::actix::*`), the same load
//! — on a loopback listener, [`SESSIONS`] browser sessions × 2 views × tabs, interleaved adds
//! (`POST /notes`, `POST /settings`) and reads (`GET /api/dashboard/messages` as JSON,
//! `GET /settings` as HTML), on every store. Every add carries a text no other add has; a
//! final read of every (session, view) drains what is left, and the [`Ledger`] checks that
//! nothing was lost, shown twice, or shown to another session or view.
//!
//! Memory, Redis and Redis Cluster run [`TABS`] concurrent tabs per session, sharing the
//! session's cookie jar. Cookie and fallback storage run one tab per session: their
//! messages travel in a cookie that the last response to arrive overwrites, so concurrent
//! tabs of one browser are documented as not exactly-once there; two more rows measure
//! that with [`TABS`] tabs and check only that nothing reaches another session or view
//! and that no request fails.
//!
//! The counts are printed as a table on stderr (seen without `--nocapture` too). Without
//! `redis-server` the Redis rows say SKIPPED (in CI they fail instead).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ::axum::http::StatusCode;
use messages_tests::http::{HttpClient, Ledger, Reply, Tally};
use serde::Deserialize;

#[path = "support/example.rs"]
mod example_app;

use example_app::Framework;

/// Browser sessions per store.
const SESSIONS: usize = 32;
/// Concurrent tabs per session where the store promises exactly-once across tabs.
const TABS: usize = 3;
/// Requests each tab makes, adds and reads mixed.
const ROUNDS: usize = 30;

/// One store under test, how many tabs a session has there, and whether the store
/// promises exactly-once delivery across them.
#[derive(Debug, Clone, Copy)]
struct Row {
    store: &'static str,
    tabs: usize,
    exactly_once: bool,
}

impl Row {
    const fn new(store: &'static str, tabs: usize, exactly_once: bool) -> Row {
        Row {
            store,
            tabs,
            exactly_once,
        }
    }
}

const ROWS: [Row; 8] = [
    Row::new("memory", TABS, true),
    Row::new("redis", TABS, true),
    Row::new("redis-cluster", TABS, true),
    Row::new("cookie", 1, true),
    Row::new("fallback", 1, true),
    Row::new("fallback-redis", 1, true),
    // Measured, not promised: concurrent tabs over cookie storage may show a message
    // twice or lose one, but never show it to another session or view, and never fail.
    Row::new("cookie", TABS, false),
    Row::new("fallback", TABS, false),
];

/// What one request of a tab does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `POST /notes`: one or two dashboard messages "{tag} #{i}".
    AddNotes(usize),
    /// `POST /settings`: the settings message "Settings saved for {tag}.".
    AddSettings,
    /// `GET /api/dashboard/messages`.
    ReadDashboard,
    /// `GET /settings`.
    ReadSettings,
}

impl Op {
    /// The operation of a tab's round: a fixed mix (splitmix64 of the coordinates), so
    /// every run makes the same requests, only their timing differs. Half are adds.
    fn of(session: usize, tab: usize, round: usize) -> Op {
        let seed = (session << 32 | tab << 16 | round) as u64;
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        match (z ^ (z >> 31)) % 8 {
            0 => Op::AddNotes(2),
            1 | 2 => Op::AddNotes(1),
            3 => Op::AddSettings,
            4..=5 => Op::ReadDashboard,
            _ => Op::ReadSettings,
        }
    }
}

/// The counts of one store's run, besides the ledger's.
#[derive(Debug, Default)]
struct Load {
    ledger: Ledger,
    requests: AtomicUsize,
    server_errors: AtomicUsize,
    /// Other statuses than the contract's, described.
    unexpected: std::sync::Mutex<Vec<String>>,
}

impl Load {
    /// Counts the reply; whether it has the status the contract gives.
    fn check(&self, what: &str, reply: &Reply, expected: StatusCode) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if reply.status.is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let ok = reply.status == expected;
        if !ok {
            self.unexpected
                .lock()
                .unwrap()
                .push(format!("{what}: {} {}", reply.status, reply.body));
        }
        ok
    }

    fn add(&self, context: &str, text: &str, confirmed: bool) {
        if confirmed {
            self.ledger.confirmed(context, text);
        } else {
            self.ledger.unconfirmed(context, text);
        }
    }
}

/// One message of `GET /api/dashboard/messages`.
#[derive(Debug, Deserialize)]
struct JsonMessage {
    text: String,
}

/// Runs `op` in `tab` of session `session`; `tag` makes the texts it adds unique.
async fn step(tab: &mut HttpClient, load: &Load, session: usize, op: Op, tag: &str) {
    let dashboard = format!("s{session}/dashboard");
    let settings = format!("s{session}/settings");
    match op {
        Op::AddNotes(count) => {
            let count_field = count.to_string();
            let reply = tab
                .post_form("/notes", &[("text", tag), ("count", &count_field)])
                .await;
            let ok = load.check("POST /notes", &reply, StatusCode::SEE_OTHER);
            for i in 1..=count {
                load.add(&dashboard, &format!("{tag} #{i}"), ok);
            }
        }
        Op::AddSettings => {
            let reply = tab.post_form("/settings", &[("name", tag)]).await;
            let ok = load.check("POST /settings", &reply, StatusCode::SEE_OTHER);
            load.add(&settings, &format!("Settings saved for {tag}."), ok);
        }
        Op::ReadDashboard => {
            let reply = tab.get("/api/dashboard/messages").await;
            if load.check("GET /api/dashboard/messages", &reply, StatusCode::OK) {
                let shown: Vec<JsonMessage> = serde_json::from_str(&reply.body).unwrap();
                for m in shown {
                    load.ledger.shown(&dashboard, &m.text);
                }
            }
        }
        Op::ReadSettings => {
            let reply = tab.get("/settings").await;
            if load.check("GET /settings", &reply, StatusCode::OK) {
                for m in reply.messages() {
                    load.ledger.shown(&settings, &m.text);
                }
            }
        }
    }
}

/// One store's figures.
#[derive(Debug)]
struct Outcome {
    tally: Tally,
    requests: usize,
    server_errors: usize,
    unexpected: Vec<String>,
    took: Duration,
}

/// Runs the load on `row`'s store, served by `framework`'s app; `None` when it is skipped.
async fn run(framework: Framework, row: Row) -> Option<Outcome> {
    let server = example_app::serve(framework, row.store).await?;
    let started = Instant::now();
    let load = Arc::new(Load::default());
    let mut tasks = Vec::new();
    let mut browsers = Vec::new();
    for session in 0..SESSIONS {
        // The session starts with the browser's first add; tabs opened before that
        // response would each start their own session, with any cookie-based scheme.
        let mut first = server.client().tab();
        step(
            &mut first,
            &load,
            session,
            Op::AddSettings,
            &format!("s{session}"),
        )
        .await;
        for tab in 0..row.tabs {
            let (mut client, load) = (first.clone(), Arc::clone(&load));
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let op = Op::of(session, tab, round);
                    let tag = format!("s{session}.t{tab}.r{round}");
                    step(&mut client, &load, session, op, &tag).await;
                }
            }));
        }
        browsers.push(first);
    }
    for task in tasks {
        task.await.unwrap();
    }
    // The final read of every context: what is still stored is shown now.
    let drains = browsers.into_iter().enumerate().map(|(session, mut b)| {
        let load = Arc::clone(&load);
        tokio::spawn(async move {
            step(&mut b, &load, session, Op::ReadDashboard, "").await;
            step(&mut b, &load, session, Op::ReadSettings, "").await;
        })
    });
    for drain in drains.collect::<Vec<_>>() {
        drain.await.unwrap();
    }
    let took = started.elapsed();
    Some(Outcome {
        tally: load.ledger.tally(),
        requests: load.requests.load(Ordering::Relaxed),
        server_errors: load.server_errors.load(Ordering::Relaxed),
        unexpected: std::mem::take(&mut *load.unexpected.lock().unwrap()),
        took,
    })
}

/// The load on every row, against `framework`'s app.
async fn every_message_is_delivered_once_to_its_context_on_every_store(framework: Framework) {
    let mut table = format!(
        "\nconcurrent delivery over HTTP ({framework}): {SESSIONS} sessions x 2 views, {ROUNDS} requests per tab, then a drain\n\
         {:<15} {:>4} {:>7} {:>8} {:>6} {:>9} {:>10} {:>5} {:>13} {:>4} {:>8}\n",
        "store",
        "tabs",
        "promise",
        "requests",
        "added",
        "delivered",
        "duplicated",
        "lost",
        "wrong context",
        "5xx",
        "time"
    );
    let mut outcomes = Vec::new();
    for row in ROWS {
        let Some(outcome) = run(framework, row).await else {
            writeln!(
                table,
                "{:<15} SKIPPED (redis-server not installed)",
                row.store
            )
            .unwrap();
            continue;
        };
        let t = outcome.tally;
        writeln!(
            table,
            "{:<15} {:>4} {:>7} {:>8} {:>6} {:>9} {:>10} {:>5} {:>13} {:>4} {:>6.2} s",
            row.store,
            row.tabs,
            if row.exactly_once { "once" } else { "bound" },
            outcome.requests,
            t.added,
            t.delivered,
            t.duplicated,
            t.lost,
            t.wrong_context,
            outcome.server_errors,
            outcome.took.as_secs_f64()
        )
        .unwrap();
        outcomes.push((row, outcome));
    }
    // Straight to stderr: the harness captures `eprintln!` of passing tests.
    let _ = std::io::stderr().write_all(table.as_bytes());

    for (row, outcome) in outcomes {
        let t = outcome.tally;
        let store = format!("{framework}/{}", row.store);
        assert!(
            outcome.unexpected.is_empty(),
            "{store}: {:?}",
            outcome.unexpected
        );
        assert_eq!(outcome.server_errors, 0, "{store}: 5xx");
        assert_eq!(t.unconfirmed, 0, "{store}: every add answered 303");
        assert!(t.added > SESSIONS * ROUNDS * row.tabs / 3, "{store}: {t:?}");
        assert_eq!(t.wrong_context, 0, "{store}: {t:?}");
        if row.exactly_once {
            assert_eq!((t.lost, t.duplicated), (0, 0), "{store}: {t:?}");
            assert_eq!(t.delivered, t.added, "{store}: {t:?}");
        }
    }
}

/// `mod axum` and `mod actix`: one test per framework (run one at a time with
/// `delivery axum::` or `delivery actix::`).
macro_rules! per_framework {
    ($($module:ident => $framework:ident),*) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn every_message_is_delivered_once_to_its_context_on_every_store() {
                super::every_message_is_delivered_once_to_its_context_on_every_store(
                    super::Framework::$framework,
                )
                .await;
            }
        }
    )*};
}

per_framework!(axum => Axum, actix => Actix);
