//! The Prometheus registry every pipeline stage records into.
//!
//! Metric names follow `callcoach_<subsystem>_<name>_<unit>`; labels stay low-cardinality (never a
//! call id). Each stage declares its own metrics here so `/metrics` has one place to look.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::LazyLock;

/// The process-wide registry served at `/metrics`.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Latency buckets in seconds for pipeline stages: 0.5 ms .. 10 s.
pub const STAGE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0,
    3.0, 5.0, 10.0,
];

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    // unwrap-free: a duplicate name is a programming error caught by the metrics unit test;
    // at run time we keep going with an unregistered collector rather than panic.
    if let Err(e) = REGISTRY.register(Box::new(c.clone())) {
        tracing::error!(error = %e, "failed to register metric");
    }
    c
}

/// A stage-latency histogram in seconds, registered once.
pub fn stage_histogram(name: &str, help: &str) -> Histogram {
    // unwrap: the options are static and valid; `Histogram::with_opts` only fails on bad buckets.
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(STAGE_BUCKETS.to_vec()))
        .expect("valid histogram options");
    register(h)
}

pub fn counter(name: &str, help: &str) -> IntCounter {
    // unwrap: static, valid options.
    register(IntCounter::new(name, help).expect("valid counter options"))
}

pub fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // unwrap: static, valid options.
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter options"))
}

pub fn gauge(name: &str, help: &str) -> IntGauge {
    // unwrap: static, valid options.
    register(IntGauge::new(name, help).expect("valid gauge options"))
}

/// Restarts of supervised actors and workers, by actor kind.
pub static ACTOR_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "callcoach_actor_restarts_total",
        "Restarts of supervised actors and workers after a failure",
        &["actor"],
    )
});

/// Errors answered to clients, by stable code.
pub static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "callcoach_errors_total",
        "Errors answered to clients, by stable error code",
        &["code"],
    )
});

/// Work dropped on a bounded queue, by queue.
pub static DROPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "callcoach_drops_total",
        "Items dropped because a bounded queue was full, by queue",
        &["queue"],
    )
});

/// Renders the registry in the Prometheus text format.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode(&REGISTRY.gather(), &mut buf) {
        tracing::error!(error = %e, "failed to encode metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}
