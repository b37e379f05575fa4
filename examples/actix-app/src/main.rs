//! `cargo run -p messages-example-actix`: the actix-web example application on
//! `127.0.0.1:${PORT:-3000}` (start-up as documented in `messages_example_shared`, the
//! same as the axum app's).

use std::process::ExitCode;

use messages_example_shared::{Startup, init_tracing, shutdown_signal, startup_from_env};

#[actix_web::main]
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
    let live = config.clone();
    let server = messages_example_actix::server(listener, config)?;
    // Graceful on Ctrl-C, like the axum app: stop accepting, finish what is in flight.
    // Live streams never end by themselves: close them first.
    let handle = server.handle();
    let stopping = live.clone();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        stopping.close_live_streams();
        handle.stop(true).await;
    });
    server.await?;
    // Served: send what the store deferred (settles of read leases).
    live.flush().await?;
    Ok(())
}
