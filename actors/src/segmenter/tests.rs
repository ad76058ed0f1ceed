//! Segmenter tests on espeak-ng speech with generated noise (helpers shared with the VAD tests).

use super::*;
use crate::vad::tests::{mix_at, pink, rms_dbfs, speech_clip, tones, white, SR};
use proptest::prelude::*;

fn run(x: &[f32], cfg: SegmenterConfig) -> Vec<SegmentEvent> {
    let mut s = Segmenter::new(cfg);
    let mut out = Vec::new();
    s.push(x, &mut out);
    s.finish(&mut out);
    out
}

fn finals(events: &[SegmentEvent]) -> Vec<(u64, u64, bool, usize)> {
    events
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::Final {
                samples,
                start_ms,
                end_ms,
                forced,
            } => Some((*start_ms, *end_ms, *forced, samples.len())),
            _ => None,
        })
        .collect()
}

/// Speech span of a clean clip placed at `at_s`: first and last 20 ms frame above -40 dBFS,
/// in ms on the mixed signal's clock.
fn speech_span(clip: &[f32], at_s: f32) -> (u64, u64) {
    let loud: Vec<usize> = clip
        .chunks_exact(FRAME_SAMPLES)
        .enumerate()
        .filter(|(_, f)| rms_dbfs(f) > -40.0)
        .map(|(i, _)| i)
        .collect();
    let base = (at_s * 1000.0) as u64;
    (
        base + loud[0] as u64 * 20,
        base + (loud[loud.len() - 1] as u64 + 1) * 20,
    )
}

/// Longest run of frames under -40 dBFS inside the clip's speech span, in ms.
fn longest_inner_gap(clip: &[f32]) -> u64 {
    let quiet: Vec<bool> = clip
        .chunks_exact(FRAME_SAMPLES)
        .map(|f| rms_dbfs(f) <= -40.0)
        .collect();
    let first = quiet.iter().position(|q| !q).unwrap();
    let last = quiet.iter().rposition(|q| !q).unwrap();
    let (mut best, mut cur) = (0, 0);
    for &q in &quiet[first..=last] {
        cur = if q { cur + 1 } else { 0 };
        best = best.max(cur);
    }
    best * 20
}

/// Two sentences with a 1.5 s pause between them, in quiet pink noise (-60 dBFS).
fn two_sentences() -> (Vec<f32>, (u64, u64), (u64, u64)) {
    let a = speech_clip("speech_a_8k_mulaw.wav");
    let b = speech_clip("speech_b_8k_mulaw.wav");
    let span_a = speech_span(&a, 1.0);
    let at_b = span_a.1 as f32 / 1000.0 + 1.5;
    let span_b_rel = speech_span(&b, 0.0);
    let at_b = at_b - span_b_rel.0 as f32 / 1000.0; // b's speech starts 1.5 s after a's ends
    let span_b = speech_span(&b, at_b);
    let mut x = pink(((at_b + 5.0) * SR) as usize, -60.0, 21);
    mix_at(&mut x, &a, 1.0);
    mix_at(&mut x, &b, at_b);
    (x, span_a, span_b)
}

#[test]
fn clips_have_no_pause_long_enough_to_end_an_utterance() {
    // Precondition of the tests below: each clip is one utterance at the default endpoint.
    for clip in ["speech_a_8k_mulaw.wav", "speech_b_8k_mulaw.wav"] {
        let gap = longest_inner_gap(&speech_clip(clip));
        assert!(gap < 300, "{clip}: inner pause {gap} ms");
    }
}

#[test]
fn silence_and_noise_give_no_events() {
    let cfg = SegmenterConfig::default();
    assert!(run(&vec![0.0; 160_000], cfg.clone()).is_empty());
    assert!(run(&white(160_000, -30.0, 22), cfg.clone()).is_empty());
    assert!(run(&pink(160_000, -20.0, 23), cfg.clone()).is_empty());
    assert!(run(&tones(160_000, &[(440.0, 0.2), (480.0, 0.2)]), cfg).is_empty());
}

#[test]
fn short_blips_are_dropped_without_events() {
    let mut x = white(80_000, -65.0, 24);
    // A 100 ms broadband burst (a knock) and a 160 ms one: voiced, but under min_utterance_ms.
    mix_at(&mut x, &white(1_600, -20.0, 25), 1.0);
    mix_at(&mut x, &white(2_560, -20.0, 26), 3.0);
    assert!(run(&x, SegmenterConfig::default()).is_empty());
}

