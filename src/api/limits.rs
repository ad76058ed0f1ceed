//! Rate limits per token and per client IP (GCRA through actix-governor), answering
//! `429 rate_limited` in the API's error shape.
//!
//! The limiter state must be shared by every actix worker, so [`Governors`] is built once
//! outside the `HttpServer` factory and cloned into each worker's routes.

use crate::auth::bearer;
use crate::error::{ErrorBody, ErrorDetail};
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{
    Governor, GovernorConfig, GovernorConfigBuilder, KeyExtractor, SimpleKeyExtractionError,
};
use actix_web::dev::ServiceRequest;
use actix_web::{HttpResponse, HttpResponseBuilder};
use callcoach_actors::Code;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::LazyLock;

/// Sustained requests per second and burst, per client IP and per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    pub per_ip_per_sec: u32,
    pub per_ip_burst: u32,
    pub per_token_per_sec: u32,
    pub per_token_burst: u32,
}

impl Default for ApiLimits {
    /// Per token: a dashboard refreshes a handful of panels a second; 20/s with a burst of 40
    /// covers a page load's fan-out of requests. Per IP: an office behind one NAT may hold a
    /// few dozen users; 100/s with a burst of 200 lets them work and still stops a single host
    /// flooding the database.
    fn default() -> Self {
        ApiLimits {
            per_ip_per_sec: 100,
            per_ip_burst: 200,
            per_token_per_sec: 20,
            per_token_burst: 40,
        }
    }
}

impl ApiLimits {
    /// Limits high enough never to trigger (load tests that measure the database, not the
    /// limiter).
    pub const fn unlimited() -> Self {
        ApiLimits {
            per_ip_per_sec: 1_000_000,
            per_ip_burst: 1_000_000,
            per_token_per_sec: 1_000_000,
            per_token_burst: 1_000_000,
        }
    }
}

/// Keys requests by the peer's IP address (never a forwarded header, which the client sets).
#[derive(Debug, Clone, Copy)]
pub struct IpKey;

/// Keys requests by (a keyed hash of) their bearer token; requests without one share their
/// IP's bucket in this limiter too.
#[derive(Debug, Clone)]
pub struct TokenKey {
    hasher: RandomState,
}

fn peer(req: &ServiceRequest) -> IpAddr {
    // In-process test requests have no peer; they share one bucket.
    req.peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

fn too_many(negative: &NotUntil<QuantaInstant>, mut res: HttpResponseBuilder) -> HttpResponse {
    let wait = negative.wait_time_from(DefaultClock::default().now());
    res.insert_header(("Retry-After", wait.as_secs().max(1).to_string()));
    callcoach_actors::metrics::ERRORS
        .with_label_values(&[Code::RateLimited.as_str()])
        .inc();
    res.json(ErrorBody {
        error: ErrorDetail {
            code: Code::RateLimited.as_str().to_owned(),
            message: format!("too many requests, retry in {} ms", wait.as_millis()),
        },
    })
}

impl KeyExtractor for IpKey {
    type Key = IpAddr;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        Ok(peer(req))
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        response: HttpResponseBuilder,
    ) -> HttpResponse {
        too_many(negative, response)
    }
}

impl KeyExtractor for TokenKey {
    type Key = u64;
    type KeyExtractionError = SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<u64, Self::KeyExtractionError> {
        Ok(match bearer(req.request()) {
            Some(token) => self.hasher.hash_one(("token", token)),
            None => self.hasher.hash_one(("ip", peer(req))),
        })
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        response: HttpResponseBuilder,
    ) -> HttpResponse {
        too_many(negative, response)
    }
}

/// The two limiters, shared by every worker.
#[derive(Clone)]
pub struct Governors {
    ip: GovernorConfig<IpKey, NoOpMiddleware>,
    token: GovernorConfig<TokenKey, NoOpMiddleware>,
}

impl std::fmt::Debug for Governors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Governors")
    }
}

fn nonzero(v: u32) -> u32 {
    v.max(1)
}

impl Governors {
    pub fn new(limits: &ApiLimits) -> Governors {
        // unwrap: `finish` only fails for a zero period or burst, which `nonzero` rules out.
        let ip = GovernorConfigBuilder::default()
            .requests_per_second(u64::from(nonzero(limits.per_ip_per_sec)))
            .burst_size(nonzero(limits.per_ip_burst))
            .key_extractor(IpKey)
            .finish()
            .expect("non-zero rate limit");
        let token = GovernorConfigBuilder::default()
            .requests_per_second(u64::from(nonzero(limits.per_token_per_sec)))
            .burst_size(nonzero(limits.per_token_burst))
            .key_extractor(TokenKey {
                hasher: RandomState::new(),
            })
            .finish()
            .expect("non-zero rate limit");
        Governors { ip, token }
    }

    /// The process-wide limiters with [`ApiLimits::default`] (what [`super::routes`] uses).
    pub fn shared_default() -> Governors {
        static DEFAULT: LazyLock<Governors> =
            LazyLock::new(|| Governors::new(&ApiLimits::default()));
        DEFAULT.clone()
    }

    pub fn per_ip(&self) -> Governor<IpKey, NoOpMiddleware> {
        Governor::new(&self.ip)
    }

    pub fn per_token(&self) -> Governor<TokenKey, NoOpMiddleware> {
        Governor::new(&self.token)
    }
}
