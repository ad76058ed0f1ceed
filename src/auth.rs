//! Who is calling and what they may see.
//!
//! * JWT bearer tokens, HS256 (shared secret) or RS256 (public key), with claims `sub`,
//!   `tenant`, `role` (agent | supervisor | admin), `team` and `exp`; [`Principal`] is the
//!   actix extractor that verifies them.
//! * Scope: agents see their own calls and leads, supervisors their team's, admins their whole
//!   tenant; nothing crosses tenants (every query is keyed by the caller's tenant).
//! * Ingest keys (`cck_…`, per tenant, hashed at rest in the store) for softphones and Twilio,
//!   which may present a key instead of a token: [`Auth::authenticate_ingest`].

use crate::error::ApiError;
use crate::store::{AuditEntry, Call, IngestKey, Lead, Store, Visibility};
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::future::{ready, Ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::store::Role;

/// Clock skew tolerated on `exp`/`nbf` between the token issuer and this server.
const LEEWAY_SECS: u64 = 30;
/// Longest accepted token string: a JWT with these claims is ~300 bytes; RS256 signatures add
/// ~350. 4 KiB stops oversized headers from reaching the decoder.
const MAX_TOKEN_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("unknown or revoked ingest key")]
    UnknownKey,
    #[error("signing needs an hs256 secret; this server verifies with a public key")]
    CannotSign,
    #[error("bad key: {0}")]
    BadKey(String),
    #[error("store error: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => e.into(),
            AuthError::CannotSign | AuthError::BadKey(_) => {
                tracing::error!(error = %e, "auth misconfigured");
                ApiError::Internal
            }
            e => ApiError::Unauthorized(e.to_string()),
        }
    }
}

/// The claims of a callcoach token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

impl Claims {
    /// Claims valid for `ttl` from now.
    pub fn new(sub: &str, tenant: &str, role: Role, team: Option<&str>, ttl: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Claims {
            sub: sub.to_owned(),
            tenant: tenant.to_owned(),
            role,
            team: team.map(str::to_owned),
            exp: now.saturating_add(ttl.as_secs()),
            iat: Some(now),
        }
    }
}

/// Token verification (and, with an HS256 secret, minting for development and tests).
#[derive(Clone)]
pub struct Auth {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

impl Auth {
    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.set_required_spec_claims(&["exp", "sub"]);
        v
    }

    /// Verifies (and mints) HS256 tokens with a shared secret.
    pub fn hs256(secret: &[u8]) -> Auth {
        Auth {
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            validation: Self::validation(Algorithm::HS256),
        }
    }

    /// Verifies RS256 tokens with a PEM public key (tokens are minted by the identity provider).
    pub fn rs256_pem(public_key_pem: &[u8]) -> Result<Auth, AuthError> {
        let decoding = DecodingKey::from_rsa_pem(public_key_pem)
            .map_err(|e| AuthError::BadKey(e.to_string()))?;
        Ok(Auth {
            decoding,
            encoding: None,
            validation: Self::validation(Algorithm::RS256),
        })
    }

    /// From the server's validated configuration.
    pub fn from_config(key: &crate::config::JwtKey) -> Result<Auth, AuthError> {
        match key {
            crate::config::JwtKey::Hs256Secret(s) => Ok(Auth::hs256(s.as_bytes())),
            crate::config::JwtKey::Rs256PublicKeyPem(pem) => Auth::rs256_pem(pem),
        }
    }

    /// Signs `claims` (HS256 only).
    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        let key = self.encoding.as_ref().ok_or(AuthError::CannotSign)?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// Verifies a token and returns who it names.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Invalid("token too long".into()));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let c = data.claims;
        if c.sub.is_empty() || c.tenant.is_empty() {
            return Err(AuthError::Invalid("empty sub or tenant".into()));
        }
        Ok(Principal {
            sub: c.sub,
            tenant: c.tenant,
            role: c.role,
            team: c.team,
            ip: None,
        })
    }

    /// Authenticates a softphone or Twilio stream: an ingest key (`cck_…`, looked up by hash)
    /// or a user token.
    pub async fn authenticate_ingest(
        &self,
        store: &Store,
        presented: &str,
    ) -> Result<IngestPrincipal, AuthError> {
        if presented.starts_with(crate::store::keys::KEY_PREFIX) {
            let key = store
                .find_ingest_key(presented)
                .await?
                .ok_or(AuthError::UnknownKey)?;
            return Ok(IngestPrincipal::Key(key));
        }
        self.verify(presented).map(IngestPrincipal::User)
    }
}

/// Who opened an ingest stream.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestPrincipal {
    /// A user's token: the call must be theirs (agents) or in their scope.
    User(Principal),
    /// A tenant's ingest key: any call of that tenant (agent and lead come from the stream).
    Key(IngestKey),
}

impl IngestPrincipal {
    pub fn tenant(&self) -> &str {
        match self {
            IngestPrincipal::User(p) => &p.tenant,
            IngestPrincipal::Key(k) => &k.tenant_id,
        }
    }
}

/// An authenticated caller (the `Authorization: Bearer` token's claims).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub sub: String,
    pub tenant: String,
    pub role: Role,
    pub team: Option<String>,
    /// Peer address of the request, for the audit log.
    pub ip: Option<String>,
}

