use super::*;
use crate::event::Transcript;

fn embedded() -> Arc<Playbook> {
    Arc::new(Playbook::embedded().unwrap())
}

fn tr(id: u32, track: Track, text: &str, start_ms: u64, end_ms: u64) -> Transcript {
    Transcript {
        utterance_id: UtteranceId(id),
        track,
        revision: 0,
        text: text.into(),
        start_ms,
        end_ms,
    }
}

fn two_track_coach(pb: Arc<Playbook>) -> Coach {
    let mut c = Coach::new(pb);
    c.set_tracks(&[Track::Agent, Track::Customer]);
    c
}

fn rules(hints: &[Hint]) -> Vec<&str> {
    hints.iter().map(|h| h.rule.as_str()).collect()
}

/// Each phrase rule fires on its trigger and not on look-alikes; (rule, speaker track, text).
#[test]
fn phrase_rules_fire_on_triggers_not_look_alikes() {
    let fires: &[(&str, Track, &str)] = &[
        (
            "objection_price",
            Track::Customer,
            "Honestly, that's too expensive for us.",
        ),
        (
            "objection_price",
            Track::Customer,
            "We can't afford that right now.",
        ),
        (
            "objection_price",
            Track::Customer,
            "Hmm, the price seems a bit high.",
        ),
        (
            "objection_price",
            Track::Customer,
            "That’s way over our budget.",
        ),
        ("objection_price", Track::Mixed, "It's too expensive."),
        (
            "objection_timing",
            Track::Customer,
            "It's not a good time, call me back later.",
        ),
        (
            "objection_timing",
            Track::Customer,
            "Let me think about it.",
        ),
        (
            "objection_competitor",
            Track::Customer,
            "We already use another vendor for that.",
        ),
        (
            "objection_authority",
            Track::Customer,
            "I'd have to run it by my boss.",
        ),
        (
            "objection_authority",
            Track::Customer,
            "It's not my decision really.",
        ),
        (
            "objection_send_info",
            Track::Customer,
            "Can you just send me some info?",
        ),
        (
            "buying_signal",
            Track::Customer,
            "OK, so what are the next steps?",
        ),
        (
            "buying_signal",
            Track::Customer,
            "How soon can we get it running?",
        ),
        (
            "agent_credibility",
            Track::Agent,
            "To be honest, it's the best on the market.",
        ),
    ];
    for (rule, track, text) in fires {
        let mut c = two_track_coach(embedded());
        let hints = c.on_final(&tr(1, *track, text, 0, 2000), None, 2000);
        assert!(
            rules(&hints).contains(rule),
            "{rule} should fire on {text:?} ({track}), got {:?}",
            rules(&hints)
        );
        let h = hints.iter().find(|h| h.rule == *rule).unwrap();
        assert_eq!(h.evidence, vec![UtteranceId(1)]);
        assert!(!h.body.is_empty() && !h.title.is_empty());
    }

    let quiet: &[(&str, Track, &str)] = &[
        // negated
        (
            "objection_price",
            Track::Customer,
            "It's not too expensive at all.",
        ),
        (
            "objection_price",
            Track::Customer,
            "It's never too expensive if it works.",
        ),
        // said by the wrong party
        (
            "objection_price",
            Track::Agent,
            "Some people find it too expensive at first.",
        ),
        (
            "agent_credibility",
            Track::Customer,
            "To be honest, I like it.",
        ),
        // words inside other words, or the topic without the objection
        (
            "objection_price",
            Track::Customer,
            "What's the price for ten seats?",
        ),
        (
            "objection_price",
            Track::Customer,
            "It's an inexpensive add-on.",
        ),
        (
            "objection_timing",
            Track::Customer,
            "Is now a good time to talk about pricing?",
        ),
        (
            "objection_competitor",
            Track::Customer,
            "We already used the trial and liked it.",
        ),
        (
            "objection_authority",
            Track::Customer,
            "I make the decisions here.",
        ),
        (
            "objection_send_info",
            Track::Customer,
            "I'll send you our requirements.",
        ),
        // buying-signal words in an objection
        (
            "buying_signal",
            Track::Customer,
            "Free trial or not, it's too expensive.",
        ),
    ];
    for (rule, track, text) in quiet {
        let mut c = two_track_coach(embedded());
        let hints = c.on_final(&tr(1, *track, text, 0, 2000), None, 2000);
        assert!(
            !rules(&hints).contains(rule),
            "{rule} should not fire on {text:?} ({track})"
        );
    }
}

