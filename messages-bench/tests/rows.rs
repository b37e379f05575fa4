//! Every row of the load harness serves the contract it is measured on — the message shown
//! once where it is due, nowhere else — and the side counts the table reports hold: which
//! rows call a server store, and which carry cookies. Counts are tiny: no timing here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::http::StatusCode;
use axum::http::header::{DATE, SET_COOKIE};
use messages_bench::apps::{App, Row, Servers};
use messages_bench::client::{Cell, Sample, Workload, measure};
use messages_bench::cpu::Database;
use messages_tests::http::{HttpClient, Reply};
use messages_tests::postgres_server;
use messages_tests::redis_server::RedisServer;

const ITERATIONS: usize = 6;

async fn sample(app: &App, workload: Workload, concurrency: usize) -> Sample {
    let cell = Cell {
        workload,
        concurrency,
        iterations: ITERATIONS,
        warmup: 2,
    };
    let sample = measure(app, cell).await.unwrap();
    assert_eq!(
        sample.failures, 0,
        "{:?} {workload:?}: {:?}",
        app.row, sample.first_failure
    );
    assert_eq!(
        sample.requests,
        ITERATIONS / concurrency * concurrency * workload.requests_per_iteration()
    );
    assert_eq!(sample.latencies_ns.len(), sample.requests);
    sample
}

