//! Turns what one softphone saw (timed server events) and the call's ground truth into latency
//! samples and counts.
//!
//! Latency is measured from when the speech really ended (the script's timeline, not the
//! server's own endpoint) to the event's arrival: a final is matched to the script lines of its
//! track that its `[start_ms, end_ms]` overlaps and timed from the end of the last of them; a
//! hint with evidence is timed from the end of the speech of its evidence utterances. Talk-time
//! hints (no evidence) are timed from their own `at_ms` — what they measure is delivery.

use crate::actors::event::{CallEvent, Code, Track, UtteranceId};
use crate::client::call::Timeline;
use crate::client::replay::ReplayOutcome;
use std::collections::{BTreeMap, HashMap};

/// A final arriving later than this after the speech ended counts as late (the issue's
/// capacity threshold is p95 ≤ 1 s; 3 s is well past what any caller would wait for).
pub const LATE_FINAL_MS: i64 = 3_000;

/// One final matched to the script: where it sits in the call and how late it came.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FinalRecord {
    /// Index of the call in the order its outcome was added.
    pub call: usize,
    pub track: Track,
    pub start_ms: u64,
    pub end_ms: u64,
    /// When the script says the speech ended (what the latency is measured from).
    pub speech_end_ms: u64,
    pub latency_ms: i64,
    pub text: String,
}

/// Where a call's numbers go; several calls add into one.
#[derive(Debug, Default, Clone)]
pub struct CallStats {
    /// Speech end → `final` arrival, per final matched to the script.
    pub final_ms: Vec<i64>,
    /// Same, keyed by when the speech ended (for the trend check of capacity search).
    pub final_by_time: Vec<(u64, i64)>,
    /// Every matched final, for `--per-final` (where the latency tail comes from).
    pub final_records: Vec<FinalRecord>,
    /// Speech end of the evidence → `hint` arrival.
    pub hint_ms: Vec<i64>,
    /// Talk-time hints: `at_ms` → arrival.
    pub talk_hint_ms: Vec<i64>,
    /// Time between consecutive partials of one utterance.
    pub partial_gap_ms: Vec<i64>,
    pub finals: usize,
    pub partials: usize,
    pub hints: usize,
    /// Finals that overlap no script line of their track (misplaced or hallucinated).
    pub unmatched_finals: usize,
    /// Script lines inside the streamed audio that no final covered.
    pub missed_lines: usize,
    pub lines: usize,
    pub late_finals: usize,
    /// A second `final` for one utterance id (finals are immutable: a protocol violation).
    pub duplicate_finals: usize,
    pub hint_kinds: BTreeMap<String, usize>,
    pub errors: BTreeMap<String, usize>,
    pub warnings: BTreeMap<String, usize>,
    /// Calls whose stream did not end cleanly (`ended` or a close after `stop`).
    pub bad_ends: usize,
    pub calls: usize,
    /// Client pacing trouble: 20 ms steps sent more than a frame late, and the worst.
    pub late_frames: usize,
    pub max_lateness_ms: u64,
}