#[test]
fn two_sentences_with_a_pause_give_two_finals_with_sensible_boundaries() {
    let (x, span_a, span_b) = two_sentences();
    let events = run(&x, SegmenterConfig::default());
    let f = finals(&events);
    assert_eq!(f.len(), 2, "{f:?}");
    for ((start, end, forced, len), (s, e)) in f.iter().zip([span_a, span_b]) {
        assert!(!forced);
        // Start: the pre-roll (200 ms) before the first voiced frame, which is at most
        // 100 ms before or 60 ms after the reference onset (soft onsets, 2-frame confirmation).
        assert!(
            *start + 300 >= s && *start <= s,
            "start {start} vs speech {s}"
        );
        // End: at the last voiced frame, within 100 ms before / 200 ms after the reference.
        assert!(
            *end + 100 >= e && *end <= e + 200,
            "end {end} vs speech {e}"
        );
        assert_eq!(
            *len as u64,
            (end - start) * 16,
            "samples cover [start, end)"
        );
    }
    // Events come in order: start, (partials), end, final — per utterance.
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::SpeechStart { .. } => Some("start"),
            SegmentEvent::SpeechEnd { .. } => Some("end"),
            SegmentEvent::Final { .. } => Some("final"),
            SegmentEvent::Partial { .. }
            | SegmentEvent::Pause { .. }
            | SegmentEvent::Resume { .. } => None,
        })
        .collect();
    assert_eq!(kinds, ["start", "end", "final", "start", "end", "final"]);
    // Voice start/end events agree with the finals (start = first voiced frame, after pre-roll).
    let starts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::SpeechStart { at_ms } => Some(*at_ms),
            _ => None,
        })
        .collect();
    let ends: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::SpeechEnd { at_ms } => Some(*at_ms),
            _ => None,
        })
        .collect();
    for i in 0..2 {
        assert_eq!(starts[i], f[i].0 + 200, "pre-roll is 200 ms");
        assert_eq!(ends[i], f[i].1);
    }
}

#[test]
fn final_samples_are_the_input_at_those_times() {
    let (x, _, _) = two_sentences();
    for e in run(&x, SegmenterConfig::default()) {
        if let SegmentEvent::Final {
            samples,
            start_ms,
            end_ms,
            ..
        }
        | SegmentEvent::Partial {
            samples,
            start_ms,
            end_ms,
        } = e
        {
            let (a, b) = (start_ms as usize * 16, end_ms as usize * 16);
            assert_eq!(&samples[..], &x[a..b]);
        }
    }
}

/// Every final is announced by a pause offer of exactly its span and samples,
/// `speculate_after_ms` into the silence; an offer the voice interrupts is withdrawn by a
/// `Resume` before anything else closes; and offers can be turned off.
#[test]
fn pause_offers_match_the_final_or_are_withdrawn() {
    let (x, _, _) = two_sentences();
    let cfg = SegmenterConfig::default();
    let mut seg = Segmenter::new(cfg.clone());
    let mut timed = Vec::new(); // (audio clock when emitted, event)
    let mut out = Vec::new();
    for frame in x.chunks(FRAME_SAMPLES) {
        seg.push(frame, &mut out);
        timed.extend(out.drain(..).map(|e| (seg.now_ms(), e)));
    }
    seg.finish(&mut out);
    timed.extend(out.drain(..).map(|e| (seg.now_ms(), e)));

    let mut offer: Option<(u64, u64, Arc<[f32]>)> = None;
    let (mut used, mut withdrawn) = (0, 0);
    for (now, e) in &timed {
        match e {
            SegmentEvent::Pause {
                samples,
                start_ms,
                end_ms,
            } => {
                assert!(
                    offer.is_none(),
                    "a second offer before the first was settled"
                );
                assert_eq!(now - end_ms, cfg.speculate_after_ms, "offered on time");
                offer = Some((*start_ms, *end_ms, samples.clone()));
            }
            SegmentEvent::Resume { at_ms } => {
                let (_, end, _) = offer.take().expect("resume without an offer");
                assert!(*at_ms >= end + cfg.speculate_after_ms);
                withdrawn += 1;
            }
            SegmentEvent::Final {
                samples,
                start_ms,
                end_ms,
                ..
            } => {
                let (s, e, offered) = offer.take().expect("every final was offered first");
                assert_eq!((s, e), (*start_ms, *end_ms));
                assert_eq!(&offered[..], &samples[..], "same samples as offered");
                used += 1;
            }
            _ => {}
        }
    }
    assert_eq!(used, 2);
    eprintln!("offers: {used} used, {withdrawn} withdrawn by in-sentence pauses");

    let off = SegmenterConfig {
        speculate_after_ms: 0,
        ..SegmenterConfig::default()
    };
    let events = run(&x, off.clone());
    assert!(!events
        .iter()
        .any(|e| matches!(e, SegmentEvent::Pause { .. } | SegmentEvent::Resume { .. })));
    assert_eq!(
        finals(&events),
        finals(&run(&x, SegmenterConfig::default()))
    );
    // An offer at or past the endpoint could never be used: it is turned off.
    let late = SegmenterConfig {
        speculate_after_ms: 400,
        ..SegmenterConfig::default()
    };
    assert_eq!(Segmenter::new(late).config().speculate_after_ms, 0);
}