/// Both workloads at concurrency 1 and 3.
async fn both(row: Row, servers: Servers<'_>) -> [(Sample, Sample); 2] {
    let app = App::start(row, servers).await.unwrap();
    let mut out = Vec::new();
    for concurrency in [1, 3] {
        out.push((
            sample(&app, Workload::FlashPair, concurrency).await,
            sample(&app, Workload::PlainGet, concurrency).await,
        ));
    }
    out.try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_rows_have_no_cookies_and_no_store() {
    for row in [Row::Bare, Row::ActixBare] {
        for (pair, plain) in both(row, Servers::default()).await {
            for s in [&pair, &plain] {
                assert_eq!((s.cookie_bytes, s.set_cookie_bytes), (0, 0), "{row:?}");
                assert_eq!(s.store_calls, None, "{row:?}");
            }
        }
    }
}

/// The store calls of a row's samples are exactly its expected figure
/// ([`Row::expected_store_calls`], the figure `load --quick` guards).
fn assert_expected_calls(row: Row, pair: &Sample, plain: &Sample) {
    let per = |w: Workload| row.expected_store_calls(w).unwrap();
    assert_eq!(
        pair.store_calls,
        Some(pair.requests / 2 * per(Workload::FlashPair)),
        "{row:?}"
    );
    assert_eq!(
        plain.store_calls,
        Some(plain.requests * per(Workload::PlainGet)),
        "{row:?}"
    );
}

/// A server store: its expected calls per pair (add, then take — and on a store that
/// leases reads the settle of the read lease), none for a page that does not ask for
/// messages, and the session cookie set once, during warm-up.
async fn server_store_row(row: Row, servers: Servers<'_>) {
    for (pair, plain) in both(row, servers).await {
        assert_expected_calls(row, &pair, &plain);
        assert_eq!(pair.set_cookie_bytes, 0, "{row:?}");
        assert!(pair.cookie_bytes > 0);
        assert_eq!(
            row.expected_store_calls(Workload::PlainGet),
            Some(0),
            "lazy"
        );
        assert_eq!(plain.set_cookie_bytes, 0, "{row:?}");
        assert!(plain.cookie_bytes > 0, "the browser has a session");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_is_called_once_per_request_that_uses_it() {
    server_store_row(Row::Memory, Servers::default()).await;
    server_store_row(Row::ActixMemory, Servers::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_is_called_once_per_request_that_uses_it_and_once_per_settle() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let servers = Servers {
        redis: Some(&redis),
        ..Servers::default()
    };
    server_store_row(Row::Redis, servers).await;
    server_store_row(Row::ActixRedis, servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_stores_are_called_once_per_request_that_uses_it_and_once_per_settle() {
    server_store_row(Row::Sqlite, Servers::default()).await;
    let Some(postgres) = postgres_server::shared() else {
        return;
    };
    let servers = Servers {
        postgres: Some(postgres),
        ..Servers::default()
    };
    server_store_row(Row::Postgres, servers).await;
}

/// Where the database rows' CPU time is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_rows_count_their_database_cpu() {
    let app = App::start(Row::AxumMessagesSqlite, Servers::default())
        .await
        .unwrap();
    assert_eq!(app.database, Database::SqliteThreads);
    let pair = sample(&app, Workload::FlashPair, 1).await;
    if let Some(cpu) = pair.cpu {
        assert!(cpu.db_ns.unwrap() > 0, "{cpu:?}");
    }
    let memory = App::start(Row::Memory, Servers::default()).await.unwrap();
    assert_eq!(memory.database, Database::None);
    let Some(postgres) = postgres_server::shared() else {
        return;
    };
    let servers = Servers {
        postgres: Some(postgres),
        ..Servers::default()
    };
    let app = App::start(Row::Postgres, servers).await.unwrap();
    assert_eq!(app.database, Database::ProcessTree(postgres.pid().unwrap()));
    let pair = sample(&app, Workload::FlashPair, 1).await;
    if let Some(cpu) = pair.cpu {
        assert!(cpu.db_ns.unwrap() > 0, "{cpu:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_rows_carry_the_message_and_fallback_stays_off_its_server_store() {
    for row in [
        Row::Cookie,
        Row::Fallback,
        Row::ActixCookie,
        Row::ActixFallback,
    ] {
        for (pair, plain) in both(row, Servers::default()).await {
            // Every POST sets the messages cookie and every GET removes it.
            assert!(pair.set_cookie_bytes > 0, "{row:?}");
            assert!(pair.cookie_bytes > plain.cookie_bytes, "{row:?}");
            assert_eq!(plain.set_cookie_bytes, 0, "{row:?}");
            let expected = |w| row.expected_store_calls(w).map(|per| per * pair.requests);
            assert_eq!(
                pair.store_calls,
                expected(Workload::FlashPair),
                "{row:?}: one message fits"
            );
            assert_eq!(plain.store_calls, expected(Workload::PlainGet), "{row:?}");
        }
    }
}

/// axum-messages loads and saves the session on every request of a pair (reading the
/// messages changes the session too) and loads it on every other page.
async fn axum_messages_row(row: Row, servers: Servers<'_>) {
    for (pair, plain) in both(row, servers).await {
        assert_expected_calls(row, &pair, &plain);
        assert!(
            pair.set_cookie_bytes > 0,
            "{row:?}: the session cookie again"
        );
        assert_eq!(plain.set_cookie_bytes, 0, "{row:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_messages_session_store_calls_are_counted() {
    axum_messages_row(Row::AxumMessages, Servers::default()).await;
    axum_messages_row(Row::AxumMessagesSqlite, Servers::default()).await;
    let redis = RedisServer::start();
    let postgres = postgres_server::shared();
    let servers = Servers {
        redis: redis.as_ref(),
        postgres,
    };
    for row in [Row::AxumMessagesRedis, Row::AxumMessagesPostgres] {
        if servers.missing_for(row).is_none() {
            axum_messages_row(row, servers).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_web_flash_messages_cookie_store_clears_its_cookie_on_every_response() {
    for (pair, plain) in both(Row::AwfmCookie, Servers::default()).await {
        assert_eq!(pair.store_calls, None);
        assert!(pair.set_cookie_bytes > 0);
        // The pair's GET removed the flash cookie: the browser holds none, yet every page
        // that adds nothing answers with a removal cookie.
        assert_eq!(plain.cookie_bytes, 0);
        assert!(plain.set_cookie_bytes > 0);
        assert_eq!(plain.store_calls, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_web_flash_messages_session_store_calls_are_counted() {
    for (pair, plain) in both(Row::AwfmSession, Servers::default()).await {
        // Load and update on every request of a session: the flash store removes its key
        // on every response, which marks the session changed.
        assert_expected_calls(Row::AwfmSession, &pair, &plain);
        assert!(plain.cookie_bytes > 0, "the browser has a session");
        assert!(
            plain.set_cookie_bytes > 0,
            "the session cookie is sent again"
        );
    }
}

/// An actix row's server stops with its `App`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_rows_stop_when_dropped() {
    let app = App::start(Row::ActixMemory, Servers::default())
        .await
        .unwrap();
    let addr = app.addr;
    drop(app);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{addr} still accepts connections after its App was dropped");
}

/// A reply as the floor comparison reads it: the status, the headers in order of name
/// (`Date` left out, and a `Set-Cookie`'s value hidden: the floor's session key is not
/// ours) and the body.
type Answer = (StatusCode, Vec<(String, String)>, String);

fn answer(reply: &Reply) -> Answer {
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(n, _)| *n != DATE)
        .map(|(n, v)| match *n {
            SET_COOKIE => (n.to_string(), "messages_session=…".to_owned()),
            _ => (n.to_string(), v.to_str().unwrap_or("?").to_owned()),
        })
        .collect();
    headers.sort();
    (reply.status, headers, reply.body.clone())
}

/// A POST of the form, then the GET of the page it redirects to, by one browser: both
/// answers. The POST sets a session cookie whose `name=value` is 60 bytes.
async fn pair_answers(app: &App) -> [Answer; 2] {
    let mut browser = HttpClient::new(app.addr);
    let posted = browser.post_form("/settings", &[("name", "Ada")]).await;
    let session = browser.cookie("messages_session").unwrap_or_default();
    assert_eq!(
        format!("messages_session={session}").len(),
        60,
        "{:?}",
        app.row
    );
    let shown = browser.get("/settings").await;
    [answer(&posted), answer(&shown)]
}

/// The floor rows answer a pair as ours does: the same statuses, header names and
/// values (the session cookie's value aside) and bodies, byte for byte; and a floor row
/// serves the load contract (the message once per pair) with the cookie bytes of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_rows_answer_what_ours_answers() {
    for (floor, ours) in [
        (Row::Floor, Row::Memory),
        (Row::ActixFloor, Row::ActixMemory),
    ] {
        let floor_app = App::start(floor, Servers::default()).await.unwrap();
        let ours_app = App::start(ours, Servers::default()).await.unwrap();
        let [floor_post, floor_get] = pair_answers(&floor_app).await;
        let [ours_post, ours_get] = pair_answers(&ours_app).await;
        assert!(ours_get.2.contains("Settings saved for Ada."));
        assert_eq!(floor_get, ours_get, "{floor:?}");
        // Ours sets its session cookie with attributes of its own (`Max-Age`); the floor
        // sets a cookie of the same `name=value` length.
        let names = |a: &Answer| -> Vec<String> { a.1.iter().map(|(n, _)| n.clone()).collect() };
        assert_eq!(floor_post.0, ours_post.0);
        assert_eq!(names(&floor_post), names(&ours_post), "{floor:?}");
        // A browser sends a floor row as many cookie bytes per request as ours (the
        // samples' requests differ only by the first pair's, which sets the cookie).
        let ours_samples = both(ours, Servers::default()).await;
        for ((pair, plain), (ours_pair, ours_plain)) in both(floor, Servers::default())
            .await
            .iter()
            .zip(&ours_samples)
        {
            assert_eq!(
                (pair.requests, pair.cookie_bytes, plain.cookie_bytes),
                (
                    ours_pair.requests,
                    ours_pair.cookie_bytes,
                    ours_plain.cookie_bytes
                ),
                "{floor:?}"
            );
            assert_eq!((plain.set_cookie_bytes, plain.store_calls), (0, None));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_floor_shows_each_message_once() {
    // `both` fails on a message shown twice or not at all.
    for (pair, plain) in both(Row::FloorMemory, Servers::default()).await {
        assert!(pair.cookie_bytes > 0);
        assert_eq!((pair.store_calls, plain.set_cookie_bytes), (None, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_floors_show_each_message_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let servers = Servers {
        redis: Some(&redis),
        ..Servers::default()
    };
    // `both` fails on a message shown twice or not at all.
    for row in [Row::FloorRedis, Row::FloorRedisLeased] {
        for (pair, plain) in both(row, servers).await {
            assert!(pair.cookie_bytes > 0);
            assert_eq!((pair.store_calls, plain.set_cookie_bytes), (None, 0));
        }
    }
}