impl CallStats {
    /// Adds one call's outcome; `streamed_ms` is how much of the timeline was sent.
    pub fn add(&mut self, outcome: &ReplayOutcome, timeline: &Timeline, streamed_ms: u64) {
        use crate::client::replay::End;
        self.calls += 1;
        self.late_frames += outcome.late_frames;
        self.max_lateness_ms = self.max_lateness_ms.max(outcome.max_lateness_ms);
        if !(outcome.stopped && matches!(outcome.end, End::Ended { .. } | End::Closed { .. })) {
            self.bad_ends += 1;
        }
        // utterance id -> (track, start, end) from partials and finals, for hint evidence.
        let mut spans: HashMap<UtteranceId, (Track, u64, u64)> = HashMap::new();
        let mut last_partial: HashMap<UtteranceId, i64> = HashMap::new();
        let mut finals_seen: HashMap<UtteranceId, ()> = HashMap::new();
        let mut covered = vec![false; timeline.lines.len()];
        let mut hints = Vec::new();
        for (t_ms, ev) in outcome.call_events() {
            match ev {
                CallEvent::Partial(t) => {
                    self.partials += 1;
                    spans
                        .entry(t.utterance_id)
                        .or_insert((t.track, t.start_ms, t.end_ms))
                        .2 = t.end_ms;
                    if let Some(prev) = last_partial.insert(t.utterance_id, t_ms) {
                        self.partial_gap_ms.push(t_ms - prev);
                    }
                }
                CallEvent::Final(t) => {
                    self.finals += 1;
                    spans.insert(t.utterance_id, (t.track, t.start_ms, t.end_ms));
                    if finals_seen.insert(t.utterance_id, ()).is_some() {
                        self.duplicate_finals += 1;
                    }
                    match timeline.speech_end_within(t.track, t.start_ms, t.end_ms) {
                        Some(end) => {
                            let latency = t_ms - end as i64;
                            self.final_ms.push(latency);
                            self.final_by_time.push((end, latency));
                            self.final_records.push(FinalRecord {
                                call: self.calls - 1,
                                track: t.track,
                                start_ms: t.start_ms,
                                end_ms: t.end_ms,
                                speech_end_ms: end,
                                latency_ms: latency,
                                text: t.text.clone(),
                            });
                            if latency > LATE_FINAL_MS {
                                self.late_finals += 1;
                            }
                        }
                        None => self.unmatched_finals += 1,
                    }
                    for (i, l) in timeline.lines.iter().enumerate() {
                        let same = t.track == Track::Mixed || l.speaker == t.track;
                        if same && l.start_ms < t.end_ms && t.start_ms < l.end_ms {
                            covered[i] = true;
                        }
                    }
                }
                CallEvent::Hint(h) => {
                    self.hints += 1;
                    *self.hint_kinds.entry(h.rule.clone()).or_default() += 1;
                    hints.push((t_ms, h));
                }
                CallEvent::Error { code, .. } => {
                    *self.errors.entry(code_name(code)).or_default() += 1
                }
                CallEvent::Warning { code, .. } => {
                    *self.warnings.entry(code_name(code)).or_default() += 1
                }
                _ => {}
            }
        }
        // Hints last: their evidence may be finalised after the hint fired on a partial.
        for (t_ms, h) in hints {
            if h.evidence.is_empty() {
                self.talk_hint_ms.push(t_ms - h.at_ms as i64);
                continue;
            }
            let end = h
                .evidence
                .iter()
                .filter_map(|id| spans.get(id))
                .filter_map(|&(track, s, e)| timeline.speech_end_within(track, s, e))
                .max();
            if let Some(end) = end {
                self.hint_ms.push(t_ms - end as i64);
            }
        }
        for (i, l) in timeline.lines.iter().enumerate() {
            // Lines cut off by --max-ms, or ending in the last second, may legitimately have
            // no final yet; only whole lines count.
            if l.end_ms + 1_000 <= streamed_ms {
                self.lines += 1;
                if !covered[i] {
                    self.missed_lines += 1;
                }
            }
        }
    }

    /// Whether final latency grows through the calls: the backlog is not keeping up. Compares
    /// the median of the last third of the timeline with the first third.
    pub fn final_trend_ms(&self) -> Option<i64> {
        let max_t = self.final_by_time.iter().map(|p| p.0).max()?;
        let third = max_t / 3;
        let first: Vec<i64> = self
            .final_by_time
            .iter()
            .filter(|p| p.0 <= third)
            .map(|p| p.1)
            .collect();
        let last: Vec<i64> = self
            .final_by_time
            .iter()
            .filter(|p| p.0 >= 2 * third)
            .map(|p| p.1)
            .collect();
        Some(percentile(&last, 50.0)? - percentile(&first, 50.0)?)
    }
}

fn code_name(code: Code) -> String {
    code.as_str().to_owned()
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples; `None` when empty.
pub fn percentile(samples: &[i64], p: f64) -> Option<i64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// p50/p95/p99/max and count of a sample set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub p99: Option<i64>,
    pub max: Option<i64>,
}

