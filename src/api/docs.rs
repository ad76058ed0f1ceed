//! The OpenAPI 3.1 document of the REST API, generated from the handlers' annotations and
//! served at `/v1/openapi.json`.

use super::{handlers, uploads};
use actix_web::HttpResponse;
use std::sync::LazyLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "callcoach", description = "Real-time voice coaching: leads, calls, transcripts, hints, scores."),
    paths(
        handlers::list_leads,
        handlers::create_lead,
        handlers::get_lead,
        handlers::update_lead,
        handlers::erase_lead,
        handlers::lead_calls,
        handlers::lead_scores,
        handlers::record_outcome,
        handlers::list_calls,
        handlers::get_call,
        handlers::hint_feedback,
        uploads::create_upload,
        uploads::get_upload,
        handlers::list_ingest_keys,
        handlers::create_ingest_key,
        handlers::revoke_ingest_key,
        handlers::audit_log,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "leads", description = "Leads, their calls, score history and outcomes"),
        (name = "calls", description = "Calls with transcripts and hints"),
        (name = "uploads", description = "Recorded calls for post-call analysis"),
        (name = "admin", description = "Ingest keys and the audit log"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

static DOC_JSON: LazyLock<String> = LazyLock::new(|| {
    // A failure here would be a bug in the derived document; serve an empty object rather than
    // panic in a request handler.
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "failed to render the openapi document");
        "{}".to_owned()
    })
});

/// `GET /v1/openapi.json` (public: the document holds no data).
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOC_JSON.as_str())
}
