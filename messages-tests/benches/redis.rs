//! `RedisStore` add and take round trips per second at 1, 8 and 64 concurrent tasks,
//! beside `redis-benchmark`'s SET and GET on the same harness-started server (the floor
//! a client cannot beat), printed as a Markdown table.
//!
//! `cargo bench -p messages-tests --bench redis` (`BENCH_OPS=n` sets the operations per
//! row, default 20 000).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use messages_core::{Message, MessageStore, RedisOptions, RedisStore, SessionKey, ViewId};
use messages_tests::redis_server::RedisServer;

const CONCURRENCY: [usize; 3] = [1, 8, 64];

/// Adds per second, then takes per second, with `tasks` tasks sharing `ops` operations:
/// each task adds one message to each of its own contexts (one session each), then takes them back.
async fn measure(store: Arc<RedisStore>, tasks: usize, ops: usize) -> (f64, f64) {
    let per_task = ops / tasks;
    // One session per context, as with browsers: an add refreshes the idle TTL of every
    // key of its session, so thousands of views in one session would measure that instead.
    let view = ViewId::new("bench::dashboard").unwrap();
    let contexts: Vec<Vec<(SessionKey, ViewId)>> = (0..tasks)
        .map(|_| {
            (0..per_task)
                .map(|_| (SessionKey::generate().unwrap(), view.clone()))
                .collect()
        })
        .collect();
    let contexts = Arc::new(contexts);
    let run = |take: bool| {
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (store, contexts) = (Arc::clone(&store), Arc::clone(&contexts));
                tokio::spawn(async move {
                    for (session, view) in &contexts[t] {
                        if take {
                            assert_eq!(store.take(session, view).await.unwrap().len(), 1);
                        } else {
                            store
                                .add(session, view, Message::info("Import finished"))
                                .await
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        async move {
            for h in handles {
                h.await.unwrap();
            }
            #[allow(clippy::cast_precision_loss)]
            let rate = (per_task * tasks) as f64 / started.elapsed().as_secs_f64();
            rate
        }
    };
    let adds = run(false).await;
    let takes = run(true).await;
    (adds, takes)
}

/// `redis-benchmark`'s SET and GET requests per second.
fn redis_benchmark(port: u16, clients: usize, ops: usize) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "-t",
            "set,get",
        ])
        .args(["-n", &ops.to_string(), "-c", &clients.to_string()])
        .output()
        .expect("run redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = |name: &str| -> f64 {
        text.split(['\r', '\n'])
            .filter_map(|line| line.strip_prefix(name))
            .find_map(|rest| rest.split_once(" requests per second"))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} figure in redis-benchmark output:\n{text}"))
    };
    (rate("SET: "), rate("GET: "))
}

fn main() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let ops: usize = std::env::var("BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(
        rt.block_on(RedisStore::connect(&server.url(), RedisOptions::default()))
            .unwrap(),
    );
    // Warm up: connection, script cache, allocator.
    rt.block_on(measure(Arc::clone(&store), 8, 2_000));

    println!(
        "\nRedisStore on one multiplexed connection vs redis-benchmark (one connection per client), {ops} ops per row, redis-server on 127.0.0.1:\n"
    );
    println!(
        "| tasks / clients | add/s | take/s | redis SET/s | redis GET/s | add/SET | take/GET |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for tasks in CONCURRENCY {
        let (adds, takes) = rt.block_on(measure(Arc::clone(&store), tasks, ops));
        let (set, get) = redis_benchmark(server.port(), tasks, ops);
        println!(
            "| {tasks} | {adds:.0} | {takes:.0} | {set:.0} | {get:.0} | {:.0}% | {:.0}% |",
            100.0 * adds / set,
            100.0 * takes / get
        );
    }
}