#[test]
fn partial_fires_once_and_final_does_not_repeat() {
    let mut c = two_track_coach(embedded());
    let p = tr(
        4,
        Track::Customer,
        "Honestly that's too expensive for",
        0,
        1500,
    );
    let hints = c.on_partial(&p, 1500);
    assert_eq!(rules(&hints), vec!["objection_price"]);
    let f = tr(
        4,
        Track::Customer,
        "Honestly that's too expensive for us.",
        0,
        2000,
    );
    assert!(c.on_final(&f, None, 2100).is_empty());
}

#[test]
fn partial_ignores_the_unsettled_last_word() {
    let mut c = two_track_coach(embedded());
    // "expensive" is the last word of an open partial: it may still become "expensively" etc.
    let p = tr(2, Track::Customer, "it's too expensive", 0, 1000);
    assert!(c.on_partial(&p, 1000).is_empty());
    // Once punctuated (Whisper closes the sentence), the words are settled.
    let p = tr(2, Track::Customer, "it's too expensive.", 0, 1200);
    assert_eq!(rules(&c.on_partial(&p, 1200)), vec!["objection_price"]);
}

#[test]
fn cooldown_and_max_per_call() {
    let mut c = two_track_coach(embedded());
    let rule = c.playbook().rule("objection_price").unwrap().clone();
    let say = |c: &mut Coach, id: u32, at: u64| {
        let hints = c.on_final(
            &tr(id, Track::Customer, "too expensive", at, at + 1000),
            None,
            at + 1000,
        );
        hints
            .into_iter()
            .filter(|h| h.rule == "objection_price")
            .collect::<Vec<_>>()
    };
    assert_eq!(say(&mut c, 1, 0).len(), 1);
    // Within the cooldown: nothing.
    assert!(say(&mut c, 2, rule.cooldown_ms - 2000).is_empty());
    // After it: fires again, up to max_per_call.
    let mut fired = 1;
    let mut at = 0;
    for id in 3..20 {
        at += rule.cooldown_ms + 1;
        fired += say(&mut c, id, at).len();
    }
    assert_eq!(fired, rule.max_per_call as usize);
}

#[test]
fn dismissed_rule_never_repeats_but_useful_does_not_silence() {
    let mut c = two_track_coach(only_rules(&["objection_price", "objection_timing"]));
    let h = c.on_final(
        &tr(1, Track::Customer, "too expensive", 0, 1000),
        None,
        1000,
    );
    assert!(c.feedback(h[0].id, true));
    let h = c.on_final(
        &tr(2, Track::Customer, "too expensive", 200_000, 201_000),
        None,
        201_000,
    );
    assert_eq!(h.len(), 1, "useful feedback keeps the rule on");
    assert!(c.feedback(h[0].id, false));
    assert!(c.is_dismissed("objection_price"));
    let h = c.on_final(
        &tr(3, Track::Customer, "too expensive", 400_000, 401_000),
        None,
        401_000,
    );
    assert!(h.is_empty());
    // Other rules are unaffected.
    let h = c.on_final(
        &tr(
            4,
            Track::Customer,
            "let me think about it",
            402_000,
            403_000,
        ),
        None,
        403_000,
    );
    assert_eq!(rules(&h), vec!["objection_timing"]);
    assert!(!c.feedback(Uuid::now_v7(), false), "unknown hint");
}

/// Plays a voice timeline: (track, start_s, end_s) runs, ticking every 250 ms; answers hints.
fn play(c: &mut Coach, runs: &[(Track, f64, f64)], until_s: f64) -> Vec<Hint> {
    let mut events: Vec<(u64, Track, bool)> = Vec::new();
    for (t, s, e) in runs {
        events.push(((s * 1000.0) as u64, *t, true));
        events.push(((e * 1000.0) as u64, *t, false));
    }
    events.sort_by_key(|(at, _, speaking)| (*at, *speaking));
    let mut hints = Vec::new();
    let mut next = 0;
    let mut now = 0;
    while now <= (until_s * 1000.0) as u64 {
        while next < events.len() && events[next].0 <= now {
            let (at, track, speaking) = events[next];
            hints.extend(c.on_voice(track, speaking, at));
            next += 1;
        }
        hints.extend(c.tick(now));
        now += 250;
    }
    hints
}

