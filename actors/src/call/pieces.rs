//! Incremental decoding of one open utterance, piece by piece at its pauses.
//!
//! Every pause in an utterance (`SegmentEvent::Pause`, ~100 ms of silence) is a word boundary.
//! The call decodes the audio since the previous pause as a *piece* while the speaker pauses;
//! if they go on talking, the piece stays valid — its audio will not change — and the next pause
//! decodes only the audio after it. At the endpoint the final is the pieces' texts joined, and
//! only the audio after the last decoded piece (usually nothing) still has to be decoded. So the
//! wait between the end of speech and the final is the decode of the last clause, not of the
//! whole utterance: a 10 s utterance with two pauses costs three ~3 s decodes spread over the
//! utterance instead of one 10 s decode after it.
//!
//! A piece shorter than [`MIN_PIECE_MS`] is not decoded on its own (Whisper needs a few words of
//! context to spell a short phrase well): it is decoded together with the piece before it,
//! which it then replaces.

use crate::transcriber::{CancelToken, TranscribeError, Transcription};
use std::sync::Arc;

/// Shortest audio decoded as a piece of its own after the first one.
pub const MIN_PIECE_MS: u64 = 1_000;

/// Samples per millisecond at the pipeline rate.
const SAMPLES_PER_MS: u64 = crate::PIPELINE_SAMPLE_RATE as u64 / 1000;

/// One decoded (or decoding) span of the open utterance.
#[derive(Debug)]
pub struct Piece {
    pub seq: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub cancel: CancelToken,
    /// `None` while the decode runs.
    pub result: Option<Result<Transcription, TranscribeError>>,
}

/// What to decode for a pause offer or a partial: `[from_ms, to_ms)` of the utterance, and
/// whether the new piece replaces the last one (a short tail merged into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub from_ms: u64,
    pub to_ms: u64,
    pub replaces_last: bool,
}

/// How the closed utterance's text comes together.
#[derive(Debug, PartialEq)]
pub enum Settle {
    /// Some pieces are still decoding: ask again when they finish.
    Waiting,
    /// Every word is decoded: the final's text.
    Done { text: String, decode_ms: u64 },
    /// `prefix` is decoded; `[from_ms, end)` still has to be.
    Remainder { prefix: String, from_ms: u64 },
}

/// The pieces of one open utterance, in audio order, contiguous from its start.
#[derive(Debug, Default)]
pub struct Pieces {
    list: Vec<Piece>,
}

impl Pieces {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Whether a piece is still decoding.
    pub fn decoding(&self) -> bool {
        self.list.iter().any(|p| p.result.is_none())
    }

    /// End of the audio already handed to pieces (the utterance start when there are none).
    fn covered_ms(&self, utterance_start_ms: u64) -> u64 {
        self.list.last().map_or(utterance_start_ms, |p| p.end_ms)
    }

    /// The span a decode of the utterance up to `end_ms` should cover, or `None` when the pieces
    /// already cover it.
    pub fn plan(&self, utterance_start_ms: u64, end_ms: u64) -> Option<Plan> {
        let from = self.covered_ms(utterance_start_ms);
        if end_ms <= from {
            return None;
        }
        match self.list.last() {
            Some(last) if end_ms - from < MIN_PIECE_MS => Some(Plan {
                from_ms: last.start_ms,
                to_ms: end_ms,
                replaces_last: true,
            }),
            _ => Some(Plan {
                from_ms: from,
                to_ms: end_ms,
                replaces_last: false,
            }),
        }
    }

    /// Adds the piece `plan` describes; a replaced piece is cancelled.
    pub fn push(&mut self, plan: Plan, seq: u64, cancel: CancelToken) {
        if plan.replaces_last {
            if let Some(old) = self.list.pop() {
                old.cancel.cancel();
            }
        }
        self.list.push(Piece {
            seq,
            start_ms: plan.from_ms,
            end_ms: plan.to_ms,
            cancel,
            result: None,
        });
    }

    /// Whether a piece has this `seq`.
    pub fn has(&self, seq: u64) -> bool {
        self.list.iter().any(|p| p.seq == seq)
    }

    /// Records a finished decode; `false` when no piece has that `seq` (replaced or dropped).
    pub fn finish(&mut self, seq: u64, result: Result<Transcription, TranscribeError>) -> bool {
        match self.list.iter_mut().find(|p| p.seq == seq) {
            Some(p) => {
                p.result = Some(result);
                true
            }
            None => false,
        }
    }

    /// The piece with `seq` if it is the last one: the decode that ends at the current pause.
    pub fn last_if(&self, seq: u64) -> Option<&Piece> {
        self.list.last().filter(|p| p.seq == seq)
    }

