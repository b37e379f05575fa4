//! The request core's own CPU per flash pair, without HTTP: `begin_request`, an add,
//! `commit_response` (a 303), then `begin_request`, the view's messages read and shown,
//! `commit_response` (a 200), on a `MemoryStore`, one thread, in a loop. What our code
//! costs a pair on warm caches, beside the load table's server CPU per request (which
//! adds HTTP, the framework, the page and two worker threads).
//!
//! ```text
//! cargo run --release -p messages-bench --example core_pair
//! ```

use std::process::ExitCode;
use std::time::Instant;

use axum::http::HeaderMap;
use axum::http::header::SET_COOKIE;
use messages_core::{MemoryStore, Message, MessagesConfig, ViewId};

const VIEW: ViewId = ViewId::from_static("apps::settings");
const PAIRS: u32 = 200_000;
const ROUNDS: u32 = 5;

async fn run() -> Result<(), String> {
    let config = MessagesConfig::new(MemoryStore::new());
    // A first add starts the session; its cookie goes with every request after.
    let guard = config
        .begin_request(None, [])
        .ok_or("a fresh request has no messages installed")?;
    guard
        .messages()
        .context(&VIEW)
        .add_message(Message::success("first"));
    let mut headers = HeaderMap::new();
    guard.commit_response(303, &mut headers).await;
    let cookie = headers
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("the first add set no session cookie")?
        .to_owned();
    for round in 1..=ROUNDS {
        let started = Instant::now();
        for _ in 0..PAIRS {
            let guard = config
                .begin_request(None, [cookie.as_str()])
                .ok_or("no guard")?;
            guard
                .messages()
                .context(&VIEW)
                .add_message(Message::success(format!("Settings saved for {}.", "Ada")));
            let mut headers = HeaderMap::new();
            guard.commit_response(303, &mut headers).await;

            let guard = config
                .begin_request(None, [cookie.as_str()])
                .ok_or("no guard")?;
            let shown: Vec<String> = guard
                .messages()
                .context(&VIEW)
                .messages()
                .await
                .into_iter()
                .map(|m| m.text().to_owned())
                .collect();
            if shown.is_empty() {
                return Err("the GET after the add showed nothing".into());
            }
            let mut headers = HeaderMap::new();
            guard.commit_response(200, &mut headers).await;
        }
        let per_pair = started.elapsed().as_secs_f64() * 1e6 / f64::from(PAIRS);
        println!(
            "round {round}: {per_pair:.2} µs per pair, {:.2} µs per request",
            per_pair / 2.0
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("core_pair: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("core_pair: {e}");
            ExitCode::FAILURE
        }
    }
}
