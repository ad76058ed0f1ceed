//! The running signals of one live call that feed the lead score.
//!
//! The call actor owns a [`CallSignals`], feeds it what the pipeline produces (final transcripts
//! with their sentiment, coaching hints, talk-time figures) and sends a copy to the scoring
//! actor when something changed. Everything here is O(1) per observation.

use crate::event::{CallEvent, Hint, HintKind, SentimentScore, TalkStats, Transcript};
use serde::{Deserialize, Serialize};

/// Customer turns that make up "recent" sentiment for the trend: three turns are about the last
/// minute of a call where the customer speaks every ~20 s.
const RECENT_TURNS: usize = 3;

/// Compound at or above which a customer turn counts as positive: VADER's own threshold for
/// labelling a text positive (Hutto & Gilbert 2014, ±0.05).
const POSITIVE_COMPOUND: f32 = 0.05;

/// Words that open a question when Whisper left out the question mark.
const QUESTION_OPENERS: &[&str] = &[
    "how", "what", "when", "where", "why", "who", "which", "whats", "what's", "hows", "how's",
];

/// What a live call has shown so far about the customer's intent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallSignals {
    /// Customer final utterances that carried a sentiment score.
    pub customer_utterances: u32,
    /// Sum of their VADER compounds (the mean is the sentiment level).
    pub customer_sentiment_sum: f64,
    /// The last [`RECENT_TURNS`] customer compounds, a ring indexed by `customer_utterances`.
    pub customer_sentiment_recent: [f64; RECENT_TURNS],
    pub buying_signals: u32,
    pub objections_raised: u32,
    /// Objections followed by a positive customer turn or a buying signal.
    pub objections_handled: u32,
    /// Objections raised and not yet followed by either.
    pub objections_open: u32,
    pub customer_questions: u32,
    /// Talk-time figures from voice activity (no transcript needed).
    pub talk: TalkStats,
    /// Audio time of the call so far, ms (the latest end of speech or event seen).
    pub call_ms: u64,
}

impl CallSignals {
    /// Feeds one final transcript and the sentiment of its text (when the sentiment actor
    /// answered). Only the customer's turns move sentiment and engagement; a mixed (mono) track
    /// counts as the customer because it carries the customer's voice too.
    pub fn observe_final(&mut self, transcript: &Transcript, sentiment: Option<SentimentScore>) {
        self.call_ms = self.call_ms.max(transcript.end_ms);
        if !transcript.track.is_customer() {
            return;
        }
        if is_question(&transcript.text) {
            self.customer_questions = self.customer_questions.saturating_add(1);
        }
        if let Some(s) = sentiment {
            self.observe_customer_sentiment(s.compound);
        }
    }

    /// Feeds one customer sentiment reading (when it arrives apart from its transcript).
    pub fn observe_customer_sentiment(&mut self, compound: f32) {
        if !compound.is_finite() {
            return;
        }
        let c = f64::from(compound.clamp(-1.0, 1.0));
        self.customer_sentiment_recent[self.customer_utterances as usize % RECENT_TURNS] = c;
        self.customer_utterances = self.customer_utterances.saturating_add(1);
        self.customer_sentiment_sum += c;
        if compound >= POSITIVE_COMPOUND {
            self.close_objection();
        }
    }

    /// Feeds one coaching hint: objection and buying-signal hints are what the playbook
    /// recognised in the customer's words.
    pub fn observe_hint(&mut self, hint: &Hint) {
        self.call_ms = self.call_ms.max(hint.at_ms);
        match hint.kind {
            HintKind::Objection => {
                self.objections_raised = self.objections_raised.saturating_add(1);
                self.objections_open = self.objections_open.saturating_add(1);
            }
            HintKind::BuyingSignal => {
                self.buying_signals = self.buying_signals.saturating_add(1);
                self.close_objection();
            }
            _ => {}
        }
    }

    /// Feeds any call event; the events that carry no scoring signal are ignored. Use this or
    /// the specific `observe_*` methods for a given event, not both.
    pub fn observe(&mut self, event: &CallEvent) {
        match event {
            CallEvent::Final(t) => self.observe_final(t, None),
            CallEvent::Sentiment { track, score, .. } if track.is_customer() => {
                self.observe_customer_sentiment(score.compound)
            }
            CallEvent::Hint(h) => self.observe_hint(h),
            CallEvent::Talk(stats) => self.talk = *stats,
            _ => {}
        }
    }

    /// Moves the call clock forward (e.g. from the call actor's audio clock).
    pub fn set_elapsed_ms(&mut self, ms: u64) {
        self.call_ms = self.call_ms.max(ms);
    }

    fn close_objection(&mut self) {
        if self.objections_open > 0 {
            self.objections_open -= 1;
            self.objections_handled = self.objections_handled.saturating_add(1);
        }
    }

    /// Mean customer compound, −1..1; 0 before the customer said anything scored.
    pub fn sentiment_level(&self) -> f64 {
        if self.customer_utterances == 0 {
            0.0
        } else {
            self.customer_sentiment_sum / f64::from(self.customer_utterances)
        }
    }

