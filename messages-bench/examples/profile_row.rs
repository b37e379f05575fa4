//! One row of the load harness under steady load, for a profiler: 40 000 flash pairs from
//! 16 clients against the Redis row (or `memory`), then the request count and time.
//!
//! ```text
//! CARGO_TARGET_DIR=target/fp RUSTFLAGS="-C force-frame-pointers=yes" \
//!   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
//!   cargo build --release -p messages-bench --example profile_row
//! perf record -F 4000 --call-graph fp target/fp/release/examples/profile_row redis
//! perf report --comm bench-server --children --sort sym
//! ```

use std::process::ExitCode;

use messages_bench::BenchError;
use messages_bench::apps::{App, Row, Servers};
use messages_bench::client::{self, Cell, Workload};
use messages_bench::cpu::{CLIENT_THREADS, SERVER_THREADS, runtime};
use messages_tests::redis_server::RedisServer;

fn run() -> Result<(), BenchError> {
    let row = match std::env::args().nth(1).as_deref() {
        Some("memory") => Row::Memory,
        _ => Row::Redis,
    };
    let (server_rt, client_rt) = (runtime(SERVER_THREADS)?, runtime(CLIENT_THREADS)?);
    let redis = RedisServer::start();
    let servers = Servers {
        redis: redis.as_ref(),
        postgres: None,
    };
    let app = server_rt.block_on(App::start(row, servers))?;
    let cell = Cell {
        workload: Workload::FlashPair,
        concurrency: 16,
        iterations: 40_000,
        warmup: 1_000,
    };
    let sample = client_rt.block_on(client::measure(&app, cell))?;
    eprintln!(
        "{}: {} requests in {:?}, {} failed",
        row.label(),
        sample.requests,
        sample.elapsed,
        sample.failures
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profile_row: {e}");
            ExitCode::FAILURE
        }
    }
}
