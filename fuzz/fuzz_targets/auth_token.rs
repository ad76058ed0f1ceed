//! Bearer tokens and ingest keys: `auth::Auth::verify` with an HS256 test key, and
//! `store::keys::hash_key` on the same presented string.
//!
//! Random bytes almost never carry a valid HMAC, so `verify` would stop at the signature check
//! and never reach the claims. The first byte therefore picks a mode: even = the input is the
//! presented token as is (header/base64/signature parsing); odd = the input is an arbitrary
//! claims payload (and header choice) which the harness signs with the test key, so the claims
//! decoding, `exp`/`nbf` handling and the empty-sub/tenant checks see hostile JSON.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use callcoach::auth::Auth;
use callcoach::store::keys::hash_key;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

/// A 32-byte test secret (what `Config` requires of real secrets is ≥ 16 bytes).
const KEY: &[u8] = b"fuzz-test-secret-0123456789abcdef";

const HEADERS: [&str; 4] = [
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"HS256"}"#,
    r#"{"alg":"none","typ":"JWT"}"#,
    r#"{"alg":"HS512","typ":"JWT"}"#,
];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let auth = Auth::hs256(KEY);
    if mode % 2 == 0 {
        let presented = String::from_utf8_lossy(rest);
        let _ = auth.verify(&presented);
        let hashed = hash_key(&presented);
        assert_eq!(hashed.len(), 64);
        return;
    }
    let header = HEADERS[usize::from(mode >> 1) % HEADERS.len()];
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(rest));
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("hmac takes any key length");
    mac.update(signing_input.as_bytes());
    let token = format!(
        "{signing_input}.{}",
        B64.encode(mac.finalize().into_bytes())
    );
    if let Ok(principal) = auth.verify(&token) {
        // Only HS256 is accepted, and an accepted token names someone in some tenant.
        assert!(header.contains("HS256"));
        assert!(!principal.sub.is_empty() && !principal.tenant.is_empty());
    }
});