    /// Text of the leading pieces decoded so far, and where it stops; `None` while a piece
    /// is decoding or failed (a partial would then show a gap).
    pub fn decoded_prefix(&self, utterance_start_ms: u64) -> Option<(String, u64)> {
        let mut texts = Vec::new();
        for p in &self.list {
            match &p.result {
                Some(Ok(t)) => texts.push(t.text.as_str()),
                _ => return None,
            }
        }
        Some((join(texts), self.covered_ms(utterance_start_ms)))
    }

    /// Cancels every piece (the utterance was dropped).
    pub fn cancel_all(&mut self) {
        for p in self.list.drain(..) {
            p.cancel.cancel();
        }
    }

    /// The closed utterance `[start_ms, end_ms)`: its text from the pieces, or what is left to
    /// decode. Pieces past `end_ms` (a forced cut inside them) and pieces after a failed one
    /// are cancelled and their audio decoded again as the remainder.
    pub fn settle(&mut self, start_ms: u64, end_ms: u64) -> Settle {
        while self.list.last().is_some_and(|p| p.end_ms > end_ms) {
            if let Some(p) = self.list.pop() {
                p.cancel.cancel();
            }
        }
        let ok = self
            .list
            .iter()
            .take_while(|p| matches!(p.result, Some(Ok(_))))
            .count();
        let failed = self.list.get(ok).is_some_and(|p| p.result.is_some());
        if ok < self.list.len() && !failed {
            return Settle::Waiting;
        }
        // Drop the failed piece and everything after it: that audio is decoded again.
        for p in self.list.drain(ok..) {
            p.cancel.cancel();
        }
        let mut from = self.covered_ms(start_ms);
        if from < end_ms && end_ms - from < MIN_PIECE_MS {
            if let Some(last) = self.list.pop() {
                from = last.start_ms;
            }
        }
        let texts: Vec<&str> = self
            .list
            .iter()
            .filter_map(|p| p.result.as_ref()?.as_ref().ok())
            .map(|t| t.text.as_str())
            .collect();
        let prefix = join(texts);
        if from >= end_ms {
            let decode_ms = self
                .list
                .last()
                .and_then(|p| p.result.as_ref()?.as_ref().ok())
                .map_or(0, |t| t.elapsed.as_millis() as u64);
            self.list.clear();
            return Settle::Done {
                text: prefix,
                decode_ms,
            };
        }
        self.list.clear();
        Settle::Remainder {
            prefix,
            from_ms: from,
        }
    }
}

