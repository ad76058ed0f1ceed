//! Storage: every query and both migrations, against a fresh SQLite file and a fresh
//! PostgreSQL database per test.

#[path = "common/db.rs"]
#[macro_use]
mod db;

use callcoach::actors::{Contribution, Hint, HintKind, Priority, TalkStats, Track, UtteranceId};
use callcoach::store::audit::AuditQuery;
use callcoach::store::writer::{CallRecord, StoreWriter};
use callcoach::store::{
    AuditEntry, Backend, CallStart, JobStatus, LeadPatch, LeadQuery, NewLead, NewUpload, Outcome,
    Role, ScoreChange, Stage, Store, StoreError, Timestamp, Visibility, TABLES,
};
use db::TestDb;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

const T: &str = "acme";

fn admin() -> AuditEntry {
    AuditEntry {
        actor: "root".into(),
        role: Role::Admin,
        ip: Some("127.0.0.1".into()),
    }
}

fn lead(id: &str, name: &str, owner: &str, team: &str) -> NewLead {
    NewLead {
        id: Some(id.into()),
        name: name.into(),
        email: Some(format!("{id}@example.com")),
        phone: Some("+1 415 555 0100".into()),
        owner_id: Some(owner.into()),
        team: Some(team.into()),
        ..Default::default()
    }
}

fn call(id: &str, lead: &str, agent: &str, at_ms: i64) -> CallStart {
    CallStart {
        tenant: T.into(),
        call_id: id.into(),
        lead_id: Some(lead.into()),
        agent_id: agent.into(),
        team: Some("west".into()),
        origin: "live",
        started_at: Timestamp::from_ms(at_ms),
    }
}

fn hint(at_ms: u64) -> Hint {
    Hint {
        id: uuid::Uuid::new_v4(),
        rule: "price_objection".into(),
        kind: HintKind::Objection,
        priority: Priority::High,
        title: "Price objection".into(),
        body: "Anchor on value".into(),
        reason: "customer said \"too expensive\"".into(),
        evidence: vec![UtteranceId(2)],
        at_ms,
    }
}

fn score(lead: &str, s: f64, stage: Stage) -> ScoreChange {
    ScoreChange {
        key: uuid::Uuid::new_v4(),
        tenant: T.into(),
        lead_id: lead.into(),
        call_id: None,
        score: Some(s),
        stage,
        reason: format!("score {s:.2}"),
        contributions: vec![Contribution {
            feature: "buying_signals".into(),
            value: 2.0,
            weight: 0.4,
            contribution: 0.8,
        }],
    }
}

async fn counts(store: &Store) -> BTreeMap<&'static str, i64> {
    store.table_counts().await.unwrap().into_iter().collect()
}

