//! Playbook files: TOML → `coach::Playbook::from_toml_str`; a playbook that loads is then run
//! through a short scripted call (voice activity, partials, finals, ticks up to four hours) so
//! hostile thresholds, windows and patterns meet the arithmetic that uses them.
#![no_main]

use callcoach_actors::coach::{Coach, Playbook};
use callcoach_actors::event::{SentimentScore, Track, Transcript, UtteranceId};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fn transcript(id: u32, track: Track, text: &str, start_ms: u64, end_ms: u64) -> Transcript {
    Transcript {
        utterance_id: UtteranceId(id),
        track,
        revision: 0,
        text: text.to_owned(),
        start_ms,
        end_ms,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(playbook) = Playbook::from_toml_str(text) else {
        return;
    };
    assert!(!playbook.rules.is_empty());
    let mut coach = Coach::new(Arc::new(playbook));
    coach.set_tracks(&[Track::Agent, Track::Customer]);
    let negative = SentimentScore {
        compound: -0.8,
        positive: 0.0,
        neutral: 0.2,
        negative: 0.8,
    };
    let mut hints = Vec::new();
    hints.extend(coach.on_voice(Track::Agent, true, 0));
    hints.extend(coach.tick(250));
    let pitch = transcript(
        1,
        Track::Agent,
        "so our price is about forty dollars a month, right?",
        0,
        4_000,
    );
    hints.extend(coach.on_partial(&pitch, 2_000));
    hints.extend(coach.on_voice(Track::Agent, false, 4_000));
    hints.extend(coach.on_final(&pitch, None, 4_000));
    hints.extend(coach.on_voice(Track::Customer, true, 3_900));
    let objection = transcript(
        2,
        Track::Customer,
        "that's too expensive, I'm not interested",
        3_900,
        7_000,
    );
    hints.extend(coach.on_final(&objection, Some(negative), 7_000));
    hints.extend(coach.on_voice(Track::Customer, false, 7_000));
    for now in [7_250, 60_000, 600_000, 4 * 3_600_000, u64::MAX / 2] {
        hints.extend(coach.tick(now));
    }
    for h in &hints {
        coach.feedback(h.id, true);
    }
    let _ = coach.talk_stats();
    let _ = coach.checklist();
});
