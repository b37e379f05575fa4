//! Every row of the load harness serves the contract it is measured on — the message shown
//! once where it is due, nowhere else — and the side counts the table reports hold: which
//! rows call a server store, and which carry cookies. Counts are tiny: no timing here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use messages_bench::apps::{App, Row, Servers};
use messages_bench::client::{Cell, Sample, Workload, measure};
use messages_bench::cpu::Database;
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
