//! `ApiError`: every REST failure as one stable error code (the same `Code` the WebSocket
//! protocols use) and HTTP status, rendered as `{"error":{"code":…,"message":…}}`.

use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use callcoach_actors::metrics::ERRORS;
use callcoach_actors::Code;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No credentials, or credentials that do not verify.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the right to this resource or action.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Malformed or invalid input (body, path, query).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RateLimited(String),
    /// The database (or another dependency) is unreachable right now; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the details are logged, not sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> Code {
        match self {
            ApiError::Unauthorized(_) => Code::Unauthorized,
            ApiError::Forbidden(_) => Code::Forbidden,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::Conflict(_) => Code::Conflict,
            ApiError::BadRequest(_) => Code::BadRequest,
            ApiError::PayloadTooLarge(_) => Code::MessageTooLarge,
            ApiError::RateLimited(_) => Code::RateLimited,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal => Code::Internal,
        }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }
}

/// The error document every REST failure returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`unauthorized`, `forbidden`, `not_found`, ...).
    pub code: String,
    pub message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.code();
        ERRORS.with_label_values(&[code.as_str()]).inc();
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized(_)) {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        res.json(ErrorBody {
            error: ErrorDetail {
                code: code.as_str().to_owned(),
                message: self.to_string(),
            },
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable("database unavailable, retry later".into())
            }
            e => {
                tracing::error!(error = %e, "store error");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn errors_render_their_stable_code_and_status() {
        let cases = [
            (
                ApiError::Unauthorized("no token".into()),
                401,
                "unauthorized",
            ),
            (ApiError::Forbidden("x".into()), 403, "forbidden"),
            (ApiError::not_found("lead"), 404, "not_found"),
            (ApiError::Conflict("x".into()), 409, "conflict"),
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (
                ApiError::PayloadTooLarge("x".into()),
                413,
                "message_too_large",
            ),
            (ApiError::RateLimited("x".into()), 429, "rate_limited"),
            (ApiError::Unavailable("x".into()), 503, "unavailable"),
            (ApiError::Internal, 500, "internal"),
        ];
        for (err, status, code) in cases {
            let res = err.error_response();
            assert_eq!(res.status().as_u16(), status);
            let body = to_bytes(res.into_body()).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], code);
            assert!(v["error"]["message"].is_string());
        }
    }

    #[test]
    fn store_errors_map_to_client_errors() {
        assert!(matches!(
            ApiError::from(StoreError::NotFound),
            ApiError::NotFound(_)
        ));
        assert!(matches!(
            ApiError::from(StoreError::Conflict("x".into())),
            ApiError::Conflict(_)
        ));
        assert!(matches!(
            ApiError::from(StoreError::Invalid("x".into())),
            ApiError::BadRequest(_)
        ));
        let down = StoreError::Database(sqlx::Error::PoolTimedOut);
        assert!(matches!(ApiError::from(down), ApiError::Unavailable(_)));
    }
}