    /// Mean compound of the recent customer turns (the last three, or all but the first when
    /// there are fewer) minus the mean of the turns before them, clamped to −1..1: positive when
    /// the call is warming. 0 before the second turn.
    pub fn sentiment_trend(&self) -> f64 {
        let n = self.customer_utterances as usize;
        if n < 2 {
            return 0.0;
        }
        let k = RECENT_TURNS.min(n - 1);
        let recent_sum: f64 = (n - k..n)
            .map(|i| self.customer_sentiment_recent[i % RECENT_TURNS])
            .sum();
        let earlier = (self.customer_sentiment_sum - recent_sum) / (n - k) as f64;
        (recent_sum / k as f64 - earlier).clamp(-1.0, 1.0)
    }

    /// Customer share of speech minus ½ (−0.5..0.5); 0 before anyone spoke.
    pub fn customer_talk_share_centred(&self) -> f64 {
        let total = self.talk.agent_ms + self.talk.customer_ms;
        if total == 0 {
            return 0.0;
        }
        self.talk.customer_ms as f64 / total as f64 - 0.5
    }
}

fn is_question(text: &str) -> bool {
    let t = text.trim();
    if t.contains('?') {
        return true;
    }
    let first = t
        .split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    QUESTION_OPENERS.contains(&first.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Priority, Track, UtteranceId};

    fn customer(text: &str, end_ms: u64) -> Transcript {
        Transcript {
            utterance_id: UtteranceId(1),
            track: Track::Customer,
            revision: 0,
            text: text.into(),
            start_ms: end_ms.saturating_sub(1000),
            end_ms,
        }
    }

    fn hint(kind: HintKind, at_ms: u64) -> Hint {
        Hint {
            id: uuid::Uuid::new_v4(),
            rule: "test".into(),
            kind,
            priority: Priority::Normal,
            title: String::new(),
            body: String::new(),
            reason: String::new(),
            evidence: vec![],
            at_ms,
        }
    }

    fn compound(c: f32) -> Option<SentimentScore> {
        Some(SentimentScore {
            compound: c,
            ..Default::default()
        })
    }

    #[test]
    fn sentiment_level_and_trend_follow_the_customer_only() {
        let mut s = CallSignals::default();
        s.observe_final(&customer("this is bad", 1000), compound(-0.6));
        let mut agent = customer("great great great", 2000);
        agent.track = Track::Agent;
        s.observe_final(&agent, compound(0.9));
        s.observe_final(&customer("ok that helps", 3000), compound(0.4));
        s.observe_final(&customer("i like it", 4000), compound(0.6));
        assert_eq!(s.customer_utterances, 3);
        assert!((s.sentiment_level() - (-0.6 + 0.4 + 0.6) / 3.0).abs() < 1e-6);
        // Recent (0.4, 0.6) against earlier (-0.6): warming.
        assert!(
            (s.sentiment_trend() - 1.0).abs() < 1e-6,
            "{}",
            s.sentiment_trend()
        );
        s.observe_final(&customer("no", 5000), compound(-0.6));
        s.observe_final(&customer("no way", 6000), compound(-0.8));
        // Recent (0.6, -0.6, -0.8) against earlier (-0.6, 0.4): cooling.
        let want = (0.6 - 0.6 - 0.8) / 3.0 - (-0.6 + 0.4) / 2.0;
        assert!(want < 0.0);
        assert!(
            (s.sentiment_trend() - want).abs() < 1e-6,
            "{}",
            s.sentiment_trend()
        );
        assert_eq!(s.call_ms, 6000);
    }

    #[test]
    fn objections_count_as_handled_after_a_positive_turn_or_buying_signal() {
        let mut s = CallSignals::default();
        s.observe_hint(&hint(HintKind::Objection, 1000));
        s.observe_hint(&hint(HintKind::Objection, 2000));
        s.observe_final(&customer("hmm", 2500), compound(-0.2));
        assert_eq!((s.objections_handled, s.objections_open), (0, 2));
        s.observe_final(&customer("that makes sense", 3000), compound(0.5));
        assert_eq!((s.objections_handled, s.objections_open), (1, 1));
        s.observe_hint(&hint(HintKind::BuyingSignal, 4000));
        assert_eq!((s.objections_handled, s.objections_open), (2, 0));
        // A positive turn with nothing open hands nothing.
        s.observe_final(&customer("great", 5000), compound(0.8));
        assert_eq!(s.objections_handled, 2);
        assert_eq!(s.buying_signals, 1);
        assert_eq!(s.objections_raised, 2);
    }

    #[test]
    fn questions_are_counted_with_or_without_a_question_mark() {
        let mut s = CallSignals::default();
        s.observe_final(&customer("Does it integrate with Salesforce?", 1000), None);
        s.observe_final(&customer("how long does onboarding take", 2000), None);
        s.observe_final(&customer("We already use a competitor.", 3000), None);
        assert_eq!(s.customer_questions, 2);
    }

    #[test]
    fn talk_share_is_centred_and_zero_before_speech() {
        let mut s = CallSignals::default();
        assert_eq!(s.customer_talk_share_centred(), 0.0);
        s.observe(&CallEvent::Talk(TalkStats {
            agent_ms: 3000,
            customer_ms: 1000,
            ..Default::default()
        }));
        assert!((s.customer_talk_share_centred() - (0.25 - 0.5)).abs() < 1e-9);
    }

    #[test]
    fn non_finite_sentiment_is_ignored() {
        let mut s = CallSignals::default();
        s.observe_customer_sentiment(f32::NAN);
        assert_eq!(s.customer_utterances, 0);
        assert_eq!(s.sentiment_level(), 0.0);
    }
}
