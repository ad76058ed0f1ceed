//! The REST API through actix's service stack (routing, extractors, rate limiters, error
//! rendering) against a real SQLite store: authorization over every route of the OpenAPI
//! document, limits, audit rows and the error shape.

#[path = "common/db.rs"]
#[macro_use]
mod db;

use actix_web::http::Method;
use actix_web::{test, web, App};
use callcoach::actors::{Hint, HintKind, Priority};
use callcoach::api::{self, ApiLimits, Governors, Uploads};
use callcoach::auth::{Auth, Claims, Role};
use callcoach::store::audit::AuditQuery;
use callcoach::store::{AuditEntry, CallStart, NewLead, NewUpload, Timestamp};
use db::TestDb;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const SECRET: &[u8] = b"api-test-secret-of-enough-length";
const T: &str = "acme";

struct Fixture {
    db: TestDb,
    _uploads_dir: tempfile::TempDir,
    uploads: Uploads,
    _queue: api::UploadQueue,
    job_id: String,
    key_id: String,
    hint_id: String,
}

fn token(sub: &str, tenant: &str, role: Role, team: Option<&str>) -> String {
    let claims = Claims::new(sub, tenant, role, team, Duration::from_secs(600));
    Auth::hs256(SECRET).mint(&claims).unwrap()
}

/// The cast: agents ann and bob and supervisor sue in team west, supervisor sam in east, admin
/// ada — all of tenant acme — and gus, admin of another tenant.
fn who(name: &str) -> String {
    match name {
        "ann" => token("ann", T, Role::Agent, Some("west")),
        "bob" => token("bob", T, Role::Agent, Some("west")),
        "sue" => token("sue", T, Role::Supervisor, Some("west")),
        "sam" => token("sam", T, Role::Supervisor, Some("east")),
        "ada" => token("ada", T, Role::Admin, None),
        "gus" => token("gus", "globex", Role::Admin, None),
        "forged" => {
            let claims = Claims::new("ada", T, Role::Admin, None, Duration::from_secs(600));
            Auth::hs256(b"not-the-server-secret-at-all!!!!")
                .mint(&claims)
                .unwrap()
        }
        other => panic!("unknown principal {other}"),
    }
}

async fn fixture() -> Fixture {
    let db = TestDb::sqlite().await;
    let s = &db.store;
    let sys = AuditEntry::system();
    for (id, owner) in [("l-ann", "ann"), ("l-erase", "ann")] {
        let lead = NewLead {
            id: Some(id.into()),
            name: format!("Lead {id}"),
            owner_id: Some(owner.into()),
            team: Some("west".into()),
            ..Default::default()
        };
        s.create_lead(T, &lead, &sys).await.unwrap();
    }
    s.start_call(&CallStart {
        tenant: T.into(),
        call_id: "c-ann".into(),
        lead_id: Some("l-ann".into()),
        agent_id: "ann".into(),
        team: Some("west".into()),
        origin: "live",
        started_at: Timestamp::from_ms(1_000),
    })
    .await
    .unwrap();
    s.insert_utterance(
        T,
        "c-ann",
        1,
        callcoach::actors::Track::Customer,
        0,
        900,
        "too expensive",
        Some(-0.3),
    )
    .await
    .unwrap();
    let hint = Hint {
        id: uuid::Uuid::new_v4(),
        rule: "price".into(),
        kind: HintKind::Objection,
        priority: Priority::High,
        title: "Price".into(),
        body: "Anchor on value".into(),
        reason: "price objection".into(),
        evidence: vec![],
        at_ms: 950,
    };
    s.insert_hint(T, "c-ann", &hint).await.unwrap();
    let uploads_dir = tempfile::tempdir().unwrap();
    let (uploads, queue) = Uploads::new(uploads_dir.path(), 1024).unwrap();
    let job = s
        .create_upload(
            &NewUpload {
                id: "job-ann".into(),
                tenant: T.into(),
                created_by: "ann".into(),
                team: Some("west".into()),
                lead_id: None,
                filename: "x.wav".into(),
                path: uploads_dir
                    .path()
                    .join("job-ann.wav")
                    .to_string_lossy()
                    .into_owned(),
                size_bytes: 10,
            },
            &sys,
        )
        .await
        .unwrap();
    let (key, _) = s.create_ingest_key(T, "softphones", &sys).await.unwrap();
    Fixture {
        db,
        _uploads_dir: uploads_dir,
        uploads,
        _queue: queue,
        job_id: job.id,
        key_id: key.id,
        hint_id: hint.id.to_string(),
    }
}

