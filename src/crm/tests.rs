use super::*;
use crate::store::Timestamp;
use proptest::prelude::*;
use rand::SeedableRng;

fn row(payload: &str) -> OutboxRow {
    OutboxRow {
        id: 7,
        tenant_id: "acme".into(),
        lead_id: "contact-42".into(),
        kind: "stage_changed".into(),
        payload: payload.into(),
        idempotency_key: "score:0b7e".into(),
        attempts: 0,
        next_attempt_at: Timestamp::from_ms(0),
        created_at: Timestamp::from_ms(0),
        delivered_at: None,
        last_error: None,
    }
}

#[test]
fn hmac_matches_rfc_4231_test_case_2() {
    assert_eq!(
        hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn signatures_cover_timestamp_and_body() {
    let sig = signature(b"s3cret", 1_700_000_000, b"{\"a\":1}");
    assert!(sig.starts_with("sha256="));
    assert_eq!(
        sig,
        format!(
            "sha256={}",
            hmac_sha256_hex(b"s3cret", b"1700000000.{\"a\":1}")
        )
    );
    assert!(verify_signature(
        b"s3cret",
        1_700_000_000,
        b"{\"a\":1}",
        &sig
    ));
    assert!(!verify_signature(
        b"s3cret",
        1_700_000_001,
        b"{\"a\":1}",
        &sig
    ));
    assert!(!verify_signature(
        b"s3cret",
        1_700_000_000,
        b"{\"a\":2}",
        &sig
    ));
    assert!(!verify_signature(
        b"other",
        1_700_000_000,
        b"{\"a\":1}",
        &sig
    ));
    assert!(!verify_signature(
        b"s3cret",
        1_700_000_000,
        b"{\"a\":1}",
        "sha256=zz"
    ));
    assert!(!verify_signature(
        b"s3cret",
        1_700_000_000,
        b"{\"a\":1}",
        "md5=00"
    ));
}

#[test]
fn payload_has_ghl_contact_fields_tags_and_custom_fields() {
    let r = row(
        r#"{"tenant":"acme","lead_id":"contact-42","call_id":"c1","score":0.734,"stage":"qualified",
            "prev_stage":"engaged","reason":"score 0.73 reached qualified threshold 0.60",
            "score_event_id":99,"at":"2026-12-03T14:00:00.000Z","future_field":true}"#,
    );
    let p = GhlPayload::from_row(&r).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["type"], "stage_changed");
    assert_eq!(json["contactId"], "contact-42");
    assert_eq!(json["locationId"], "acme");
    assert_eq!(json["eventId"], "score:0b7e");
    assert_eq!(
        json["tags"],
        serde_json::json!(["callcoach", "callcoach-qualified"])
    );
    let fields = &json["customFields"];
    assert_eq!(
        fields[0],
        serde_json::json!({"key": "callcoach_score", "field_value": 73})
    );
    assert_eq!(
        fields[1],
        serde_json::json!({"key": "callcoach_stage", "field_value": "qualified"})
    );
    assert_eq!(fields[2]["key"], "callcoach_stage_reason");
    assert_eq!(json["callcoach"]["score"], 0.734);
    assert_eq!(json["callcoach"]["prev_stage"], "engaged");
    assert_eq!(json["callcoach"]["outbox_id"], 7);
}

#[test]
fn outcome_payload_without_score_sends_only_the_stage() {
    let p = GhlPayload::from_row(&row(r#"{"stage":"won","score":null}"#)).unwrap();
    assert_eq!(p.custom_fields.len(), 1);
    assert_eq!(p.custom_fields[0].key, FIELD_STAGE);
    assert!(GhlPayload::from_row(&row("not json")).is_none());
    assert!(
        GhlPayload::from_row(&row(r#"{"score":0.5}"#)).is_none(),
        "stage is required"
    );
}

#[test]
fn breaker_opens_after_the_threshold_probes_and_closes() {
    let cfg = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_secs(10),
    };
    let mut b = Breaker::new(cfg);
    let t0 = Instant::now();
    assert_eq!(b.permit(t0), Permit::Go);
    b.on_failure(t0);
    b.on_failure(t0);
    b.on_success(t0);
    b.on_failure(t0);
    b.on_failure(t0);
    assert_eq!(
        b.state(),
        BreakerState::Closed,
        "a success resets the count"
    );
    b.on_failure(t0);
    assert_eq!(b.state(), BreakerState::Open);
    let reopen = t0 + Duration::from_secs(10);
    assert_eq!(b.permit(t0 + Duration::from_secs(5)), Permit::Wait(reopen));
    assert_eq!(b.peek(t0 + Duration::from_secs(5)), Permit::Wait(reopen));

    // Half-open: one probe at a time.
    let t1 = reopen + Duration::from_millis(1);
    assert_eq!(b.peek(t1), Permit::Probe);
    assert_eq!(b.permit(t1), Permit::Probe);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(matches!(b.permit(t1), Permit::Wait(_)));
    assert!(matches!(b.peek(t1), Permit::Wait(_)));
    // A failed probe reopens for another full period.
    b.on_failure(t1);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.permit(t1), Permit::Wait(t1 + Duration::from_secs(10)));
    // A successful probe closes.
    let t2 = t1 + Duration::from_secs(11);
    assert_eq!(b.permit(t2), Permit::Probe);
    b.on_success(t2);
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(b.permit(t2), Permit::Go);
}

#[test]
fn backoff_ceilings_double_up_to_the_cap() {
    let b = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let c: Vec<u64> = (1..=8).map(|n| b.ceiling(n).as_secs()).collect();
    assert_eq!(c, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(b.ceiling(0), Duration::from_secs(1));
    assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
}

#[test]
fn config_rejects_bad_urls_and_empty_secrets() {
    assert!(DispatcherConfig::new("https://hooks.example.com/x", "k").is_ok());
    assert!(matches!(
        DispatcherConfig::new("ftp://x/y", "k"),
        Err(CrmError::BadUrl(_))
    ));
    assert!(matches!(
        DispatcherConfig::new("not a url", "k"),
        Err(CrmError::BadUrl(_))
    ));
    assert!(matches!(
        DispatcherConfig::new("http://x/y", ""),
        Err(CrmError::MissingSecret)
    ));
    let mut c = DispatcherConfig::new("http://x/y", "k").unwrap();
    c.lease = c.request_timeout;
    assert!(matches!(c.validate(), Err(CrmError::BadSetting(_))));
}

proptest! {
    /// Every delay lies in [ceiling/2, ceiling] and the ceiling never shrinks with attempts.
    #[test]
    fn jittered_delays_stay_within_their_band(attempt in 1u32..80, seed in any::<u64>(),
                                              base_ms in 1u64..5000, max_s in 1u64..7200) {
        let b = Backoff { base: Duration::from_millis(base_ms), max: Duration::from_secs(max_s).max(Duration::from_millis(base_ms)) };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let c = b.ceiling(attempt);
        let d = b.delay(attempt, &mut rng);
        prop_assert!(d >= c / 2 && d <= c, "{:?} not in [{:?}, {:?}]", d, c / 2, c);
        prop_assert!(b.ceiling(attempt + 1) >= c);
        prop_assert!(c <= b.max);
    }
}
