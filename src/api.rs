//! The REST API under `/v1`: leads (CRUD, search, paging, erasure), a lead's calls and score
//! history, calls with transcript and hints, hint feedback, outcomes, uploads for post-call
//! analysis, ingest keys and the audit log — with its OpenAPI document at `/v1/openapi.json`.
//!
//! Handlers take `web::Data<Store>`, `web::Data<Auth>` (through the [`Principal`] extractor)
//! and, for uploads, `web::Data<Uploads>`, all registered by the server. Every resource is
//! rate-limited per token and per IP ([`limits`]) and bounded in request size; every write and
//! every transcript read leaves an audit row.
//!
//! Scope: out-of-scope rows of the caller's own tenant answer 403; rows of other tenants are
//! never looked up (every query is keyed by the caller's tenant) and so answer 404, which also
//! keeps one tenant from probing which ids another uses.

pub mod docs;
pub mod handlers;
pub mod limits;
pub mod uploads;

pub use docs::ApiDoc;
pub use limits::{ApiLimits, Governors};
pub use uploads::{UploadQueue, Uploads};

use crate::error::ApiError;
use actix_web::web;

/// Largest JSON body accepted (bytes): a lead with a full 16 KiB attributes document and every
/// text field at its 256-byte cap fits in well under 32 KiB.
pub const JSON_LIMIT: usize = 32 * 1024;

/// Registers every `/v1` REST route with the default rate limits (shared process-wide).
pub fn routes(cfg: &mut web::ServiceConfig) {
    routes_with(Governors::shared_default())(cfg)
}

/// Registers every `/v1` REST route with the given limiters. Build `governors` once, outside
/// the `HttpServer` factory, so that all workers count against the same buckets.
pub fn routes_with(governors: Governors) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg| {
        let json = web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(|e, _req| match e {
                actix_web::error::JsonPayloadError::Overflow { .. }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge(format!("json body larger than {JSON_LIMIT} bytes"))
                        .into()
                }
                e => ApiError::BadRequest(e.to_string()).into(),
            });
        let query = web::QueryConfig::default()
            .error_handler(|e, _req| ApiError::BadRequest(e.to_string()).into());
        let path = web::PathConfig::default()
            .error_handler(|e, _req| ApiError::BadRequest(e.to_string()).into());

        macro_rules! resource {
            ($path:expr) => {
                web::resource($path)
                    .app_data(json.clone())
                    .app_data(query.clone())
                    .app_data(path.clone())
                    .wrap(governors.per_token())
                    .wrap(governors.per_ip())
            };
        }
        use handlers::*;
        cfg.service(
            resource!("/v1/leads")
                .route(web::get().to(list_leads))
                .route(web::post().to(create_lead)),
        )
        .service(
            resource!("/v1/leads/{id}")
                .route(web::get().to(get_lead))
                .route(web::patch().to(update_lead))
                .route(web::delete().to(erase_lead)),
        )
        .service(resource!("/v1/leads/{id}/calls").route(web::get().to(lead_calls)))
        .service(resource!("/v1/leads/{id}/scores").route(web::get().to(lead_scores)))
        .service(resource!("/v1/leads/{id}/outcome").route(web::post().to(record_outcome)))
        .service(resource!("/v1/calls").route(web::get().to(list_calls)))
        .service(resource!("/v1/calls/{id}").route(web::get().to(get_call)))
        .service(resource!("/v1/hints/{id}/feedback").route(web::post().to(hint_feedback)))
        .service(resource!("/v1/uploads").route(web::post().to(uploads::create_upload)))
        .service(resource!("/v1/uploads/{id}").route(web::get().to(uploads::get_upload)))
        .service(
            resource!("/v1/ingest-keys")
                .route(web::get().to(list_ingest_keys))
                .route(web::post().to(create_ingest_key)),
        )
        .service(resource!("/v1/ingest-keys/{id}").route(web::delete().to(revoke_ingest_key)))
        .service(resource!("/v1/audit").route(web::get().to(audit_log)))
        .service(
            web::resource("/v1/openapi.json")
                .wrap(governors.per_ip())
                .route(web::get().to(docs::openapi_json)),
        );
    }
}