/// The API as the server mounts it, on `$store` with `$limits`.
macro_rules! app {
    ($store:expr, $uploads:expr, $limits:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new($store.clone()))
                .app_data(web::Data::new(Auth::hs256(SECRET)))
                .app_data(web::Data::new($uploads.clone()))
                .configure(api::routes_with(Governors::new(&$limits))),
        )
        .await
    };
}

/// One request of the table: who sends it and what status they must get.
struct Case {
    method: Method,
    /// The OpenAPI path template this case covers.
    template: &'static str,
    uri: String,
    body: Option<Value>,
    raw: Option<&'static [u8]>,
    /// Out-of-scope callers and their answer (403 inside the tenant, 404 across tenants), sent
    /// before the allowed one.
    denied: Vec<(&'static str, u16)>,
    allowed: (&'static str, u16),
}

fn case(
    method: Method,
    template: &'static str,
    uri: String,
    denied: Vec<(&'static str, u16)>,
    allowed: (&'static str, u16),
) -> Case {
    Case {
        method,
        template,
        uri,
        body: None,
        raw: None,
        denied,
        allowed,
    }
}

impl Case {
    fn json(mut self, v: Value) -> Self {
        self.body = Some(v);
        self
    }
    fn raw(mut self, b: &'static [u8]) -> Self {
        self.raw = Some(b);
        self
    }
    fn request(&self, bearer: Option<&str>) -> test::TestRequest {
        let mut req = test::TestRequest::default()
            .method(self.method.clone())
            .uri(&self.uri);
        if let Some(t) = bearer {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        if let Some(b) = &self.body {
            req = req.set_json(b);
        } else if let Some(raw) = self.raw {
            req = req
                .insert_header(("Content-Type", "application/octet-stream"))
                .set_payload(raw);
        }
        req
    }
}

fn documented_routes() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::to_value(<api::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[actix_web::test]
async fn every_documented_route_enforces_authentication_and_scope() {
    let f = fixture().await;
    let svc = app!(f.db.store, f.uploads, ApiLimits::unlimited());
    let cases = vec![
        case(
            Method::GET,
            "/v1/leads",
            "/v1/leads".into(),
            vec![],
            ("ann", 200),
        ),
        case(
            Method::POST,
            "/v1/leads",
            "/v1/leads".into(),
            vec![("bob", 403), ("sam", 403)],
            ("sue", 201),
        )
        .json(json!({"id": "l-new", "name": "New Lead", "owner_id": "ann", "team": "west"})),
        case(
            Method::GET,
            "/v1/leads/{id}",
            "/v1/leads/l-ann".into(),
            vec![("bob", 403), ("sam", 403), ("gus", 404)],
            ("sue", 200),
        ),
        case(
            Method::PATCH,
            "/v1/leads/{id}",
            "/v1/leads/l-ann".into(),
            vec![("bob", 403), ("gus", 404)],
            ("ann", 200),
        )
        .json(json!({"company": "Initech"})),
        case(
            Method::DELETE,
            "/v1/leads/{id}",
            "/v1/leads/l-erase".into(),
            vec![("ann", 403), ("sue", 403), ("gus", 404)],
            ("ada", 200),
        ),
        case(
            Method::GET,
            "/v1/leads/{id}/calls",
            "/v1/leads/l-ann/calls".into(),
            vec![("bob", 403), ("gus", 404)],
            ("ann", 200),
        ),
        case(
            Method::GET,
            "/v1/leads/{id}/scores",
            "/v1/leads/l-ann/scores".into(),
            vec![("sam", 403), ("gus", 404)],
            ("ann", 200),
        ),
        case(
            Method::POST,
            "/v1/leads/{id}/outcome",
            "/v1/leads/l-ann/outcome".into(),
            vec![("bob", 403), ("gus", 404)],
            ("ann", 200),
        )
        .json(json!({"outcome": "nurture", "note": "call back in Q3"})),
        case(
            Method::GET,
            "/v1/calls",
            "/v1/calls".into(),
            vec![],
            ("ann", 200),
        ),
        case(
            Method::GET,
            "/v1/calls/{id}",
            "/v1/calls/c-ann".into(),
            vec![("bob", 403), ("sam", 403), ("gus", 404)],
            ("sue", 200),
        ),
        case(
            Method::POST,
            "/v1/hints/{id}/feedback",
            format!("/v1/hints/{}/feedback", f.hint_id),
            vec![("bob", 403), ("gus", 404)],
            ("ann", 200),
        )
        .json(json!({"useful": true})),
        case(
            Method::POST,
            "/v1/uploads",
            "/v1/uploads?filename=call.wav&lead_id=l-ann".into(),
            vec![("bob", 403), ("gus", 404)],
            ("ann", 202),
        )
        .raw(b"RIFF0000WAVEfmt "),
        case(
            Method::GET,
            "/v1/uploads/{id}",
            format!("/v1/uploads/{}", f.job_id),
            vec![("bob", 403), ("sam", 403), ("gus", 404)],
            ("sue", 200),
        ),
        case(
            Method::GET,
            "/v1/ingest-keys",
            "/v1/ingest-keys".into(),
            vec![("ann", 403), ("sue", 403)],
            ("ada", 200),
        ),
        case(
            Method::POST,
            "/v1/ingest-keys",
            "/v1/ingest-keys".into(),
            vec![("ann", 403), ("sue", 403)],
            ("ada", 201),
        )
        .json(json!({"label": "twilio"})),
        case(
            Method::DELETE,
            "/v1/ingest-keys/{id}",
            format!("/v1/ingest-keys/{}", f.key_id),
            vec![("sue", 403), ("gus", 404)],
            ("ada", 204),
        ),
        case(
            Method::GET,
            "/v1/audit",
            "/v1/audit".into(),
            vec![("ann", 403), ("sue", 403)],
            ("ada", 200),
        ),
    ];

    // The table covers exactly the routes the OpenAPI document lists.
    let covered: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.template.to_owned()))
        .collect();
    assert_eq!(covered, documented_routes());

    for c in &cases {
        let label = format!("{} {}", c.method, c.uri);
        for bearer in [None, Some(who("forged")), Some("not-a-jwt".to_owned())] {
            let res = test::call_service(&svc, c.request(bearer.as_deref()).to_request()).await;
            assert_eq!(res.status().as_u16(), 401, "{label} with {bearer:?}");
            let body: Value = test::read_body_json(res).await;
            assert_eq!(body["error"]["code"], "unauthorized", "{label}");
        }
        for (name, status) in &c.denied {
            let res = test::call_service(&svc, c.request(Some(&who(name))).to_request()).await;
            assert_eq!(res.status().as_u16(), *status, "{label} as {name}");
            let body: Value = test::read_body_json(res).await;
            let code = if *status == 403 {
                "forbidden"
            } else {
                "not_found"
            };
            assert_eq!(body["error"]["code"], code, "{label} as {name}");
        }
        let (name, status) = c.allowed;
        let res = test::call_service(&svc, c.request(Some(&who(name))).to_request()).await;
        assert_eq!(res.status().as_u16(), status, "{label} as {name}");
    }

    // Scoped listings: bob (same team, not the owner) and gus (another tenant) see nothing of
    // ann's; her supervisor sees her calls.
    for (name, uri, expect) in [
        ("bob", "/v1/calls", 0),
        ("gus", "/v1/calls", 0),
        ("sue", "/v1/calls", 1),
        ("sam", "/v1/calls", 0),
    ] {
        let req = test::TestRequest::get()
            .uri(uri)
            .insert_header(("Authorization", format!("Bearer {}", who(name))));
        let body: Value = test::call_and_read_body_json(&svc, req.to_request()).await;
        assert_eq!(body.as_array().unwrap().len(), expect, "{uri} as {name}");
    }
    for (name, expect) in [("bob", 0), ("gus", 0), ("sue", 2), ("ann", 2)] {
        let req = test::TestRequest::get()
            .uri("/v1/leads")
            .insert_header(("Authorization", format!("Bearer {}", who(name))));
        let body: Value = test::call_and_read_body_json(&svc, req.to_request()).await;
        assert_eq!(
            body["items"].as_array().unwrap().len(),
            expect,
            "/v1/leads as {name}"
        );
    }
    f.db.cleanup().await;
}

#[actix_web::test]
async fn writes_and_transcript_reads_are_audited() {
    let f = fixture().await;
    let s = f.db.store.clone();
    let svc = app!(s, f.uploads, ApiLimits::unlimited());
    let auth = ("Authorization", format!("Bearer {}", who("sue")));
    let res = test::call_service(
        &svc,
        test::TestRequest::get()
            .uri("/v1/calls/c-ann")
            .insert_header(auth.clone())
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let detail: Value = test::read_body_json(res).await;
    assert_eq!(detail["utterances"][0]["text"], "too expensive");
    assert_eq!(detail["hints"][0]["kind"], "objection");
    let req = test::TestRequest::patch()
        .uri("/v1/leads/l-ann")
        .insert_header(auth)
        .set_json(json!({"source": "web"}));
    assert_eq!(
        test::call_service(&svc, req.to_request()).await.status(),
        200
    );

    let log = s
        .audit_log(
            T,
            &AuditQuery {
                actor: Some("sue".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<(&str, &str)> = log
        .iter()
        .map(|a| (a.action.as_str(), a.target_id.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("lead.update", "l-ann"), ("transcript.read", "c-ann")]
    );
    assert_eq!(log[0].role, Role::Supervisor);
    f.db.cleanup().await;
}

#[actix_web::test]
async fn bad_input_answers_in_the_error_shape() {
    let f = fixture().await;
    let svc = app!(f.db.store, f.uploads, ApiLimits::unlimited());
    let auth = ("Authorization", format!("Bearer {}", who("ada")));
    let send = |req: test::TestRequest| req.insert_header(auth.clone()).to_request();

    let cases: Vec<(_, u16, &str)> = vec![
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/leads")
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload("{nope"),
            ),
            400,
            "bad_request",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/leads")
                    .set_json(json!({"name": "x", "colour": "red"})),
            ),
            400,
            "bad_request",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/leads")
                    .set_json(json!({"name": ""})),
            ),
            400,
            "bad_request",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/leads")
                    .set_json(json!({"name": "x".repeat(40_000)})),
            ),
            413,
            "message_too_large",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/leads")
                    .set_json(json!({"id": "l-ann", "name": "Dup"})),
            ),
            409,
            "conflict",
        ),
        (
            send(test::TestRequest::get().uri("/v1/leads?limit=abc")),
            400,
            "bad_request",
        ),
        (
            send(test::TestRequest::get().uri("/v1/leads?stage=closed")),
            400,
            "bad_request",
        ),
        (
            send(test::TestRequest::get().uri("/v1/leads/missing")),
            404,
            "not_found",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/leads/l-ann/outcome")
                    .set_json(json!({"outcome": "maybe"})),
            ),
            400,
            "bad_request",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/uploads?filename=notes.txt")
                    .set_payload("hello"),
            ),
            400,
            "bad_request",
        ),
        (
            send(
                test::TestRequest::post()
                    .uri("/v1/uploads?filename=big.wav")
                    .set_payload(vec![0u8; 2048]),
            ),
            413,
            "message_too_large",
        ),
        (
            send(test::TestRequest::post().uri("/v1/uploads?filename=empty.wav")),
            400,
            "bad_request",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let res = test::call_service(&svc, req).await;
        assert_eq!(res.status().as_u16(), status, "case {i}");
        let body: Value = test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], code, "case {i}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Refused uploads leave no file behind.
    assert_eq!(std::fs::read_dir(f._uploads_dir.path()).unwrap().count(), 0);

    // A won lead takes no second outcome.
    let won = send(
        test::TestRequest::post()
            .uri("/v1/leads/l-ann/outcome")
            .set_json(json!({"outcome": "won"})),
    );
    assert_eq!(test::call_service(&svc, won).await.status(), 200);
    let lost = send(
        test::TestRequest::post()
            .uri("/v1/leads/l-ann/outcome")
            .set_json(json!({"outcome": "lost"})),
    );
    assert_eq!(test::call_service(&svc, lost).await.status(), 409);
    f.db.cleanup().await;
}

#[actix_web::test]
async fn uploads_are_stored_queued_and_reported() {
    let mut f = fixture().await;
    let svc = app!(f.db.store, f.uploads, ApiLimits::unlimited());
    let req = test::TestRequest::post()
        .uri("/v1/uploads?filename=..%2F..%2Fcall.WAV&lead_id=l-ann")
        .insert_header(("Authorization", format!("Bearer {}", who("ann"))))
        .set_payload(&b"RIFF\x24\x00\x00\x00WAVE"[..]);
    let res = test::call_service(&svc, req.to_request()).await;
    assert_eq!(res.status(), 202);
    let job: Value = test::read_body_json(res).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["filename"], "call.WAV");
    assert_eq!(job["size_bytes"], 12);
    assert!(job.get("path").is_none(), "server paths are not shown");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(
        f._queue.recv().await.as_deref(),
        Some(id.as_str()),
        "queued for the pipeline"
    );
    let stored = f.db.store.get_upload(T, &id).await.unwrap().unwrap();
    assert_eq!(
        std::fs::read(&stored.path).unwrap(),
        b"RIFF\x24\x00\x00\x00WAVE"
    );

