//! Runnable sessionkit examples, with their apps as library code so the
//! tests in `tests/` can drive them.
//!
//! | example | run | shows |
//! |---|---|---|
//! | `gateway` | `cargo run --example gateway` | both gateway middlewares, login/logout, forwarding to a downstream service |
//! | `gateway-axum` | `cargo run --example gateway-axum` | the same gateway, same HTTP contract, on axum |
//! | `webapp` | `cargo run --example webapp` | a server-rendered shop: sign in with remember-me, cart, "your devices" with revoke buttons, a page of 8 parallel requests |
//! | `counter` | `cargo run --example counter` | the Fiber quick start |
//! | `counter-axum` | `cargo run --example counter-axum` | the Fiber quick start on axum |
//! | `api_sessions` | `cargo run --example api_sessions` | header-only sessions (`X-Session-Token`) |
//! | `background_task` | `cargo run --example background_task` | the store pattern from a tokio task |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod backend;
pub mod background;
pub mod counter;
pub mod gateway;
pub mod gateway_axum;
pub mod keys;
pub mod webapp;

/// Logs to stderr, `RUST_LOG` filtered (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The port in environment variable `name`, or `default` when it is unset.
///
/// # Errors
/// An `InvalidInput` error naming the variable when its value is not a port
/// number (a typo should stop the example, not silently pick another port).
pub fn port_from_env(name: &str, default: u16) -> std::io::Result<u16> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name} must be a port number, got {value:?}"),
            )
        }),
        Err(_) => Ok(default),
    }
}

/// The text of the config file `SESSIONKIT_CONFIG` names, or `None` when
/// the variable is unset.
///
/// # Errors
/// The read's error, its message naming the variable and the path.
pub fn config_file_from_env() -> std::io::Result<Option<String>> {
    let Ok(path) = std::env::var("SESSIONKIT_CONFIG") else {
        return Ok(None);
    };
    std::fs::read_to_string(&path)
        .map(Some)
        .map_err(|e| std::io::Error::new(e.kind(), format!("SESSIONKIT_CONFIG {path}: {e}")))
}

/// The root README's examples, compiled (`no_run`) as doctests of this
/// crate, which has both adapters: they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
