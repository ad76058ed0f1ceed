//! Structured logs: `tracing` with JSON lines in production and a readable format in a terminal.
//!
//! Every line of a call carries `call_id`, `lead_id` and `agent_id` because the call's work runs
//! inside a span holding them; every HTTP request gets a `request_id` span from the server's
//! middleware. `RUST_LOG` filters as usual (default `info`).

use crate::config::LogFormat;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber. Calling it twice (tests) is harmless: the second is ignored.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_target(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    // Already installed (a second server in one test process): keep the first.
    let _ = result;
}