    f.db.store
        .update_upload(&id, callcoach::store::JobStatus::Running, 0.25, None, None)
        .await
        .unwrap();
    let req = test::TestRequest::get()
        .uri(&format!("/v1/uploads/{id}"))
        .insert_header(("Authorization", format!("Bearer {}", who("ann"))));
    let job: Value = test::call_and_read_body_json(&svc, req.to_request()).await;
    assert_eq!(job["status"], "running");
    assert_eq!(job["progress"], 0.25);

    // Erasing the lead removes the recording too.
    let req = test::TestRequest::delete()
        .uri("/v1/leads/l-ann")
        .insert_header(("Authorization", format!("Bearer {}", who("ada"))));
    let counts: Value = test::call_and_read_body_json(&svc, req.to_request()).await;
    assert_eq!(counts["calls"], 1);
    assert_eq!(counts["upload_jobs"], 1);
    assert!(!std::path::Path::new(&stored.path).exists());
    f.db.cleanup().await;
}

#[actix_web::test]
async fn rate_limits_apply_per_token_and_answer_429() {
    let f = fixture().await;
    let limits = ApiLimits {
        per_ip_per_sec: 1000,
        per_ip_burst: 1000,
        per_token_per_sec: 1,
        per_token_burst: 3,
    };
    let svc = app!(f.db.store, f.uploads, limits);
    let get = |name: &str| {
        test::TestRequest::get()
            .uri("/v1/leads/l-ann")
            .insert_header(("Authorization", format!("Bearer {}", who(name))))
            .to_request()
    };
    for _ in 0..3 {
        assert_eq!(test::call_service(&svc, get("ann")).await.status(), 200);
    }
    let res = test::call_service(&svc, get("ann")).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another token has its own bucket.
    assert_eq!(test::call_service(&svc, get("sue")).await.status(), 200);

    let per_ip = ApiLimits {
        per_ip_per_sec: 1,
        per_ip_burst: 2,
        per_token_per_sec: 1000,
        per_token_burst: 1000,
    };
    let svc = app!(f.db.store, f.uploads, per_ip);
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for name in ["ann", "sue", "ada"] {
            v.push(test::call_service(&svc, get(name)).await.status().as_u16());
        }
        v
    };
    assert_eq!(
        statuses,
        [200, 200, 429],
        "one address, many tokens: the IP limit holds"
    );
    f.db.cleanup().await;
}

