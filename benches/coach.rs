//! Cost of the text stages of a live call: sentiment of one utterance without and with the
//! fingerprint cache, and the coach's rule evaluation for one final utterance with the embedded
//! playbook. `cargo bench --bench coach`.

use callcoach_actors::coach::{Coach, Playbook};
use callcoach_actors::event::{SentimentScore, Track, Transcript, UtteranceId};
use callcoach_actors::sentiment::{Analyzer, SentimentActor};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::sync::Arc;

/// Utterances as Whisper writes them on a sales call: punctuated, cased, some with objections.
const UTTERANCES: &[(Track, &str)] = &[
    (
        Track::Agent,
        "Hi, this is Dana from Acme. Just so you know, this call is recorded for quality.",
    ),
    (
        Track::Customer,
        "Yeah, hi. I've got about ten minutes, so let's keep it short.",
    ),
    (
        Track::Agent,
        "Of course. How are you handling lead routing today?",
    ),
    (
        Track::Customer,
        "Honestly, it's a mess. We lose a lot of leads and the team is frustrated.",
    ),
    (
        Track::Agent,
        "That's really common. Our routing assigns every lead within a minute.",
    ),
    (
        Track::Customer,
        "OK, but that sounds too expensive for a team our size.",
    ),
    (
        Track::Agent,
        "What are you comparing it to, and what does a lost lead cost you?",
    ),
    (
        Track::Customer,
        "I'd have to run it by my boss before we commit to anything.",
    ),
    (
        Track::Customer,
        "How soon could we get started if we did go ahead?",
    ),
    (
        Track::Agent,
        "We could have you live in two weeks. Shall we book a call with your manager?",
    ),
];

fn transcripts() -> Vec<Transcript> {
    UTTERANCES
        .iter()
        .enumerate()
        .map(|(i, (track, text))| Transcript {
            utterance_id: UtteranceId(i as u32 + 1),
            track: *track,
            revision: 0,
            text: (*text).to_string(),
            start_ms: i as u64 * 5_000,
            end_ms: i as u64 * 5_000 + 4_000,
        })
        .collect()
}

fn sentiment(c: &mut Criterion) {
    let analyzer = Arc::new(Analyzer::new());
    let mut g = c.benchmark_group("sentiment");
    let mut i = 0;
    g.bench_function("uncached", |b| {
        b.iter(|| {
            i = (i + 1) % UTTERANCES.len();
            black_box(analyzer.polarity(black_box(UTTERANCES[i].1)))
        })
    });
    let mut actor = SentimentActor::new(Arc::clone(&analyzer));
    for (_, text) in UTTERANCES {
        actor.analyze(text);
    }
    g.bench_function("cached", |b| {
        b.iter(|| {
            i = (i + 1) % UTTERANCES.len();
            black_box(actor.analyze(black_box(UTTERANCES[i].1)))
        })
    });
    g.finish();
}

fn coach(c: &mut Criterion) {
    // unwrap: the embedded playbook is validated by the coach's unit tests.
    let playbook = Arc::new(Playbook::embedded().unwrap());
    let analyzer = Analyzer::new();
    let utterances: Vec<(Transcript, SentimentScore)> = transcripts()
        .into_iter()
        .map(|t| {
            let s = analyzer.polarity(&t.text);
            (t, s)
        })
        .collect();
    let mut g = c.benchmark_group("coach");
    g.throughput(criterion::Throughput::Elements(utterances.len() as u64));
    // A fresh coach per ten utterances so cooldowns and caps do not turn rules off for the rest
    // of the run; criterion reports the time for all ten and, as throughput, utterances per second.
    g.bench_function("on_final_per_utterance", |b| {
        b.iter_batched(
            || {
                let mut coach = Coach::new(Arc::clone(&playbook));
                coach.set_tracks(&[Track::Agent, Track::Customer]);
                coach
            },
            |mut coach| {
                for (t, s) in &utterances {
                    black_box(coach.on_final(t, Some(*s), t.end_ms + 500));
                }
                coach
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // One tick per iteration.
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("tick", |b| {
        let mut coach = Coach::new(Arc::clone(&playbook));
        coach.set_tracks(&[Track::Agent, Track::Customer]);
        let mut now = 0u64;
        for (i, (t, _)) in utterances.iter().enumerate() {
            coach.on_voice(t.track, true, t.start_ms);
            coach.on_voice(t.track, false, t.end_ms);
            now = now.max(t.end_ms) + i as u64;
        }
        b.iter(|| {
            now += 250;
            black_box(coach.tick(now))
        })
    });
    g.finish();
}

criterion_group!(benches, sentiment, coach);
criterion_main!(benches);