fn only_rules(ids: &[&str]) -> Arc<Playbook> {
    let mut pb = Playbook::embedded().unwrap();
    pb.rules.retain(|r| ids.contains(&r.id.as_str()));
    Arc::new(pb)
}

#[test]
fn monologue_fires_once_per_run_and_backchannels_do_not_end_it() {
    let pb = only_rules(&["monologue_long"]);
    // Agent talks 0–70 s in sentences with 0.5 s pauses; customer says "mm-hm" (0.4 s) at 30 s.
    let mut runs: Vec<(Track, f64, f64)> = (0..14)
        .map(|i| (Track::Agent, i as f64 * 5.0, i as f64 * 5.0 + 4.5))
        .collect();
    runs.push((Track::Customer, 30.0, 30.4));
    let mut c = two_track_coach(pb.clone());
    let hints = play(&mut c, &runs, 75.0);
    assert_eq!(rules(&hints), vec!["monologue_long"]);
    assert!(
        hints[0].at_ms >= 60_000 && hints[0].at_ms < 61_000,
        "at {}",
        hints[0].at_ms
    );
    assert!(c.talk_stats().longest_agent_monologue_ms >= 69_000);

    // The same agent speech, but the customer takes a real turn at 30 s: no monologue.
    let mut runs: Vec<(Track, f64, f64)> = (0..14)
        .map(|i| (Track::Agent, i as f64 * 5.0, i as f64 * 5.0 + 4.5))
        .filter(|(_, s, _)| *s < 29.0 || *s > 34.0)
        .collect();
    runs.push((Track::Customer, 30.0, 34.0));
    let mut c = two_track_coach(pb);
    assert!(play(&mut c, &runs, 75.0).is_empty());
}

#[test]
fn talk_ratio_uses_voice_only() {
    let pb = only_rules(&["talk_ratio_high"]);
    // Agent 8 s, customer 2 s, repeated: 80 % agent share.
    let runs: Vec<(Track, f64, f64)> = (0..20)
        .flat_map(|i| {
            let b = i as f64 * 10.0;
            [
                (Track::Agent, b, b + 8.0),
                (Track::Customer, b + 8.2, b + 9.8),
            ]
        })
        .collect();
    let mut c = two_track_coach(pb.clone());
    let hints = play(&mut c, &runs, 200.0);
    assert_eq!(rules(&hints), vec!["talk_ratio_high"]);
    let stats = c.talk_stats();
    // 8 s against 1.6 s per exchange.
    assert!((stats.agent_share - 8.0 / 9.6).abs() < 0.01, "{stats:?}");
    // Balanced conversation: nothing.
    let runs: Vec<(Track, f64, f64)> = (0..20)
        .flat_map(|i| {
            let b = i as f64 * 10.0;
            [
                (Track::Agent, b, b + 5.0),
                (Track::Customer, b + 5.2, b + 9.8),
            ]
        })
        .collect();
    let mut c = two_track_coach(pb);
    assert!(play(&mut c, &runs, 200.0).is_empty());
}

#[test]
fn interruptions_count_real_barge_ins_only() {
    let pb = only_rules(&["interrupting"]);
    // Customer speaks 0–10 s and 20–30 s; agent barges in at 5 s and 25 s for 2 s each.
    let runs = [
        (Track::Customer, 0.0, 10.0),
        (Track::Agent, 5.0, 7.0),
        (Track::Customer, 20.0, 30.0),
        (Track::Agent, 25.0, 27.0),
    ];
    let mut c = two_track_coach(pb.clone());
    let hints = play(&mut c, &runs, 40.0);
    assert_eq!(rules(&hints), vec!["interrupting"]);
    assert!(c.talk_stats().overlap_ms >= 4000);
    // Short backchannels over the customer are not interruptions.
    let runs = [
        (Track::Customer, 0.0, 10.0),
        (Track::Agent, 5.0, 5.4),
        (Track::Customer, 20.0, 30.0),
        (Track::Agent, 25.0, 25.5),
    ];
    let mut c = two_track_coach(pb);
    assert!(play(&mut c, &runs, 40.0).is_empty());
}

