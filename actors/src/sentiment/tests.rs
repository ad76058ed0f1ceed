use super::*;
use proptest::prelude::*;

fn compound(a: &Analyzer, text: &str) -> f32 {
    a.polarity(text).compound
}

/// Examples and outputs published with the reference implementation (its README).
#[test]
fn matches_reference_outputs() {
    let a = Analyzer::new();
    let cases: &[(&str, f32)] = &[
        ("VADER is smart, handsome, and funny.", 0.8316),
        ("VADER is smart, handsome, and funny!", 0.8439),
        ("VADER is very smart, handsome, and funny.", 0.8545),
        ("VADER is VERY SMART, handsome, and FUNNY.", 0.9227),
        ("VADER is VERY SMART, handsome, and FUNNY!!!", 0.9342),
        (
            "VADER is VERY SMART, really handsome, and INCREDIBLY FUNNY!!!",
            0.9469,
        ),
        ("The book was good.", 0.4404),
        ("The book was kind of good.", 0.3832),
        (
            "The plot was good, but the characters are uncompelling and the dialog is not great.",
            -0.7042,
        ),
        ("A really bad, horrible book.", -0.8211),
        ("At least it isn't a horrible book.", 0.431),
        ("Today sux", -0.3612),
        ("Today sux!", -0.4199),
        ("Today SUX!", -0.5461),
    ];
    for (text, want) in cases {
        let got = compound(&a, text);
        assert!(
            (got - want).abs() < 0.002,
            "{text:?}: got {got}, want {want}"
        );
    }
}

#[test]
fn negation_flips_and_emphasis_amplifies() {
    let a = Analyzer::new();
    assert!(compound(&a, "The book was not good") < -0.3);
    assert!(compound(&a, "VERY GOOD!!!") > compound(&a, "very good"));
    assert!(compound(&a, "very good") > compound(&a, "good"));
    assert!(compound(&a, "The book was good.") > compound(&a, "The book was kind of good."));
    // "never so good" intensifies rather than negates.
    assert!(compound(&a, "it was never so good") > compound(&a, "it was good"));
    // "no" before a lexicon word negates it.
    assert!(compound(&a, "no problem at all") > 0.0);
}

#[test]
fn but_shifts_weight_to_the_second_clause() {
    let a = Analyzer::new();
    assert!(compound(&a, "the demo was great but the price is terrible") < 0.0);
    assert!(compound(&a, "the price is terrible but the demo was great") > 0.0);
}

#[test]
fn speech_transcripts_are_handled() {
    let a = Analyzer::new();
    // A filled pause does not push the negator out of the window.
    assert!(compound(&a, "That's not, um, good at all.") < 0.0);
    assert_eq!(
        compound(&a, "That's not, um, good."),
        compound(&a, "That's not, good.")
    );
    // Whisper writes "OK" in capitals; that is not shouting.
    assert_eq!(
        compound(&a, "OK, that sounds fine to me."),
        compound(&a, "ok, that sounds fine to me.")
    );
    assert!(
        compound(
            &a,
            "Honestly, this is way too expensive and I'm frustrated."
        ) < -0.3
    );
    // Discourse markers opening a clause carry no valence; the same word as an opinion does.
    assert_eq!(compound(&a, "Well, I don't know."), 0.0);
    assert!(compound(&a, "It works well.") > 0.0);
    assert!(compound(&a, "I like it.") > 0.0);
    assert!(compound(&a, "Yeah, that sounds great, thank you so much!") > 0.5);
}

#[test]
fn proportions_sum_to_one_and_empty_is_neutral() {
    let a = Analyzer::new();
    assert_eq!(a.polarity(""), SentimentScore::default());
    assert_eq!(a.polarity("   \n "), SentimentScore::default());
    let s = a.polarity("The plot was good, but the characters are uncompelling.");
    assert!((s.positive + s.neutral + s.negative - 1.0).abs() < 1e-4);
    assert!(a.lexicon_len() > 7000);
}

#[test]
fn trend_is_a_moving_average_over_the_window() {
    let mut t = Trend::new();
    assert_eq!(t.value(), 0.0);
    assert_eq!(t.push(0.8), 0.8);
    assert!((t.push(0.0) - 0.4).abs() < 1e-6);
    for _ in 0..TREND_WINDOW {
        t.push(-0.5);
    }
    assert!((t.value() + 0.5).abs() < 1e-6);
    assert_eq!(t.len(), TREND_WINDOW);
    assert!((t.push(f32::NAN) + 0.5).abs() < 1e-6);
}

#[test]
fn cache_hits_on_whitespace_variants_and_counts() {
    let mut actor = SentimentActor::with_capacity(Arc::new(Analyzer::new()), 2);
    let first = actor.analyze("this is great");
    let again = actor.analyze("  this   is great ");
    assert_eq!(first, again);
    assert_eq!(
        actor.cache_stats(),
        CacheStats {
            hits: 1,
            misses: 1,
            len: 1
        }
    );
    // Case changes the score, so it is a different key.
    actor.analyze("this is GREAT");
    actor.analyze("this is awful");
    assert_eq!(actor.cache_stats().len, 2, "bounded by capacity");
    assert_eq!(actor.cache_stats().misses, 3);
}

#[actix::test]
async fn actor_answers_analyze_messages() {
    let addr = SentimentActor::new(Arc::new(Analyzer::new())).start();
    let s = addr
        .send(Analyze {
            text: "The book was good.".into(),
        })
        .await
        .unwrap();
    assert!((s.compound - 0.4404).abs() < 0.002);
    addr.send(Analyze {
        text: "The book was good.".into(),
    })
    .await
    .unwrap();
    let stats = addr.send(GetCacheStats).await.unwrap();
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

proptest! {
    #[test]
    fn never_panics_and_stays_in_range(text in "\\PC{0,200}") {
        let a = Analyzer::new();
        let s = a.polarity(&text);
        prop_assert!((-1.0..=1.0).contains(&s.compound));
        prop_assert!(s.positive >= 0.0 && s.neutral >= 0.0 && s.negative >= 0.0);
    }
}
