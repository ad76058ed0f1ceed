//! Correlation ids and HTTP metrics: every request gets an `x-request-id` (the caller's if it is
//! sane, else a fresh UUIDv7), every log line inside it carries the id, and the response echoes
//! it. Latency is recorded per route pattern (never per raw path: ids would explode cardinality).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use prometheus::HistogramVec;
use std::sync::LazyLock;
use std::time::Instant;
use tracing::Instrument;

const HEADER: &str = "x-request-id";

static HTTP_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    let opts = prometheus::HistogramOpts::new(
        "callcoach_http_request_duration_seconds",
        "HTTP request latency by route pattern and status class",
    )
    .buckets(crate::actors::metrics::STAGE_BUCKETS.to_vec());
    // unwrap: static, valid options.
    let h = HistogramVec::new(opts, &["route", "status"]).expect("valid histogram options");
    if let Err(e) = crate::actors::metrics::REGISTRY.register(Box::new(h.clone())) {
        tracing::error!(error = %e, "failed to register http histogram");
    }
    h
});

/// A caller-supplied id is kept only if it is short and plain, so it is safe in logs.
fn sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let mut res = next.call(req).instrument(span).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = format!("{}xx", res.status().as_u16() / 100);
    HTTP_SECONDS
        .with_label_values(&[route.as_str(), status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_ids_are_kept() {
        assert!(super::sane("0190c0de-1234"));
        assert!(!super::sane("a b"));
        assert!(!super::sane(&"x".repeat(65)));
        assert!(!super::sane("id\nforged-log-line"));
    }
}