impl Percentiles {
    pub fn of(samples: &[i64]) -> Self {
        Percentiles {
            count: samples.len(),
            p50: percentile(samples, 50.0),
            p95: percentile(samples, 95.0),
            p99: percentile(samples, 99.0),
            max: samples.iter().copied().max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::replay::{End, Source, TimedEvent};
    use proptest::prelude::*;
    use serde_json::json;

    fn timeline() -> Timeline {
        serde_json::from_value(json!({"wav":"c.wav","sample_rate":16000,"channels":2,
            "channel_tracks":["agent","customer"],"duration_ms":12000,
            "lines":[
              {"index":0,"turn":0,"speaker":"agent","channel":0,"start_ms":500,"end_ms":2000,"tags":[],"text":"a"},
              {"index":1,"turn":1,"speaker":"customer","channel":1,"start_ms":2600,"end_ms":4000,"tags":["objection_price"],"text":"b"},
              {"index":2,"turn":2,"speaker":"agent","channel":0,"start_ms":4700,"end_ms":6000,"tags":[],"text":"c"},
              {"index":3,"turn":3,"speaker":"customer","channel":1,"start_ms":7000,"end_ms":9000,"tags":[],"text":"d"}]}))
        .unwrap()
    }

    fn ev(t_ms: i64, json: serde_json::Value) -> TimedEvent {
        TimedEvent {
            t_ms,
            source: Source::Stream,
            json,
        }
    }

    fn fin(id: u32, track: &str, s: u64, e: u64) -> serde_json::Value {
        json!({"type":"final","utterance_id":id,"track":track,"revision":0,"text":"x","start_ms":s,"end_ms":e})
    }

    fn hint(evidence: Vec<u32>, at_ms: u64) -> serde_json::Value {
        json!({"type":"hint","id":"00000000-0000-0000-0000-000000000001","rule":"price","kind":"objection",
               "priority":"high","title":"t","body":"b","reason":"r","evidence":evidence,"at_ms":at_ms})
    }

    fn outcome(events: Vec<TimedEvent>) -> ReplayOutcome {
        ReplayOutcome {
            events,
            frames_sent: 600,
            stopped: true,
            end: End::Ended {
                reason: "stop".into(),
            },
            late_frames: 0,
            max_lateness_ms: 3,
            connect_ms: 1,
            elapsed_ms: 12_000,
        }
    }

    #[test]
    fn latencies_are_timed_from_the_scripts_speech_end() {
        let o = outcome(vec![
            ev(
                -2,
                json!({"type":"ready","call_id":"c","tracks":["agent","customer"],"sample_rate":16000}),
            ),
            ev(
                1_500,
                json!({"type":"partial","utterance_id":1,"track":"agent","revision":1,"text":"a","start_ms":480,"end_ms":1400}),
            ),
            ev(
                2_450,
                json!({"type":"partial","utterance_id":1,"track":"agent","revision":2,"text":"a","start_ms":480,"end_ms":2000}),
            ),
            ev(2_350, fin(1, "agent", 480, 2_050)), // 350 ms after the line ended
            ev(3_700, hint(vec![2], 3_650)),        // fired on a partial, before the end
            ev(4_600, fin(2, "customer", 2_580, 4_020)), // 600 ms
            ev(4_610, hint(vec![], 4_600)),         // talk-time hint, 10 ms delivery
            ev(6_000, fin(9, "customer", 5_000, 5_500)), // overlaps no customer line
            ev(6_100, fin(2, "customer", 2_580, 4_020)), // duplicate final
            ev(
                6_200,
                json!({"type":"warning","code":"backlog","message":"m"}),
            ),
        ]);
        let mut s = CallStats::default();
        s.add(&o, &timeline(), 12_000);
        assert_eq!(s.final_ms, vec![350, 600, 2_100]);
        assert_eq!(s.hint_ms, vec![-300]);
        assert_eq!(s.talk_hint_ms, vec![10]);
        assert_eq!(s.partial_gap_ms, vec![950]);
        assert_eq!((s.finals, s.partials, s.hints), (4, 2, 2));
        assert_eq!(s.unmatched_finals, 1);
        assert_eq!(s.duplicate_finals, 1);
        // Lines 2 and 3 got no final.
        assert_eq!((s.lines, s.missed_lines), (4, 2));
        assert_eq!(s.warnings.get("backlog"), Some(&1));
        assert_eq!(s.bad_ends, 0);
        // With only 6 s streamed, line 3 (ends 9 s) is not expected yet.
        let mut s = CallStats::default();
        s.add(&o, &timeline(), 6_000);
        assert_eq!(s.lines, 2);
    }

    #[test]
    fn a_call_that_did_not_end_cleanly_is_counted() {
        let mut o = outcome(vec![]);
        o.end = End::DrainTimeout;
        let mut s = CallStats::default();
        s.add(&o, &timeline(), 12_000);
        assert_eq!((s.calls, s.bad_ends), (1, 1));
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 95.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(Percentiles::of(&[3, 1, 2]).max, Some(3));
    }

    #[test]
    fn trend_compares_late_and_early_finals() {
        let mut s = CallStats {
            final_by_time: (0..30).map(|i| (i * 1_000, 200 + i as i64 * 100)).collect(),
            ..CallStats::default()
        };
        assert!(s.final_trend_ms().unwrap() > 1_500);
        s.final_by_time = (0..30).map(|i| (i * 1_000, 300)).collect();
        assert_eq!(s.final_trend_ms(), Some(0));
    }

    proptest! {
        #[test]
        fn percentile_is_an_element_and_ordered(v in proptest::collection::vec(-5_000i64..5_000, 1..200)) {
            let p50 = percentile(&v, 50.0).unwrap();
            let p95 = percentile(&v, 95.0).unwrap();
            let p99 = percentile(&v, 99.0).unwrap();
            prop_assert!(v.contains(&p50) && v.contains(&p95) && v.contains(&p99));
            prop_assert!(p50 <= p95 && p95 <= p99);
            let below = v.iter().filter(|&&x| x <= p95).count();
            prop_assert!(below as f64 >= 0.95 * v.len() as f64);
        }
    }
}