/// `close_early` ends the utterance at its offer's span while the silence lasts, and refuses
/// once voice has come back (or for a span that is not the open one's).
#[test]
fn close_early_ends_a_silent_offered_utterance_only() {
    let (x, _, _) = two_sentences();
    // No extra wait for the early close: it happens as soon as asked.
    let mut seg = Segmenter::new(SegmenterConfig {
        early_close_silence_ms: 0,
        ..SegmenterConfig::default()
    });
    let mut out = Vec::new();
    let mut closed = Vec::new();
    let mut refused_after_resume = 0;
    let mut offer: Option<(u64, u64)> = None;
    for frame in x.chunks(FRAME_SAMPLES) {
        seg.push(frame, &mut out);
        for e in out.drain(..) {
            match e {
                SegmentEvent::Pause {
                    start_ms, end_ms, ..
                } => offer = Some((start_ms, end_ms)),
                SegmentEvent::Resume { .. } => {
                    let (_, end) = offer.take().unwrap();
                    let mut none = Vec::new();
                    assert!(!seg.close_early(end, &mut none), "voice came back");
                    assert!(none.is_empty());
                    refused_after_resume += 1;
                }
                SegmentEvent::Final { .. } => panic!("the endpoint never comes: closed first"),
                _ => {}
            }
        }
        // Close every offer one frame after it is made.
        if let Some((start, end)) = offer {
            if seg.now_ms() > end + SegmenterConfig::default().speculate_after_ms {
                let mut evs = Vec::new();
                assert!(!seg.close_early(end + 20, &mut evs), "not the open span");
                assert!(seg.close_early(end, &mut evs));
                let kinds: Vec<_> = evs
                    .iter()
                    .map(|e| match e {
                        SegmentEvent::SpeechEnd { at_ms } => (*at_ms, 0),
                        SegmentEvent::Final {
                            start_ms, end_ms, ..
                        } => {
                            assert_eq!(*start_ms, start);
                            (*end_ms, 1)
                        }
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                assert_eq!(kinds, [(end, 0), (end, 1)]);
                assert!(!seg.in_utterance());
                closed.push((start, end));
                offer = None;
            }
        }
    }
    assert!(closed.len() >= 2, "{closed:?}");
    eprintln!("closed {closed:?}; {refused_after_resume} offers withdrawn by voice");
}

/// An early close asked for during a short pause waits until the pause is
/// `early_close_silence_ms` long; voice before then cancels it.
#[test]
fn an_early_close_waits_for_a_sentence_length_pause() {
    let (x, span_a, _) = two_sentences();
    let cfg = SegmenterConfig::default();
    let mut seg = Segmenter::new(cfg.clone());
    let mut out = Vec::new();
    let mut asked: Option<u64> = None;
    let mut closed_at = None;
    for frame in x.chunks(FRAME_SAMPLES) {
        seg.push(frame, &mut out);
        for e in out.drain(..) {
            match e {
                SegmentEvent::Pause { end_ms, .. } => {
                    let mut none = Vec::new();
                    assert!(!seg.close_early(end_ms, &mut none), "too short a pause yet");
                    assert!(none.is_empty());
                    asked = Some(end_ms);
                }
                SegmentEvent::Resume { .. } => asked = None,
                SegmentEvent::Final { end_ms, .. } if closed_at.is_none() => {
                    assert_eq!(Some(end_ms), asked, "closed at the asked span");
                    closed_at = Some((end_ms, seg.now_ms()));
                }
                _ => {}
            }
        }
    }
    let (end_ms, at) = closed_at.expect("the first sentence closed");
    assert_eq!(
        at - end_ms,
        cfg.early_close_silence_ms,
        "closed once the pause was long enough"
    );
    assert!(
        end_ms <= span_a.1 + 20,
        "{end_ms} vs speech end {}",
        span_a.1
    );
}

/// After `long_stretch_ms` without an offer, a `quick_pause_ms` pause is offered too.
#[test]
fn long_stretches_are_offered_at_shorter_pauses() {
    let (x, _, _) = two_sentences();
    let offers = |cfg: SegmenterConfig| {
        let events = run(&x, cfg);
        events
            .iter()
            .filter(|e| matches!(e, SegmentEvent::Pause { .. }))
            .count()
    };
    let never = offers(SegmenterConfig {
        long_stretch_ms: 60_000,
        ..SegmenterConfig::default()
    });
    let always = offers(SegmenterConfig {
        long_stretch_ms: 0,
        ..SegmenterConfig::default()
    });
    assert!(always > never, "quick pauses offered: {always} vs {never}");
}

#[test]
fn partials_come_about_every_second_while_an_utterance_is_open() {
    let (x, _, _) = two_sentences();
    let events = run(&x, SegmenterConfig::default());
    let mut open: Option<u64> = None; // voice start of the open utterance
    let mut bounds = Vec::new(); // (partials seen, voice start, final end) per utterance
    let mut last_partial_end = 0;
    let mut partials = 0;
    for e in &events {
        match e {
            SegmentEvent::SpeechStart { at_ms } => {
                open = Some(*at_ms);
                last_partial_end = *at_ms;
            }
            SegmentEvent::Partial {
                start_ms, end_ms, ..
            } => {
                let voice = open.expect("partial outside an utterance");
                assert_eq!(*start_ms, voice - 200);
                // Every second, or at the first voiced frame after it (never in a pause).
                let gap = end_ms - last_partial_end;
                assert!(
                    (1_000..1_000 + 360).contains(&gap),
                    "partial cadence {gap} ms"
                );
                last_partial_end = *end_ms;
                partials += 1;
            }
            SegmentEvent::Final { end_ms, .. } => {
                assert!(last_partial_end <= *end_ms + 400);
                bounds.push((partials, open.take().unwrap(), *end_ms));
                partials = 0;
            }
            SegmentEvent::SpeechEnd { .. }
            | SegmentEvent::Pause { .. }
            | SegmentEvent::Resume { .. } => {}
        }
    }
    // About one per second from voice start until the utterance closed (endpoint after end).
    assert_eq!(bounds.len(), 2);
    for (n, voice, end) in bounds {
        assert!(
            n >= (end - voice) / 1_360 && n <= (end + 360 - voice) / 1_000,
            "{n} partials"
        );
        assert!(n >= 2);
    }
}

#[test]
fn long_speech_is_force_cut_at_a_quiet_frame() {
    let a = speech_clip("speech_a_8k_mulaw.wav");
    let b = speech_clip("speech_b_8k_mulaw.wav");
    // Sentences back to back (100 ms apart, under the endpoint) for ~24 s.
    let mut x = white(30 * 16_000, -60.0, 27);
    let (sa, sb) = (speech_span(&a, 0.0), speech_span(&b, 0.0));
    let mut t = 1.0f32;
    let mut k = 0;
    while t < 24.0 {
        let (clip, span) = if k % 2 == 0 { (&a, sa) } else { (&b, sb) };
        let at = t - span.0 as f32 / 1000.0;
        mix_at(&mut x, clip, at);
        t = at + span.1 as f32 / 1000.0 + 0.1;
        k += 1;
    }
    let events = run(&x, SegmenterConfig::default());
    let f = finals(&events);
    assert!(f.len() >= 2, "{f:?}");
    let (start, end, forced, _) = f[0];
    assert!(forced, "{f:?}");
    let len = end - start;
    assert!(
        (14_000..=15_000).contains(&len),
        "forced cut after {len} ms"
    );
    // The cut is at the quietest frame of the last second: a pause, not mid-vowel.
    let cut_frame = &x[(end as usize - 20) * 16..end as usize * 16];
    assert!(
        rms_dbfs(cut_frame) < -35.0,
        "cut in a loud frame: {} dBFS",
        rms_dbfs(cut_frame)
    );
    // The next utterance continues exactly where the cut was.
    assert_eq!(f[1].0, end);
    assert!(f.iter().all(|(s, e, _, _)| e - s <= 15_000));
    // Voice did not stop at the cut: one SpeechStart and one SpeechEnd for the whole stretch.
    let starts = events
        .iter()
        .filter(|e| matches!(e, SegmentEvent::SpeechStart { .. }))
        .count();
    let ends = events
        .iter()
        .filter(|e| matches!(e, SegmentEvent::SpeechEnd { .. }))
        .count();
    assert_eq!((starts, ends), (1, 1), "{events:?}");
}

#[test]
fn finish_closes_an_open_utterance_and_config_is_honoured() {
    let a = speech_clip("speech_a_8k_mulaw.wav");
    let mut x = white(16_000, -60.0, 28);
    x.extend_from_slice(&a[..a.len() / 2]); // cut off mid-sentence
    let events = run(&x, SegmenterConfig::default());
    let f = finals(&events);
    assert_eq!(f.len(), 1);
    assert!(!f[0].2);
    assert!(events
        .iter()
        .any(|e| matches!(e, SegmentEvent::SpeechEnd { .. })));

    // A longer endpoint keeps two sentences 1.5 s apart in one utterance; a short max cuts more.
    let (x, _, _) = two_sentences();
    let long = SegmenterConfig {
        endpoint_silence_ms: 2_000,
        ..Default::default()
    };
    assert_eq!(finals(&run(&x, long)).len(), 1);
    let short = SegmenterConfig {
        max_utterance_ms: 2_000,
        ..Default::default()
    };
    let f = finals(&run(&x, short));
    assert!(f.len() >= 4 && f.iter().any(|x| x.2), "{f:?}");
    assert!(f.iter().all(|(s, e, _, _)| e - s <= 2_000));
    let no_partials = SegmenterConfig {
        partial_interval_ms: 60_000,
        ..Default::default()
    };
    assert!(!run(&x, no_partials)
        .iter()
        .any(|e| matches!(e, SegmentEvent::Partial { .. })));
}

#[test]
fn reset_drops_the_open_utterance_and_keeps_the_clock() {
    let (x, _, span_b) = two_sentences();
    let mut s = Segmenter::new(SegmenterConfig::default());
    let mut out = Vec::new();
    // Into the first sentence, reset, then the rest.
    let cut = 2_000 * 16;
    s.push(&x[..cut], &mut out);
    assert!(s.in_utterance());
    out.clear();
    s.reset();
    assert!(!s.in_utterance());
    assert_eq!(s.now_ms(), 2_000);
    s.push(&x[cut..], &mut out);
    s.finish(&mut out);
    let f = finals(&out);
    // The rest of the first sentence may come back as its own utterance (the VAD relearns noise
    // in its first frame); the second sentence is found at its time on the same clock.
    let last = f.last().expect("second sentence");
    assert!(
        last.0 >= 2_000 && last.0 <= span_b.0 && last.1 + 100 >= span_b.1,
        "{f:?}"
    );
    assert!(f.iter().all(|(start, ..)| *start >= 2_000));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn chunk_size_does_not_change_the_result(
        chunks in proptest::collection::vec(1usize..2_000, 1..30),
    ) {
        let (x, _, _) = two_sentences();
        let whole = run(&x, SegmenterConfig::default());
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        let (mut pos, mut i) = (0, 0);
        while pos < x.len() {
            let n = chunks[i % chunks.len()].min(x.len() - pos);
            s.push(&x[pos..pos + n], &mut out);
            pos += n;
            i += 1;
        }
        s.finish(&mut out);
        prop_assert_eq!(out, whole);
    }
}
