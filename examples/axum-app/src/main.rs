//! `cargo run -p messages-example`: the example application on `127.0.0.1:${PORT:-3000}`
//! (start-up as documented in `messages_example_shared`, the same for the actix-web app).

use std::process::ExitCode;

use messages_example_shared::{Startup, init_tracing, shutdown_signal, startup_from_env};

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Prints the listening line (with PORT=0, the port picked: tests read it).
    let Startup { listener, config } = startup_from_env().await?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let live = config.clone();
    // MESSAGES_SESSION=tower-sessions: one cookie, the app's tower-sessions session.
    let app = match std::env::var("MESSAGES_SESSION").as_deref() {
        Ok("tower-sessions") => messages_example::app_with_tower_sessions(
            config,
            messages_core::tower_sessions::TowerSessionsIdentity::random()?,
        )?,
        Ok("" | "messages") | Err(_) => messages_example::app(config),
        Ok(other) => {
            return Err(
                format!("unknown MESSAGES_SESSION {other:?}: messages or tower-sessions").into(),
            );
        }
    };
    // Live streams never end by themselves: close them when the shutdown starts, or the
    // graceful shutdown would wait for every open dashboard.
    axum::serve(listener, app)
        .with_graceful_shutdown({
            let live = live.clone();
            async move {
                shutdown_signal().await;
                live.close_live_streams();
            }
        })
        .await?;
    // Served: send what the store deferred (settles of read leases).
    live.flush().await?;
    Ok(())
}