#[test]
fn dead_air_fires_once_per_silence_and_not_before_anyone_spoke() {
    let pb = only_rules(&["dead_air"]);
    let mut c = two_track_coach(pb.clone());
    // 20 s of ringing, then talk, a 10 s gap, talk, a 3 s gap.
    let runs = [
        (Track::Agent, 20.0, 25.0),
        (Track::Customer, 35.0, 40.0),
        (Track::Agent, 43.0, 45.0),
    ];
    let hints = play(&mut c, &runs, 47.0);
    assert_eq!(rules(&hints), vec!["dead_air"]);
    assert!(hints[0].at_ms >= 32_000 && hints[0].at_ms < 33_000);
    assert!(c.talk_stats().silence_ms >= 12_000);
}

#[test]
fn question_unanswered_waits_for_the_agent() {
    let pb = only_rules(&["question_unanswered"]);
    let q = tr(
        3,
        Track::Customer,
        "How does the billing work?",
        10_000,
        12_000,
    );

    // Agent silent after the question.
    let mut c = two_track_coach(pb.clone());
    play(&mut c, &[(Track::Customer, 10.0, 12.0)], 12.5);
    assert!(c.on_final(&q, None, 12_500).is_empty());
    let mut hints = Vec::new();
    for t in (12_750..=20_000).step_by(250) {
        hints.extend(c.tick(t));
    }
    assert_eq!(rules(&hints), vec!["question_unanswered"]);
    assert_eq!(hints[0].evidence, vec![UtteranceId(3)]);

    // Agent answers (voice arrives before the transcript does).
    let mut c = two_track_coach(pb);
    play(
        &mut c,
        &[(Track::Customer, 10.0, 12.0), (Track::Agent, 12.3, 16.0)],
        12.5,
    );
    c.on_final(&q, None, 12_500);
    let mut hints = Vec::new();
    for t in (12_750..=25_000).step_by(250) {
        if t == 16_000 {
            hints.extend(c.on_voice(Track::Agent, false, t));
        }
        hints.extend(c.tick(t));
    }
    assert!(hints.is_empty(), "{:?}", rules(&hints));
}

#[test]
fn mixed_calls_disable_two_track_rules_but_keep_the_rest() {
    let pb = only_rules(&[
        "talk_ratio_high",
        "monologue_long",
        "interrupting",
        "dead_air",
    ]);
    let mut c = Coach::new(pb);
    c.set_tracks(&[Track::Mixed]);
    // One track speaking almost all the time for 200 s, then 10 s of silence.
    let runs: Vec<(Track, f64, f64)> = (0..40)
        .map(|i| (Track::Mixed, i as f64 * 5.0, i as f64 * 5.0 + 4.8))
        .collect();
    let hints = play(&mut c, &runs, 212.0);
    assert_eq!(
        rules(&hints),
        vec!["dead_air"],
        "only dead air works on a mixed track"
    );
    let s = c.talk_stats();
    assert_eq!(
        s.agent_ms, s.customer_ms,
        "mixed speech counts for both parties"
    );
    assert_eq!(s.agent_share, 0.5);
    // Phrase rules work on a mixed track for either party.
    let mut c = Coach::new(embedded());
    c.set_tracks(&[Track::Mixed]);
    let h = c.on_final(
        &tr(1, Track::Mixed, "We can't afford it.", 0, 1000),
        None,
        1000,
    );
    assert_eq!(rules(&h), vec!["objection_price"]);
}

#[test]
fn two_track_rules_wait_for_both_tracks_when_undeclared() {
    let pb = only_rules(&["talk_ratio_high"]);
    let mut c = Coach::new(pb);
    // Only the agent's socket so far: a 100 % share is not a talk-ratio problem yet.
    let runs: Vec<(Track, f64, f64)> = (0..30)
        .map(|i| (Track::Agent, i as f64 * 5.0, i as f64 * 5.0 + 4.8))
        .collect();
    assert!(play(&mut c, &runs, 150.0).is_empty());
    assert!(!c.two_tracks());
}