impl Principal {
    /// Which rows of the tenant this caller may list.
    pub fn visibility(&self) -> Visibility {
        match (self.role, &self.team) {
            (Role::Admin, _) => Visibility::Tenant,
            (Role::Supervisor, Some(team)) => Visibility::Team(team.clone()),
            // A supervisor without a team supervises nobody: they see what is theirs.
            (Role::Supervisor, None) | (Role::Agent, _) => Visibility::Owner(self.sub.clone()),
        }
    }

    fn sees(&self, owner: Option<&str>, team: Option<&str>) -> bool {
        match self.visibility() {
            Visibility::Tenant => true,
            Visibility::Team(t) => team == Some(t.as_str()),
            Visibility::Owner(o) => owner == Some(o.as_str()),
        }
    }

    /// Whether this caller may read and act on `lead` (which is of the caller's tenant).
    pub fn can_see_lead(&self, lead: &Lead) -> bool {
        lead.tenant_id == self.tenant && self.sees(lead.owner_id.as_deref(), lead.team.as_deref())
    }

    /// Whether this caller may read `call` (which is of the caller's tenant).
    pub fn can_see_call(&self, call: &Call) -> bool {
        call.tenant_id == self.tenant && self.sees(Some(&call.agent_id), call.team.as_deref())
    }

    /// Whether a lead owned by `owner` in `team` would be in this caller's scope (creating or
    /// reassigning a lead must not move it out of the caller's reach).
    pub fn may_assign(&self, owner: Option<&str>, team: Option<&str>) -> bool {
        self.sees(owner, team)
    }

    /// `Forbidden` unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "role {} may not do this",
                self.role
            )))
        }
    }

    /// The audit log's view of this caller.
    pub fn audit(&self) -> AuditEntry {
        AuditEntry {
            actor: self.sub.clone(),
            role: self.role,
            ip: self.ip.clone(),
        }
    }
}

/// The token of an `Authorization: Bearer …` header, if present.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(extract(req))
    }
}

fn extract(req: &HttpRequest) -> Result<Principal, ApiError> {
    let Some(auth) = req.app_data::<web::Data<Auth>>() else {
        tracing::error!("no Auth registered as app_data");
        return Err(ApiError::Internal);
    };
    let token = bearer(req).ok_or(AuthError::Missing)?;
    let mut p = auth.verify(token)?;
    p.ip = req.peer_addr().map(|a| a.ip().to_string());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-of-at-least-32-bytes!!";

    #[test]
    fn minted_tokens_verify_and_carry_their_claims() {
        let auth = Auth::hs256(SECRET);
        let claims = Claims::new(
            "ann",
            "acme",
            Role::Supervisor,
            Some("east"),
            Duration::from_secs(60),
        );
        let p = auth.verify(&auth.mint(&claims).unwrap()).unwrap();
        assert_eq!(
            (p.sub.as_str(), p.tenant.as_str(), p.role),
            ("ann", "acme", Role::Supervisor)
        );
        assert_eq!(p.visibility(), Visibility::Team("east".into()));
    }

    #[test]
    fn wrong_secret_expired_and_garbage_tokens_are_refused() {
        let auth = Auth::hs256(SECRET);
        let other = Auth::hs256(b"another-secret-of-32-bytes-or-more");
        let claims = Claims::new("ann", "acme", Role::Agent, None, Duration::from_secs(60));
        assert!(auth.verify(&other.mint(&claims).unwrap()).is_err());
        let mut old = claims.clone();
        old.exp = 1_000;
        assert!(auth.verify(&auth.mint(&old).unwrap()).is_err());
        assert!(auth.verify("not.a.token").is_err());
        assert!(auth.verify(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn tokens_with_an_unknown_role_are_refused() {
        #[derive(Serialize)]
        struct Raw<'a> {
            sub: &'a str,
            tenant: &'a str,
            role: &'a str,
            exp: u64,
        }
        let auth = Auth::hs256(SECRET);
        let raw = Raw {
            sub: "x",
            tenant: "t",
            role: "root",
            exp: u64::MAX / 2,
        };
        let token =
            jsonwebtoken::encode(&Header::default(), &raw, &EncodingKey::from_secret(SECRET))
                .unwrap();
        assert!(auth.verify(&token).is_err());
    }

    #[test]
    fn visibility_follows_the_role() {
        let p = |role, team: Option<&str>| Principal {
            sub: "me".into(),
            tenant: "t".into(),
            role,
            team: team.map(Into::into),
            ip: None,
        };
        assert_eq!(p(Role::Admin, None).visibility(), Visibility::Tenant);
        assert_eq!(
            p(Role::Agent, Some("east")).visibility(),
            Visibility::Owner("me".into())
        );
        assert_eq!(
            p(Role::Supervisor, None).visibility(),
            Visibility::Owner("me".into())
        );
        assert!(p(Role::Supervisor, Some("east")).may_assign(Some("bob"), Some("east")));
        assert!(!p(Role::Supervisor, Some("east")).may_assign(Some("bob"), Some("west")));
        assert!(!p(Role::Agent, None).may_assign(Some("bob"), None));
    }
}