#[actix_web::test]
async fn the_openapi_document_is_served() {
    let f = fixture().await;
    let svc = app!(f.db.store, f.uploads, ApiLimits::unlimited());
    let doc: Value = test::call_and_read_body_json(
        &svc,
        test::TestRequest::get()
            .uri("/v1/openapi.json")
            .to_request(),
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Lead"].is_object());
    assert!(doc["components"]["schemas"]["ScoreEvent"]["properties"]["contributions"].is_object());
    assert_eq!(documented_routes().len(), 17);
    f.db.cleanup().await;
}

/// REST latency at a fixed 1 000 requests/s on a lead read, SQLite and PostgreSQL, with wrk
/// (`apt-get install wrk`). Measures, asserts nothing about speed; run in release:
/// `cargo test --release --test api -- --ignored --nocapture rest_latency_at_1000_rps`.
#[actix_web::test]
#[ignore = "measurement: needs wrk and ~1 minute; figures go to benches/README.md"]
async fn rest_latency_at_1000_rps() {
    /// Leads in the table; each request reads a random one.
    const LEADS: usize = 1_000;
    /// 50 connections each waiting 49 ms after every answer: 1 000 requests/s at 1 ms latency,
    /// 980/s at 2 ms (wrk 4 has no constant-rate mode; the achieved rate is printed).
    const CONNECTIONS: u32 = 50;
    const DELAY_MS: u32 = 49;
    let secs: u32 = std::env::var("CALLCOACH_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    for backend in ["sqlite", "postgres"] {
        let db = if backend == "sqlite" {
            TestDb::sqlite().await
        } else {
            TestDb::postgres().await
        };
        let sys = AuditEntry::system();
        for i in 0..LEADS {
            let lead = NewLead {
                id: Some(format!("lead-{i}")),
                name: format!("Lead {i}"),
                email: Some(format!("lead{i}@example.com")),
                owner_id: Some(format!("agent-{}", i % 20)),
                team: Some("west".into()),
                attributes: Some(json!({"source": "web", "tier": i % 3})),
                ..Default::default()
            };
            db.store.create_lead(T, &lead, &sys).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let (uploads, _queue) = Uploads::new(dir.path(), 1024).unwrap();
        let store = db.store.clone();
        let governors = Governors::new(&ApiLimits::unlimited());
        let server = actix_web::HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(store.clone()))
                .app_data(web::Data::new(Auth::hs256(SECRET)))
                .app_data(web::Data::new(uploads.clone()))
                .configure(api::routes_with(governors.clone()))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);

        let script = dir.path().join("lead_read.lua");
        std::fs::write(
            &script,
            format!(
                r#"wrk.headers["Authorization"] = "Bearer {token}"
request = function() return wrk.format("GET", "/v1/leads/lead-" .. math.random(0, {last})) end
delay = function() return {DELAY_MS} end
done = function(s, lat, req)
  local e = s.errors
  io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d max_us=%d errors=%d\n",
    s.requests, s.duration, lat:percentile(50), lat:percentile(95), lat:percentile(99), lat.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#,
                token = who("ada"),
                last = LEADS - 1
            ),
        )
        .unwrap();
        let run = |duration: u32| {
            tokio::process::Command::new("wrk")
                .args([
                    "-t1",
                    &format!("-c{CONNECTIONS}"),
                    &format!("-d{duration}s"),
                    "-s",
                ])
                .arg(&script)
                .arg(format!("http://{addr}"))
                .output()
        };
        run(3).await.expect("wrk (apt-get install wrk)"); // warm-up: connections, caches
        let out = run(secs).await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("RESULT"))
            .unwrap_or_else(|| panic!("{text}"));
        let field = |k: &str| -> f64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        println!(
            "{backend}: {:.0} req/s over {}s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {}",
            field("requests") / (field("duration_us") / 1e6),
            secs,
            field("p50_us") / 1e3,
            field("p95_us") / 1e3,
            field("p99_us") / 1e3,
            field("max_us") / 1e3,
            field("errors")
        );
        assert_eq!(field("errors"), 0.0, "every request answered 200");
        handle.stop(true).await;
        db.cleanup().await;
    }
}

#[actix_web::test]
async fn uploads_answer_503_when_the_server_has_no_upload_directory() {
    let db = TestDb::sqlite().await;
    let svc = test::init_service(
        App::new()
            .app_data(web::Data::new(db.store.clone()))
            .app_data(web::Data::new(Auth::hs256(SECRET)))
            .configure(api::routes_with(Governors::new(&ApiLimits::unlimited()))),
    )
    .await;
    let req = test::TestRequest::post()
        .uri("/v1/uploads?filename=call.wav")
        .insert_header(("Authorization", format!("Bearer {}", who("ann"))))
        .set_payload("RIFF");
    let res = test::call_service(&svc, req.to_request()).await;
    assert_eq!(res.status(), 503);
    let body: Value = test::read_body_json(res).await;
    assert_eq!(body["error"]["code"], "unavailable");
    db.cleanup().await;
}