#[test]
fn pace_fires_on_fast_agent_speech_only() {
    let pb = only_rules(&["pace_fast"]);
    let words = |n: usize| vec!["word"; n].join(" ");
    // 70 words in 20 s = 210 wpm.
    let mut c = two_track_coach(pb.clone());
    let h = c.on_final(&tr(1, Track::Agent, &words(70), 0, 20_000), None, 20_500);
    assert_eq!(rules(&h), vec!["pace_fast"]);
    assert!((c.talk_stats().agent_wpm.unwrap() - 210.0).abs() < 1.0);
    // 70 words in 30 s = 140 wpm.
    let mut c = two_track_coach(pb.clone());
    assert!(c
        .on_final(&tr(1, Track::Agent, &words(70), 0, 30_000), None, 30_500)
        .is_empty());
    // Fast customer: not the agent's pace.
    let mut c = two_track_coach(pb);
    assert!(c
        .on_final(&tr(1, Track::Customer, &words(70), 0, 20_000), None, 20_500)
        .is_empty());
}

#[test]
fn sentiment_drop_fires_on_a_fall_not_on_steady_neutral() {
    let pb = only_rules(&["customer_sentiment_drop"]);
    let score = |compound: f32| SentimentScore {
        compound,
        ..Default::default()
    };
    let mut c = two_track_coach(pb.clone());
    let mut hints = Vec::new();
    for (i, s) in [0.6, 0.5, 0.4, -0.6, -0.7].iter().enumerate() {
        let t = i as u64 * 5000;
        let u = tr(i as u32 + 1, Track::Customer, "…", t, t + 2000);
        hints.extend(c.on_final(&u, Some(score(*s)), t + 2500));
    }
    assert_eq!(rules(&hints), vec!["customer_sentiment_drop"]);
    assert_eq!(hints[0].evidence, vec![UtteranceId(5)]);

    let mut c = two_track_coach(pb.clone());
    for (i, s) in [0.0, 0.1, -0.1, 0.05, 0.0].iter().enumerate() {
        let t = i as u64 * 5000;
        let u = tr(i as u32 + 1, Track::Customer, "…", t, t + 2000);
        assert!(c.on_final(&u, Some(score(*s)), t + 2500).is_empty());
    }
    // The agent's mood is not the customer's.
    let mut c = two_track_coach(pb);
    let u = tr(1, Track::Agent, "…", 0, 2000);
    assert!(c.on_final(&u, Some(score(-0.9)), 2500).is_empty());
}

#[test]
fn checklist_ticks_when_said_and_hints_when_overdue() {
    let pb = only_rules(&["recording_disclosure", "introduction", "next_step"]);
    let mut c = two_track_coach(pb.clone());
    assert_eq!(c.take_checklist_update().unwrap().len(), 3);
    assert!(c.take_checklist_update().is_none());
    let h = c.on_partial(
        &tr(
            1,
            Track::Agent,
            "Hi, my name is Dana from Acme, and this call is being recorded for",
            0,
            5000,
        ),
        5000,
    );
    assert!(h.is_empty());
    let items = c.take_checklist_update().unwrap();
    let done: Vec<_> = items
        .iter()
        .filter(|i| i.done)
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(done, vec!["recording_disclosure", "introduction"]);
    assert_eq!(items[0].due_ms, Some(30_000));
    assert!(c.tick(60_000).is_empty(), "nothing overdue");

    // The customer saying it does not count; the deadline passes and the hint fires once.
    let mut c = two_track_coach(pb);
    c.on_final(
        &tr(1, Track::Customer, "Is this call recorded?", 0, 2000),
        None,
        2000,
    );
    let mut hints = Vec::new();
    for t in (0..=60_000).step_by(250) {
        hints.extend(c.tick(t));
    }
    assert_eq!(rules(&hints), vec!["introduction", "recording_disclosure"]);
    assert_eq!(hints[1].at_ms, 30_000);
    assert_eq!(hints[1].priority, Priority::Urgent);
}

#[test]
fn whisper_hint_is_trimmed_and_bounded() {
    let h = whisper_hint("  ask about their timeline  ", 42);
    assert_eq!(
        (h.kind, h.body.as_str(), h.at_ms),
        (HintKind::Whisper, "ask about their timeline", 42)
    );
    assert_eq!(
        whisper_hint(&"x".repeat(10_000), 0).body.chars().count(),
        MAX_WHISPER_CHARS
    );
}

