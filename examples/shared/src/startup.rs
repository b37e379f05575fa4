//! What both binaries do before they serve, and how they stop: the same logs, the same
//! variables, the same listening line.

use std::net::{Ipv4Addr, SocketAddr};

use messages_core::MessagesConfig;
use tracing_subscriber::EnvFilter;

use crate::{ConfigError, config_from, port_from};

/// Logs to stderr, filtered by `RUST_LOG`; by default `info`, with actix-server's own
/// start and stop lines at `warn`, so that both binaries log the same.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn")),
        )
        .init();
}

/// A configured application, its port bound: what a binary serves.
#[derive(Debug)]
pub struct Startup {
    /// The bound listener on `127.0.0.1` (non-blocking, as `tokio::net::TcpListener::from_std`
    /// and actix-web's `HttpServer::listen` want it).
    pub listener: std::net::TcpListener,
    /// The messages configuration from the environment.
    pub config: MessagesConfig,
}

/// [`startup`] from the process environment.
///
/// # Errors
/// As [`startup`].
pub async fn startup_from_env() -> Result<Startup, ConfigError> {
    startup(|name| std::env::var(name).ok()).await
}

/// The configuration ([`config_from`]), then the port ([`port_from`]) bound on
/// `127.0.0.1`; prints `messages example listening on http://127.0.0.1:{port}/` on
/// stdout (with `PORT=0`, the port picked: tests read this line).
///
/// # Errors
/// A configuration refused, `PORT` not a port number, or the port not bindable.
pub async fn startup(var: impl Fn(&str) -> Option<String>) -> Result<Startup, ConfigError> {
    let config = config_from(&var).await?;
    let port = port_from(&var)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listen_error = |source| ConfigError::Listen { addr, source };
    // tokio's bind (SO_REUSEADDR, like every tokio server), handed out as a std listener
    // so that any framework can serve it.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(listen_error)?
        .into_std()
        .map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    println!("{}", listening_line(local));
    Ok(Startup { listener, config })
}

/// The line a binary prints when it listens on `addr`.
pub fn listening_line(addr: SocketAddr) -> String {
    format!("messages example listening on http://{addr}/")
}

/// Resolves on Ctrl-C: the binaries stop gracefully then. If Ctrl-C cannot be listened
/// for, logs why and never resolves.
pub async fn shutdown_signal() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!("cannot listen for Ctrl-C: {e}");
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn binds_the_port_asked_for() {
        let started = startup(|name| (name == "PORT").then(|| "0".to_owned()))
            .await
            .unwrap();
        let addr = started.listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        assert!(started.config.server_store().is_some(), "memory by default");
        // The port is taken now: a second start says which address failed.
        let port = addr.port().to_string();
        let err = startup(|name| (name == "PORT").then(|| port.clone()))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on {addr}: ")),
            "{err}"
        );
        assert_eq!(
            listening_line(addr),
            format!("messages example listening on http://127.0.0.1:{port}/")
        );
    }
}
