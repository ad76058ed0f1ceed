//! Lead scoring and redaction costs (bar: a score update ≤ 50 µs).
//!
//! * `scorer/score` — one explained score (17 features, contributions, stage thresholds).
//! * `lead_book/update` — what the scoring actor does per `UpdateScore` message: replace the
//!   lead's signals, score, commit the stage, build the published update.
//! * `actor/update_round_trip` — the same through the actix mailbox and back (`send().await`),
//!   i.e. what a call actor waits for.
//! * `redact/*` — redaction of a clean and of a PII-laden final transcript.
//!
//! Run: `cargo bench --bench scoring`.

use callcoach::actors::scorer::actor::LeadBook;
use callcoach::actors::scorer::{
    CallSignals, LeadFeatures, LeadSource, LeadUpdate, OpenLead, ScoreSink, Scorer, ScoringActor,
    Stage, UpdateScore,
};
use callcoach::actors::{redact, TalkStats};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lead() -> LeadFeatures {
    LeadFeatures {
        source: LeadSource::Inbound,
        prior_contacts: 2,
        days_since_last_contact: Some(12.0),
        stage: Stage::Contacted,
    }
}

fn signals() -> CallSignals {
    let mut s = CallSignals::default();
    for c in [0.2, -0.1, 0.4, 0.5, 0.3] {
        s.observe_customer_sentiment(c);
    }
    s.buying_signals = 1;
    s.objections_raised = 2;
    s.objections_handled = 1;
    s.customer_questions = 3;
    s.talk = TalkStats {
        agent_ms: 120_000,
        customer_ms: 95_000,
        agent_share: 0.56,
        ..TalkStats::default()
    };
    s.call_ms = 300_000;
    s
}

struct Discard;
impl ScoreSink for Discard {
    fn publish(&self, update: &LeadUpdate) {
        black_box(update);
    }
}

fn bench(c: &mut Criterion) {
    let scorer = Arc::new(Scorer::embedded());
    let (l, s) = (lead(), signals());
    c.bench_function("scorer/score", |b| {
        b.iter(|| scorer.score(black_box(&l), black_box(&s)))
    });

    let mut book = LeadBook::new(Arc::clone(&scorer));
    // unwrap: bench setup; an empty book has room.
    book.open("tenant", "lead-1", "call-1", lead()).unwrap();
    c.bench_function("lead_book/update", |b| {
        b.iter(|| book.update("tenant", "lead-1", "call-1", black_box(s.clone())))
    });

    c.bench_function("actor/update_round_trip", |b| {
        b.iter_custom(|iters| {
            let system = actix::System::new();
            system.block_on(async {
                let addr =
                    actix::Actor::start(ScoringActor::new(Arc::clone(&scorer), Arc::new(Discard)));
                // unwrap: bench setup against a fresh actor.
                addr.send(OpenLead {
                    tenant: "tenant".into(),
                    lead_id: "lead-1".into(),
                    call_id: "call-1".into(),
                    features: lead(),
                })
                .await
                .unwrap()
                .unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    let msg = UpdateScore {
                        tenant: "tenant".into(),
                        lead_id: "lead-1".into(),
                        call_id: "call-1".into(),
                        signals: s.clone(),
                    };
                    black_box(addr.send(msg).await.ok());
                }
                start.elapsed()
            })
        })
    });

    let clean = "Yeah, we looked at the pricing page last week and the team liked the reporting \
                 part, but I need to check with my manager before we commit to anything.";
    let pii = "Sure, my card is 4111 1111 1111 1111, the number here is (555) 123-4567 and you \
               can email jane.doe@example.com; my social is 123-45-6789.";
    c.bench_function("redact/clean_sentence", |b| {
        b.iter(|| redact::redact(black_box(clean)).len())
    });
    c.bench_function("redact/pii_sentence", |b| {
        b.iter(|| redact::redact(black_box(pii)).len())
    });
}

criterion_group! {
    name = benches;
    // 2 shared cores: longer measurement, fewer samples than the default, medians reported.
    config = Criterion::default().measurement_time(Duration::from_secs(4)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