#[test]
fn playbook_errors_are_precise() {
    let base = r#"
[[rule]]
id = "r1"
kind = "phrase"
hint = "objection"
speaker = "customer"
priority = "high"
title = "t"
body = "b"
cooldown_s = 10
max_per_call = 1
phrases = ["too expensive"]
"#;
    assert!(Playbook::from_toml_str(base).is_ok());
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"kind = "phrase""#,
            r#"kind = "telepathy""#,
            "rule `r1`: unknown kind `telepathy`",
        ),
        (
            r#"phrases = ["too expensive"]"#,
            r#"patterns = ["(unclosed"]"#,
            "rule `r1`: bad pattern `(unclosed`",
        ),
        (
            r#"phrases = ["too expensive"]"#,
            "max_s = 3",
            "rule `r1`: `max_s` does not apply to kind `phrase`",
        ),
        (
            r#"phrases = ["too expensive"]"#,
            "",
            "rule `r1`: missing `phrases`",
        ),
        (
            "max_per_call = 1",
            "max_per_call = 0",
            "rule `r1`: `max_per_call` must be at least 1",
        ),
        (
            "cooldown_s = 10",
            "cooldown_s = -1",
            "rule `r1`: `cooldown_s` must be",
        ),
        (
            r#"hint = "objection""#,
            r#"hint = "whisper""#,
            "rule `r1`: `hint` cannot be `whisper`",
        ),
        (r#"title = "t""#, "", "rule `r1`: missing `title`"),
        (r#"id = "r1""#, "", "rule #0: missing `id`"),
        (
            "max_per_call = 1",
            "max_per_call = 1\nbogus = 1",
            "unknown field `bogus`",
        ),
    ];
    for (from, to, want) in cases {
        let text = base.replacen(from, to, 1);
        let err = Playbook::from_toml_str(&text).unwrap_err().to_string();
        assert!(
            err.contains(want),
            "{from} -> {to}: got {err:?}, want {want:?}"
        );
    }
    let twice = format!("{base}{base}");
    assert_eq!(
        Playbook::from_toml_str(&twice).unwrap_err().to_string(),
        "rule `r1` is defined twice"
    );
    assert!(matches!(
        Playbook::from_toml_str(""),
        Err(PlaybookError::Empty)
    ));
    assert!(matches!(
        Playbook::load("/nonexistent/playbook.toml"),
        Err(PlaybookError::Io { .. })
    ));
}

#[test]
fn playbook_loads_from_a_path() {
    let dir = std::env::temp_dir().join(format!("callcoach-playbook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("playbook.toml");
    std::fs::write(&path, EMBEDDED_PLAYBOOK).unwrap();
    let pb = Playbook::load(&path).unwrap();
    assert_eq!(pb.rules.len(), Playbook::embedded().unwrap().rules.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_embedded_rule_kind_is_exercised() {
    let pb = Playbook::embedded().unwrap();
    let kinds: HashSet<&str> = pb.rules.iter().map(|r| r.trigger.kind_name()).collect();
    for k in [
        "phrase",
        "checklist",
        "sentiment_drop",
        "talk_ratio",
        "monologue",
        "interruption",
        "dead_air",
        "pace",
        "question_unanswered",
    ] {
        assert!(kinds.contains(k), "embedded playbook lacks a `{k}` rule");
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any voice timeline keeps the talk figures consistent and never panics.
        #[test]
        fn talk_stats_are_consistent(events in proptest::collection::vec((0u8..3, any::<bool>(), 0u64..500), 0..200)) {
            let mut c = Coach::new(Arc::new(Playbook::embedded().unwrap()));
            let mut at = 0u64;
            for (t, speaking, dt) in events {
                at += dt;
                let track = [Track::Agent, Track::Customer, Track::Mixed][t as usize];
                c.on_voice(track, speaking, at);
                c.tick(at);
            }
            let s = c.talk_stats();
            prop_assert!((0.0..=1.0).contains(&s.agent_share));
            prop_assert!(s.overlap_ms <= s.agent_ms.min(s.customer_ms));
            prop_assert!(s.silence_ms <= at);
        }

        #[test]
        fn normalize_is_idempotent(text in "\\PC{0,80}") {
            let once = normalize_text(&text);
            prop_assert_eq!(normalize_text(&once), once.clone());
            prop_assert!(!once.starts_with(' ') && !once.ends_with(' '));
        }
    }
}