/// Joins piece texts with single spaces, skipping empty ones (silence-only pieces). Whisper
/// ends every piece with a full stop, since its audio stops there, but starts a piece that
/// continues a sentence in lower case: such a stop is dropped.
pub fn join<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for t in texts.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
        if !out.is_empty() {
            let continues = t.chars().next().is_some_and(char::is_lowercase);
            if continues && out.ends_with('.') && !out.ends_with("..") {
                out.pop();
            }
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

/// `[from_ms, to_ms)` of an utterance whose `samples` start at `start_ms`, clamped to what
/// there is. Shares the buffer when the span is all of it.
pub fn slice(samples: &Arc<[f32]>, start_ms: u64, from_ms: u64, to_ms: u64) -> Arc<[f32]> {
    let at =
        |ms: u64| (ms.saturating_sub(start_ms) * SAMPLES_PER_MS).min(samples.len() as u64) as usize;
    let (a, b) = (at(from_ms), at(to_ms));
    if a == 0 && b == samples.len() {
        return Arc::clone(samples);
    }
    Arc::from(&samples[a..b.max(a)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn done(text: &str) -> Result<Transcription, TranscribeError> {
        Ok(Transcription {
            text: text.into(),
            segments: Vec::new(),
            no_speech: text.is_empty(),
            elapsed: Duration::from_millis(100),
            audio: Duration::from_secs(1),
            audio_ctx: 384,
            retried: false,
        })
    }

    fn add(p: &mut Pieces, seq: u64, start: u64, end: u64) -> (Plan, CancelToken) {
        let plan = p.plan(start, end).expect("something to decode");
        let cancel = CancelToken::new();
        p.push(plan, seq, cancel.clone());
        (plan, cancel)
    }

    #[test]
    fn pauses_decode_only_new_audio_and_the_final_joins_the_pieces() {
        let mut p = Pieces::default();
        let (a, _) = add(&mut p, 1, 0, 2_500);
        assert_eq!((a.from_ms, a.to_ms, a.replaces_last), (0, 2_500, false));
        assert!(p.finish(1, done("So the premium plan")));
        let (b, _) = add(&mut p, 2, 0, 5_000);
        assert_eq!((b.from_ms, b.to_ms, b.replaces_last), (2_500, 5_000, false));
        assert_eq!(p.plan(0, 5_000), None, "already covered");
        assert_eq!(p.settle(0, 5_000), Settle::Waiting);
        assert!(p.finish(2, done("is two hundred a month.")));
        assert_eq!(
            p.settle(0, 5_000),
            Settle::Done {
                text: "So the premium plan is two hundred a month.".into(),
                decode_ms: 100
            }
        );
        assert!(p.is_empty());
    }

    #[test]
    fn a_short_tail_is_decoded_with_the_piece_before_it() {
        let mut p = Pieces::default();
        add(&mut p, 1, 0, 3_000);
        p.finish(1, done("Call me next week"));
        let (plan, _) = add(&mut p, 2, 0, 3_400);
        assert_eq!((plan.from_ms, plan.replaces_last), (0, true));
        p.finish(2, done("Call me next week, please."));
        assert_eq!(
            p.settle(0, 3_400),
            Settle::Done {
                text: "Call me next week, please.".into(),
                decode_ms: 100
            }
        );
        // Same at the endpoint: audio after the last piece that is too short on its own.
        add(&mut p, 3, 10_000, 13_000);
        p.finish(3, done("Call me next week"));
        assert_eq!(
            p.settle(10_000, 13_300),
            Settle::Remainder {
                prefix: String::new(),
                from_ms: 10_000
            }
        );
    }

    #[test]
    fn the_remainder_after_the_last_piece_is_decoded_at_the_endpoint() {
        let mut p = Pieces::default();
        add(&mut p, 1, 0, 2_000);
        p.finish(1, done("Honestly"));
        assert_eq!(
            p.settle(0, 4_000),
            Settle::Remainder {
                prefix: "Honestly".into(),
                from_ms: 2_000
            }
        );
    }

    #[test]
    fn a_failed_piece_and_what_follows_are_decoded_again() {
        let mut p = Pieces::default();
        add(&mut p, 1, 0, 2_000);
        add(&mut p, 2, 0, 4_000);
        let (_, third) = add(&mut p, 3, 0, 6_000);
        p.finish(1, done("One"));
        p.finish(2, Err(TranscribeError::WorkerPanicked));
        // No need to wait for piece 3: its audio is decoded again with piece 2's.
        assert_eq!(
            p.settle(0, 6_000),
            Settle::Remainder {
                prefix: "One".into(),
                from_ms: 2_000
            }
        );
        assert!(third.is_cancelled());
    }

    #[test]
    fn pieces_past_a_forced_cut_are_dropped() {
        let mut p = Pieces::default();
        add(&mut p, 1, 0, 6_000);
        let (_, late) = add(&mut p, 2, 0, 14_800);
        p.finish(1, done("First part"));
        assert_eq!(
            p.settle(0, 14_500),
            Settle::Remainder {
                prefix: "First part".into(),
                from_ms: 6_000
            }
        );
        assert!(late.is_cancelled());
    }

    #[test]
    fn the_decoded_prefix_is_known_only_when_every_piece_is_done() {
        let mut p = Pieces::default();
        assert_eq!(p.decoded_prefix(500), Some((String::new(), 500)));
        add(&mut p, 1, 500, 2_500);
        assert_eq!(p.decoded_prefix(500), None);
        p.finish(1, done("Sure"));
        assert_eq!(p.decoded_prefix(500), Some(("Sure".into(), 2_500)));
    }

    #[test]
    fn a_stop_before_a_lower_case_continuation_is_dropped() {
        assert_eq!(
            join(["Honestly, we argue about it.", "in the Monday meeting."]),
            "Honestly, we argue about it in the Monday meeting."
        );
        assert_eq!(
            join(["I understand.", "What budget?"]),
            "I understand. What budget?"
        );
        assert_eq!(join(["Well...", "maybe"]), "Well... maybe");
        assert_eq!(join(["", " Sure. ", ""]), "Sure.");
    }

    #[test]
    fn slices_are_clamped_to_the_samples() {
        let s: Arc<[f32]> = (0..32_000).map(|i| i as f32).collect();
        assert_eq!(slice(&s, 1_000, 1_000, 3_000).len(), 32_000);
        let tail = slice(&s, 1_000, 2_000, 9_000);
        assert_eq!((tail.len(), tail[0]), (16_000, 16_000.0));
        assert!(slice(&s, 1_000, 5_000, 6_000).is_empty());
    }
}