async fn migrations_create_every_table(db: &TestDb) {
    let c = counts(&db.store).await;
    assert_eq!(c.len(), TABLES.len());
    assert!(c.values().all(|n| *n == 0), "{c:?}");
    // Running the migrations again (a second node starting, a restart) is a no-op.
    let again = Store::connect(&db.url).await.unwrap();
    assert_eq!(counts(&again).await.len(), TABLES.len());
    again.close().await;
    db.store.ping().await.unwrap();
    if db.store.backend() == Backend::Sqlite {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}

async fn lead_crud(db: &TestDb) {
    let s = &db.store;
    let created = s
        .create_lead(T, &lead("l1", "Ada Lovelace", "ann", "west"), &admin())
        .await
        .unwrap();
    assert_eq!(created.stage, Stage::New);
    assert_eq!(created.tenant_id, T);
    assert_eq!(s.get_lead(T, "l1").await.unwrap().unwrap(), created);
    // Same id in another tenant is another lead; in the same tenant a conflict.
    s.create_lead(
        "other",
        &lead("l1", "Someone Else", "bob", "east"),
        &admin(),
    )
    .await
    .unwrap();
    let dup = s
        .create_lead(T, &lead("l1", "Dup", "ann", "west"), &admin())
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(
        s.get_lead(T, "l1").await.unwrap().unwrap().name,
        "Ada Lovelace"
    );

    let patch = LeadPatch {
        company: Some("Analytical Engines".into()),
        prior_contacts: Some(3),
        attributes: Some(serde_json::json!({"crm": {"tier": "gold"}})),
        ..Default::default()
    };
    let updated = s.update_lead(T, "l1", &patch, &admin()).await.unwrap();
    assert_eq!(updated.company.as_deref(), Some("Analytical Engines"));
    assert_eq!(updated.prior_contacts, 3);
    assert_eq!(updated.name, "Ada Lovelace", "absent fields stay");
    assert_eq!(updated.attributes.0["crm"]["tier"], "gold");
    assert!(matches!(
        s.update_lead(T, "nope", &patch, &admin()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.create_lead(
            T,
            &NewLead {
                name: "".into(),
                ..Default::default()
            },
            &admin()
        )
        .await,
        Err(StoreError::Invalid(_))
    ));
    let generated = s
        .create_lead(
            T,
            &NewLead {
                name: "No Id".into(),
                ..Default::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(generated.id.len(), 36);

    let log = s.audit_log(T, &AuditQuery::default()).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["lead.create", "lead.update", "lead.create"]);
    assert_eq!(log[1].target_id, "l1");
    assert_eq!(log[1].ip.as_deref(), Some("127.0.0.1"));
}

async fn lead_search_and_paging(db: &TestDb) {
    let s = &db.store;
    let people = [
        ("a", "Alice Anders", "ann", "west"),
        ("b", "Bob Brown", "ann", "west"),
        ("c", "Carol 50% Off", "bob", "west"),
        ("d", "Dan Dorsey", "bob", "east"),
        ("e", "Eve Evans", "cat", "east"),
        ("f", "Frank ALICEson", "cat", "east"),
        ("g", "Gina Gray", "ann", "west"),
    ];
    for (id, name, owner, team) in people {
        s.create_lead(T, &lead(id, name, owner, team), &admin())
            .await
            .unwrap();
        // Distinct creation times so "newest first" is well defined.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let q = |limit, cursor: Option<String>| LeadQuery {
        limit: Some(limit),
        cursor,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_leads(T, &Visibility::Tenant, &q(3, cursor))
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|l| l.id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["g", "f", "e", "d", "c", "b", "a"],
        "newest first, each once"
    );

    let search = |text: &str| LeadQuery {
        q: Some(text.into()),
        ..Default::default()
    };
    let ids =
        |page: callcoach::store::LeadPage| page.items.into_iter().map(|l| l.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .list_leads(T, &Visibility::Tenant, &search("alice"))
            .await
            .unwrap()),
        ["f", "a"]
    );
    // `%` is a literal, not a wildcard.
    assert_eq!(
        ids(s
            .list_leads(T, &Visibility::Tenant, &search("50%"))
            .await
            .unwrap()),
        ["c"]
    );
    assert_eq!(
        ids(s
            .list_leads(T, &Visibility::Tenant, &search("b@example"))
            .await
            .unwrap()),
        ["b"]
    );
    let west = s
        .list_leads(T, &Visibility::Team("west".into()), &LeadQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(west), ["g", "c", "b", "a"]);
    let anns = s
        .list_leads(T, &Visibility::Owner("ann".into()), &LeadQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(anns), ["g", "b", "a"]);
    let staged = LeadQuery {
        stage: Some(Stage::Won),
        ..Default::default()
    };
    assert!(s
        .list_leads(T, &Visibility::Tenant, &staged)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(s
        .list_leads("other", &Visibility::Tenant, &LeadQuery::default())
        .await
        .unwrap()
        .items
        .is_empty());
    let bad = LeadQuery {
        cursor: Some("garbage".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.list_leads(T, &Visibility::Tenant, &bad).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn calls_utterances_and_hints(db: &TestDb) {
    let s = &db.store;
    // A call for a lead the store has never seen registers the lead, owned by the agent.
    s.start_call(&call("c1", "new-lead", "ann", 1_000))
        .await
        .unwrap();
    s.start_call(&call("c1", "new-lead", "ann", 1_000))
        .await
        .unwrap(); // replay: no error
    let stub = s.get_lead(T, "new-lead").await.unwrap().unwrap();
    assert_eq!(stub.owner_id.as_deref(), Some("ann"));
    s.start_call(&call("c2", "new-lead", "ann", 5_000))
        .await
        .unwrap();

    s.insert_utterance(
        T,
        "c1",
        2,
        Track::Customer,
        4_000,
        5_000,
        "too expensive",
        Some(-0.4),
    )
    .await
    .unwrap();
    s.insert_utterance(
        T,
        "c1",
        1,
        Track::Agent,
        1_500,
        3_000,
        "hi there",
        Some(0.2),
    )
    .await
    .unwrap();
    s.insert_utterance(T, "c1", 1, Track::Agent, 1_500, 3_000, "replayed", None)
        .await
        .unwrap();
    let utts = s.call_utterances(T, "c1").await.unwrap();
    assert_eq!(
        utts.iter().map(|u| u.seq).collect::<Vec<_>>(),
        [1, 2],
        "by time"
    );
    assert_eq!(utts[0].text, "hi there", "finals are immutable");
    assert_eq!(utts[1].track, "customer");
    assert!((utts[1].sentiment.unwrap() + 0.4).abs() < 1e-6);

    let h = hint(4_100);
    s.insert_hint(T, "c1", &h).await.unwrap();
    s.insert_hint(T, "c1", &h).await.unwrap();
    let hints = s.call_hints(T, "c1").await.unwrap();
    assert_eq!(hints.len(), 1);
    assert_eq!(hints[0].kind, "objection");
    assert_eq!(hints[0].priority, "high");
    assert_eq!(hints[0].evidence, [2]);
    assert_eq!(hints[0].useful, None);
    let fb = s
        .set_hint_feedback(T, &h.id.to_string(), false, &admin())
        .await
        .unwrap();
    assert_eq!(fb.useful, Some(false));
    let fb = s
        .set_hint_feedback(T, &h.id.to_string(), true, &admin())
        .await
        .unwrap();
    assert_eq!(fb.useful, Some(true));
    assert_eq!(fb.feedback_by.as_deref(), Some("root"));
    assert!(matches!(
        s.set_hint_feedback("other", &h.id.to_string(), true, &admin())
            .await,
        Err(StoreError::NotFound)
    ));

    let talk = TalkStats {
        agent_ms: 1_500,
        customer_ms: 1_000,
        agent_share: 0.6,
        ..Default::default()
    };
    s.end_call(T, "c1", Timestamp::from_ms(9_000), "hangup", Some(&talk))
        .await
        .unwrap();
    let c1 = s.get_call(T, "c1").await.unwrap().unwrap();
    assert_eq!(c1.ended_at, Some(Timestamp::from_ms(9_000)));
    assert_eq!(c1.talk_stats.unwrap().0.agent_ms, 1_500);
    assert!(s.get_call("other", "c1").await.unwrap().is_none());

    let calls = s.lead_calls(T, "new-lead", None, 10).await.unwrap();
    assert_eq!(
        calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["c2", "c1"]
    );
    let older = s
        .lead_calls(T, "new-lead", Some(Timestamp::from_ms(5_000)), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(
        s.list_calls(T, &Visibility::Owner("ann".into()), None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.list_calls(T, &Visibility::Owner("bob".into()), None, 10)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        s.list_calls(T, &Visibility::Team("west".into()), None, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A softphone that reconnects to its call id after the call ended starts a second call session
/// whose utterance numbers and audio clock begin again: its finals are stored after the first
/// session's (found by the fault soak, which lost them to `ON CONFLICT DO NOTHING`), and a
/// replay of either session's finals still writes nothing twice.
async fn a_reused_call_id_keeps_every_session_s_finals(db: &TestDb) {
    let s = &db.store;
    s.start_call(&call("re", "lead-re", "ann", 1_000))
        .await
        .unwrap();
    let first = [
        (1, 500, 2_000, "hello there"),
        (2, 2_500, 4_000, "how are you"),
    ];
    let second = [
        (1, 0, 1_900, "sorry, lost you"),
        (2, 2_200, 3_000, "where were we"),
    ];
    for (seq, a, b, text) in first.iter().chain(second.iter()) {
        s.insert_utterance(T, "re", *seq, Track::Agent, *a, *b, text, None)
            .await
            .unwrap();
    }
    // The writer replays batches whose commit it could not confirm.
    for (seq, a, b, text) in first.iter().chain(second.iter()) {
        s.insert_utterance(T, "re", *seq, Track::Agent, *a, *b, text, None)
            .await
            .unwrap();
    }
    let mut utts = s.call_utterances(T, "re").await.unwrap();
    utts.sort_by_key(|u| u.seq);
    let got: Vec<(i64, &str)> = utts.iter().map(|u| (u.seq, u.text.as_str())).collect();
    assert_eq!(
        got,
        [
            (1, "hello there"),
            (2, "how are you"),
            (3, "sorry, lost you"),
            (4, "where were we")
        ]
    );
}

async fn scores_write_the_outbox_in_the_same_transaction(db: &TestDb) {
    let s = &db.store;
    s.create_lead(T, &lead("l1", "Ada", "ann", "west"), &admin())
        .await
        .unwrap();
    let first = s
        .record_score(&score("l1", 0.40, Stage::Contacted))
        .await
        .unwrap();
    assert_eq!(
        (first.prev_stage, first.stage),
        (Stage::New, Stage::Contacted)
    );
    assert!(first.outbox_id.is_some(), "a stage change goes to the CRM");
    let small = s
        .record_score(&score("l1", 0.43, Stage::Contacted))
        .await
        .unwrap();
    assert!(small.outbox_id.is_none(), "a 3-point move does not");
    let big = s
        .record_score(&score("l1", 0.46, Stage::Contacted))
        .await
        .unwrap();
    assert!(
        big.outbox_id.is_some(),
        "6 points since the last sent score does"
    );
    let replay = score("l1", 0.9, Stage::Qualified);
    assert!(s.record_score(&replay).await.unwrap().outbox_id.is_some());
    assert!(
        s.record_score(&replay).await.unwrap().outbox_id.is_none(),
        "same key, one outbox row"
    );

    let lead = s.get_lead(T, "l1").await.unwrap().unwrap();
    assert_eq!(lead.stage, Stage::Qualified);
    assert!((lead.score.unwrap() - 0.9).abs() < 1e-9);
    let history = s.score_history(T, "l1", 50).await.unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(history[0].contributions.0[0].feature, "buying_signals");
    assert!(
        (history[4].score.unwrap() - 0.40).abs() < 1e-9,
        "oldest last"
    );
    assert_eq!(s.outbox_pending().await.unwrap(), 3);
    let row = s
        .outbox_get(first.outbox_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.kind, "stage_changed");
    let payload: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
    assert_eq!(payload["stage"], "contacted");
    assert_eq!(payload["lead_id"], "l1");
    assert!(
        !row.payload.contains("example.com"),
        "no personal data in the payload"
    );

    let bad = score("l1", 1.5, Stage::Qualified);
    assert!(matches!(
        s.record_score(&bad).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.record_score(&score("ghost", 0.5, Stage::New)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.score_history(T, "l1", 50).await.unwrap().len(),
        5,
        "failed writes left nothing"
    );

    // Outcomes: explicit, audited, and final for won/lost.
    let won = s
        .record_outcome(T, "l1", Outcome::Won, Some("signed"), &admin())
        .await
        .unwrap();
    assert_eq!((won.prev_stage, won.stage), (Stage::Qualified, Stage::Won));
    assert!(won.outbox_id.is_some());
    let again = s
        .record_outcome(T, "l1", Outcome::Lost, None, &admin())
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let after = s
        .record_score(&score("l1", 0.1, Stage::Engaged))
        .await
        .unwrap();
    assert_eq!(after.stage, Stage::Won, "scores never reopen a closed lead");
    let history = s.score_history(T, "l1", 1).await.unwrap();
    assert_eq!(history[0].stage, Stage::Won);
    let outcome_event = &s.score_history(T, "l1", 2).await.unwrap()[1];
    assert!(
        outcome_event.reason.contains("won"),
        "{}",
        outcome_event.reason
    );
}

async fn outbox_claims_lease_and_retries(db: &TestDb) {
    let s = &db.store;
    s.create_lead(T, &lead("l1", "Ada", "ann", "west"), &admin())
        .await
        .unwrap();
    for (i, st) in [Stage::Contacted, Stage::Engaged, Stage::Qualified]
        .into_iter()
        .enumerate()
    {
        s.record_score(&score("l1", 0.3 + 0.2 * i as f64, st))
            .await
            .unwrap();
    }
    let lease = Duration::from_secs(60);
    let claimed = s.outbox_claim_due(2, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed[0].id < claimed[1].id, "oldest first");
    let rest = s.outbox_claim_due(10, lease).await.unwrap();
    assert_eq!(rest.len(), 1, "leased rows are hidden");
    assert!(s.outbox_claim_due(10, lease).await.unwrap().is_empty());

    s.outbox_mark_delivered(claimed[0].id).await.unwrap();
    s.outbox_mark_failed(claimed[1].id, Timestamp::from_ms(0), "HTTP 503")
        .await
        .unwrap();
    let retry = s.outbox_claim_due(10, lease).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].id, claimed[1].id);
    assert_eq!(retry[0].attempts, 1);
    assert_eq!(retry[0].last_error.as_deref(), Some("HTTP 503"));
    s.outbox_mark_failed(claimed[0].id, Timestamp::from_ms(0), "late failure")
        .await
        .unwrap();
    let delivered = s.outbox_get(claimed[0].id).await.unwrap().unwrap();
    assert!(delivered.delivered_at.is_some());
    assert_eq!(
        delivered.last_error, None,
        "a delivered row stays delivered"
    );
    assert_eq!(s.outbox_pending().await.unwrap(), 2);

    // A row claimed but not attempted goes back without counting an attempt.
    assert!(
        s.outbox_claim_due(10, lease).await.unwrap().is_empty(),
        "all leased"
    );
    s.outbox_release(retry[0].id, Timestamp::from_ms(0))
        .await
        .unwrap();
    let back = s.outbox_claim_due(10, lease).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].id, back[0].attempts), (retry[0].id, 1));
}

/// Puts a lead with one call of everything (utterances, hints, scores, outbox, upload) in place.
async fn populate(s: &Store, id: &str, call_id: &str, dir: &std::path::Path) -> std::path::PathBuf {
    s.create_lead(
        T,
        &lead(id, &format!("Name of {id}"), "ann", "west"),
        &admin(),
    )
    .await
    .unwrap();
    s.start_call(&call(call_id, id, "ann", 1_000))
        .await
        .unwrap();
    for seq in 1..=3 {
        s.insert_utterance(
            T,
            call_id,
            seq,
            Track::Customer,
            u64::from(seq) * 1000,
            u64::from(seq) * 1000 + 500,
            "my card is [card]",
            None,
        )
        .await
        .unwrap();
    }
    s.insert_hint(T, call_id, &hint(1_200)).await.unwrap();
    s.insert_hint(T, call_id, &hint(2_200)).await.unwrap();
    s.record_score(&score(id, 0.5, Stage::Engaged))
        .await
        .unwrap();
    s.record_score(&score(id, 0.7, Stage::Qualified))
        .await
        .unwrap();
    let path = dir.join(format!("{id}.wav"));
    std::fs::write(&path, b"RIFF....WAVE").unwrap();
    s.create_upload(
        &NewUpload {
            id: uuid::Uuid::new_v4().to_string(),
            tenant: T.into(),
            created_by: "ann".into(),
            team: Some("west".into()),
            lead_id: Some(id.into()),
            filename: "call.wav".into(),
            path: path.to_string_lossy().into_owned(),
            size_bytes: 12,
        },
        &admin(),
    )
    .await
    .unwrap();
    path
}

async fn erasure_removes_everything_derived(db: &TestDb) {
    let s = &db.store;
    let dir = tempfile::tempdir().unwrap();
    let erased_file = populate(s, "gone", "c-gone", dir.path()).await;
    let kept_file = populate(s, "kept", "c-kept", dir.path()).await;
    let before = counts(s).await;
    let counts_erased = s.erase_lead(T, "gone", &admin()).await.unwrap();
    let after = counts(s).await;

    // Exactly one lead's worth left every derived table; audit_log gained the erasure row.
    let expected_drop: BTreeMap<&str, i64> = [
        ("leads", 1),
        ("calls", 1),
        ("utterances", 3),
        ("hints", 2),
        ("score_events", 2),
        ("outbox", 2),
        ("upload_jobs", 1),
    ]
    .into_iter()
    .collect();
    for table in TABLES {
        let drop = before[table] - after[table];
        match table {
            "audit_log" => assert_eq!(
                after[table] - before[table],
                1,
                "one audit row for the erasure"
            ),
            _ => assert_eq!(
                drop,
                expected_drop.get(table).copied().unwrap_or(0),
                "table {table}"
            ),
        }
    }
    assert_eq!(counts_erased.utterances, 3);
    assert_eq!(counts_erased.files, 1);
    assert!(!erased_file.exists(), "the recording is gone");
    assert!(kept_file.exists());
    assert!(s.get_lead(T, "kept").await.unwrap().is_some());
    assert_eq!(s.call_utterances(T, "c-kept").await.unwrap().len(), 3);

    let log = s
        .audit_log(
            T,
            &AuditQuery {
                action: Some("lead.erase".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].target_id, "gone");
    let detail = log[0].detail.0.to_string();
    assert!(detail.contains("\"utterances\":3"), "{detail}");
    for pii in ["Name of gone", "gone@example.com", "555"] {
        assert!(!detail.contains(pii), "audit row leaks {pii}: {detail}");
    }
    assert!(matches!(
        s.erase_lead(T, "gone", &admin()).await,
        Err(StoreError::NotFound)
    ));
}

async fn retention_purges_old_transcripts(db: &TestDb) {
    let s = &db.store;
    s.start_call(&call("old", "l-old", "ann", 1_000))
        .await
        .unwrap();
    s.start_call(&call("new", "l-new", "ann", 2_000))
        .await
        .unwrap();
    for seq in 1..=4 {
        s.insert_utterance(T, "old", seq, Track::Agent, 0, 10, "old words", None)
            .await
            .unwrap();
    }
    s.insert_utterance(T, "new", 1, Track::Agent, 0, 10, "new words", None)
        .await
        .unwrap();
    s.insert_hint(T, "old", &hint(5)).await.unwrap();
    let cutoff = Timestamp::now();
    sqlx::query("UPDATE utterances SET created_at = $1 WHERE call_id = 'old'")
        .bind(cutoff.ms() - 91 * 86_400_000)
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE hints SET created_at = $1")
        .bind(cutoff.ms() - 91 * 86_400_000)
        .execute(s.pool())
        .await
        .unwrap();
    let purged = s
        .purge_transcripts_older_than(Timestamp::from_ms(cutoff.ms() - 90 * 86_400_000))
        .await
        .unwrap();
    assert_eq!(purged.utterances, 4);
    assert_eq!(purged.hint_reasons, 1);
    assert!(s.call_utterances(T, "old").await.unwrap().is_empty());
    assert_eq!(s.call_utterances(T, "new").await.unwrap().len(), 1);
    assert_eq!(s.call_hints(T, "old").await.unwrap()[0].reason, "[purged]");
    let log = s
        .audit_log(
            T,
            &AuditQuery {
                action: Some("transcript.purge".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].detail.0["utterances"], 4);
}

async fn ingest_keys_are_hashed_and_revocable(db: &TestDb) {
    let s = &db.store;
    let (key, secret) = s
        .create_ingest_key(T, "twilio main", &admin())
        .await
        .unwrap();
    assert!(secret.starts_with("cck_"));
    let stored: String = sqlx::query_scalar("SELECT key_hash FROM ingest_keys")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_ne!(stored, secret);
    assert!(!stored.contains(&secret[4..]), "the secret is not stored");
    let found = s.find_ingest_key(&secret).await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.tenant_id.as_str()),
        (key.id.as_str(), T)
    );
    let mut wrong = secret.clone();
    wrong.replace_range(10..11, if &secret[10..11] == "a" { "b" } else { "a" });
    assert!(s.find_ingest_key(&wrong).await.unwrap().is_none());
    assert!(s.find_ingest_key("cck_short").await.unwrap().is_none());
    assert_eq!(s.list_ingest_keys(T).await.unwrap().len(), 1);
    assert!(matches!(
        s.revoke_ingest_key("other", &key.id, &admin()).await,
        Err(StoreError::NotFound)
    ));
    s.revoke_ingest_key(T, &key.id, &admin()).await.unwrap();
    assert!(s.find_ingest_key(&secret).await.unwrap().is_none());
    assert!(matches!(
        s.revoke_ingest_key(T, &key.id, &admin()).await,
        Err(StoreError::NotFound)
    ));
}

async fn upload_jobs_track_progress(db: &TestDb) {
    let s = &db.store;
    let new = NewUpload {
        id: "job-1".into(),
        tenant: T.into(),
        created_by: "ann".into(),
        team: None,
        lead_id: None,
        filename: "call.mp3".into(),
        path: "/tmp/none.mp3".into(),
        size_bytes: 1234,
    };
    let job = s.create_upload(&new, &admin()).await.unwrap();
    assert_eq!((job.status, job.progress), (JobStatus::Queued, 0.0));
    s.update_upload("job-1", JobStatus::Running, 0.5, Some("call-9"), None)
        .await
        .unwrap();
    s.update_upload("job-1", JobStatus::Done, 7.0, None, None)
        .await
        .unwrap();
    let done = s.get_upload(T, "job-1").await.unwrap().unwrap();
    assert_eq!((done.status, done.progress), (JobStatus::Done, 1.0));
    assert_eq!(done.call_id.as_deref(), Some("call-9"));
    assert!(s.get_upload("other", "job-1").await.unwrap().is_none());
    assert!(matches!(
        s.update_upload("nope", JobStatus::Failed, 0.0, None, None)
            .await,
        Err(StoreError::NotFound)
    ));
    let with_ghost = NewUpload {
        id: "job-2".into(),
        lead_id: Some("ghost".into()),
        ..new
    };
    assert!(matches!(
        s.create_upload(&with_ghost, &admin()).await,
        Err(StoreError::NotFound)
    ));
}

async fn writer_batches_and_flushes_on_shutdown(db: &TestDb) {
    let s = &db.store;
    let writer = StoreWriter::start(s.clone());
    writer
        .try_record(CallRecord::CallStarted(call("w1", "lw", "ann", 1_000)))
        .unwrap();
    for seq in 1..=300u32 {
        writer
            .try_record(CallRecord::Utterance {
                tenant: T.into(),
                call_id: "w1".into(),
                seq,
                track: Track::Agent,
                start_ms: u64::from(seq) * 100,
                end_ms: u64::from(seq) * 100 + 50,
                text: format!("utterance {seq}"),
                sentiment: Some(0.1),
            })
            .unwrap();
    }
    let h = hint(100);
    writer
        .try_record(CallRecord::Hint {
            tenant: T.into(),
            call_id: "w1".into(),
            hint: h.clone(),
        })
        .unwrap();
    writer
        .try_record(CallRecord::Feedback {
            tenant: T.into(),
            hint_id: h.id.to_string(),
            useful: true,
            by: "ann".into(),
        })
        .unwrap();
    writer
        .try_record(CallRecord::Score(score("lw", 0.6, Stage::Engaged)))
        .unwrap();
    // A record the database refuses (score for an unknown lead) is isolated, not fatal.
    writer
        .try_record(CallRecord::Score(score("ghost", 0.6, Stage::Engaged)))
        .unwrap();
    writer
        .try_record(CallRecord::CallEnded {
            tenant: T.into(),
            call_id: "w1".into(),
            ended_at: Timestamp::from_ms(50_000),
            reason: "stop".into(),
            talk: None,
        })
        .unwrap();
    writer.shutdown().await;
    assert!(
        writer
            .try_record(CallRecord::CallStarted(call("w2", "lw", "ann", 1)))
            .is_err(),
        "closed"
    );

    assert_eq!(s.call_utterances(T, "w1").await.unwrap().len(), 300);
    assert_eq!(s.call_hints(T, "w1").await.unwrap()[0].useful, Some(true));
    assert_eq!(s.score_history(T, "lw", 10).await.unwrap().len(), 1);
    assert_eq!(
        s.get_call(T, "w1")
            .await
            .unwrap()
            .unwrap()
            .end_reason
            .as_deref(),
        Some("stop")
    );
}

on_both_backends!(
    migrations_create_every_table,
    lead_crud,
    lead_search_and_paging,
    calls_utterances_and_hints,
    a_reused_call_id_keeps_every_session_s_finals,
    scores_write_the_outbox_in_the_same_transaction,
    outbox_claims_lease_and_retries,
    erasure_removes_everything_derived,
    retention_purges_old_transcripts,
    ingest_keys_are_hashed_and_revocable,
    upload_jobs_track_progress,
    writer_batches_and_flushes_on_shutdown,
);

/// A database outage: PostgreSQL stops accepting connections and drops the writer's. Calls
/// keep recording (the buffer absorbs, then `Full` comes back to the caller, counted), and
/// once the database is back every accepted record reaches it.
#[tokio::test]
async fn writer_rides_out_a_database_outage() {
    let db = TestDb::postgres().await;
    let s = db.store.clone();
    let name = db.pg_name().unwrap().to_owned();
    let writer = StoreWriter::with_capacity(s.clone(), 16);
    writer
        .try_record(CallRecord::CallStarted(call("o1", "lo", "ann", 1_000)))
        .unwrap();
    let utt = |seq: u32| CallRecord::Utterance {
        tenant: T.into(),
        call_id: "o1".into(),
        seq,
        track: Track::Customer,
        start_ms: u64::from(seq) * 10,
        end_ms: u64::from(seq) * 10 + 5,
        text: format!("u{seq}"),
        sentiment: None,
    };
    writer.try_record(utt(1)).unwrap();
    wait_for(|| async {
        s.call_utterances(T, "o1")
            .await
            .map(|u| u.len() == 1)
            .unwrap_or(false)
    })
    .await;

    db.pg_admin(&format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    ))
    .await;
    db.pg_admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    let mut accepted = HashSet::from([1u32]);
    let mut refused = 0;
    for seq in 2..=60u32 {
        match writer.try_record(utt(seq)) {
            Ok(()) => {
                accepted.insert(seq);
            }
            Err(full) => {
                assert_eq!(*full.0, utt(seq), "the record comes back to the caller");
                refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        refused > 0,
        "a 16-record buffer must fill during the outage"
    );
    assert!(accepted.len() >= 16);

    db.pg_admin(&format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
    ))
    .await;
    let want = accepted.len();
    wait_for(|| async {
        s.call_utterances(T, "o1")
            .await
            .map(|u| u.len() == want)
            .unwrap_or(false)
    })
    .await;
    let stored: HashSet<u32> = s
        .call_utterances(T, "o1")
        .await
        .unwrap()
        .iter()
        .map(|u| u.seq as u32)
        .collect();
    assert_eq!(stored, accepted, "every accepted record, nothing else");
    writer.shutdown().await;
    db.cleanup().await;
}

async fn wait_for<F, Fut>(mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if ok().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 30 s");
}

/// The retention task purges on its first tick, with a real (tiny) interval.
#[tokio::test]
async fn retention_task_purges_on_schedule() {
    let db = TestDb::sqlite().await;
    let s = &db.store;
    s.start_call(&call("old", "l-old", "ann", 1_000))
        .await
        .unwrap();
    s.insert_utterance(T, "old", 1, Track::Agent, 0, 10, "old words", None)
        .await
        .unwrap();
    sqlx::query("UPDATE utterances SET created_at = 0")
        .execute(s.pool())
        .await
        .unwrap();
    let task = callcoach::store::erase::spawn_retention(
        s.clone(),
        Duration::from_secs(90 * 86_400),
        Duration::from_millis(50),
    );
    for _ in 0..100 {
        if s.call_utterances(T, "old").await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert!(s.call_utterances(T, "old").await.unwrap().is_empty());
    db.cleanup().await;
}
