//! Decoding policy that does not need the model: encoder context and token budget by clip
//! length, the silence gate, and repetition-loop detection.
//!
//! Why these exist (figures measured on this 2-core machine, whisper-rs 0.16, tiny.en; see
//! benches/README.md): whisper.cpp encodes a full 30 s window (`audio_ctx` 1 500 frames) by
//! default, which costs ~1.3 s even for a 2 s utterance. Shrinking the encoder window to the
//! clip plus a margin makes short clips several times faster, but a tight window can make the
//! decoder loop (a 5 s clip repeated its sentence ten times at `audio_ctx = 50 × s`). So the
//! tight window is only used behind two guards: a token budget proportional to the duration,
//! and a loop detector; either firing re-decodes at a wider window.

/// Encoder frames per second of audio (1 500 frames per 30 s window).
pub const FRAMES_PER_SECOND: f32 = 50.0;
/// Encoder frames in the full window of the Whisper models.
pub const FULL_AUDIO_CTX: u32 = 1500;

/// Tunables of the decode policy. Defaults are the values measured to keep WER unchanged on
/// ../shared/data/speech (see benches/README.md, "audio_ctx sweep").
#[derive(Debug, Clone, PartialEq)]
pub struct DecodePolicy {
    /// Frames added to the clip's own frames. 0 disables tuning (always the full window).
    pub ctx_margin_frames: u32,
    /// Smallest window used, whatever the clip length. 320, not 224: the pieces of a live call
    /// are often ~1 s, and at 224 frames their decodes hit the token guard and were redone at
    /// twice the window (12 retries in the sales call against 7 at 320; benches/README.md,
    /// "Session 4").
    pub min_ctx_frames: u32,
    /// Token budget: `budget_base + budget_per_second × seconds`. Read English runs at ~2.5–3
    /// words/s ≈ 3.5–4.5 tokens/s; 8 tokens/s leaves room for fast talkers and numbers.
    pub budget_per_second: f32,
    pub budget_base: u32,
    /// RMS below this (full scale = 1.0) is silence: no decode at all. 0.003 ≈ −50 dBFS, under
    /// the quietest speech in the evaluation set and above 16-bit line noise.
    pub silence_rms: f32,
    /// A decode whose no-speech probability exceeds this *and* whose mean token log-probability
    /// is below `no_speech_logprob` is dropped as noise (whisper's own rule: 0.6 / −1.0).
    pub no_speech_prob: f32,
    pub no_speech_logprob: f32,
}

impl Default for DecodePolicy {
    fn default() -> Self {
        Self {
            ctx_margin_frames: 192,
            min_ctx_frames: 320,
            budget_per_second: 8.0,
            budget_base: 8,
            silence_rms: 0.003,
            no_speech_prob: 0.6,
            no_speech_logprob: -1.0,
        }
    }
}

impl DecodePolicy {
    /// The encoder window for a clip of `seconds`: its frames plus the margin, rounded up to a
    /// multiple of 32 frames, within `[min_ctx_frames, 1500]`.
    pub fn audio_ctx(&self, seconds: f32) -> u32 {
        if self.ctx_margin_frames == 0 {
            return FULL_AUDIO_CTX;
        }
        let own = (seconds.max(0.0) * FRAMES_PER_SECOND).ceil() as u32;
        let ctx = own.saturating_add(self.ctx_margin_frames).div_ceil(32) * 32;
        ctx.clamp(self.min_ctx_frames, FULL_AUDIO_CTX)
    }

    /// The next, wider window to retry at after a guard fired, or `None` at the full window:
    /// twice the last one. A decode that looped at a tight window reads fine at twice it (both
    /// looping clips of ../shared/data/speech, at 384 → 768 frames), at a third of the full
    /// window's cost; a second loop goes on to the full window.
    pub fn wider(&self, ctx: u32) -> Option<u32> {
        (ctx < FULL_AUDIO_CTX)
            .then(|| (ctx * 2).div_ceil(32) * 32)
            .map(|c| c.min(FULL_AUDIO_CTX))
    }

    /// Most tokens a clip of `seconds` may produce.
    pub fn token_budget(&self, seconds: f32) -> u32 {
        self.budget_base + (seconds.max(0.0) * self.budget_per_second).ceil() as u32
    }
}

/// Root mean square of the samples (0 for an empty slice).
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// True when the text repeats itself the way a looping decoder does: some run of 1–8 words
/// repeated back to back at least 3 times (a single word: 4 times, since "no, no, no" is
/// speech and "the the the the" is not).
pub fn is_looping(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    for n in 1..=8usize {
        let min_reps = if n == 1 { 4 } else { 3 };
        if words.len() < n * min_reps {
            break;
        }
        for start in 0..words.len() - n * min_reps + 1 {
            let unit = &words[start..start + n];
            let mut reps = 1;
            while start + (reps + 1) * n <= words.len()
                && &words[start + reps * n..start + (reps + 1) * n] == unit
            {
                reps += 1;
            }
            if reps >= min_reps && reps * n >= 4 {
                return true;
            }
        }
    }
    false
}

/// True for decoder output that is not words: music notes, "[BLANK_AUDIO]", "(wind blowing)",
/// "*sigh*" and the like. Whisper emits these for noise and music even with non-speech tokens
/// suppressed; a caller wants no text for them.
pub fn is_non_speech(text: &str) -> bool {
    let t = text.trim();
    if !t.chars().any(char::is_alphanumeric) {
        return true;
    }
    let wrapped = |open: char, close: char| t.starts_with(open) && t.ends_with(close);
    wrapped('[', ']') || wrapped('(', ')') || wrapped('*', '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctx_grows_with_duration_and_stays_in_bounds() {
        let p = DecodePolicy::default();
        assert_eq!(p.audio_ctx(0.0), 320);
        assert_eq!(p.audio_ctx(0.5), 320); // 25 + 192 = 217 -> 320 floor
        assert_eq!(p.audio_ctx(2.0), 320); // 100 + 192 = 292 -> 320
        assert_eq!(p.audio_ctx(3.0), 352); // 150 + 192 = 342 -> 352
        assert_eq!(p.audio_ctx(5.0), 448); // 250 + 192 = 442 -> 448
        assert_eq!(p.audio_ctx(10.0), 704); // 500 + 192 = 692 -> 704
        assert_eq!(p.audio_ctx(29.0), 1500);
        assert_eq!(p.audio_ctx(600.0), 1500);
        let off = DecodePolicy {
            ctx_margin_frames: 0,
            ..p.clone()
        };
        assert_eq!(off.audio_ctx(2.0), 1500);
        assert_eq!(p.wider(320), Some(640));
        assert_eq!(p.wider(704), Some(1408));
        assert_eq!(p.wider(800), Some(1500));
        assert_eq!(p.wider(1500), None);
    }

    #[test]
    fn budget_is_proportional() {
        let p = DecodePolicy::default();
        assert_eq!(p.token_budget(0.0), 8);
        assert_eq!(p.token_budget(5.0), 48);
        assert!(p.token_budget(10.0) > 2 * p.token_budget(2.0));
    }

    #[test]
    fn rms_of_known_signals() {
        assert_eq!(rms(&[]), 0.0);
        assert!((rms(&[0.5; 100]) - 0.5).abs() < 1e-6);
        let sine: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.1).sin()).collect();
        assert!((rms(&sine) - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-2);
    }

    #[test]
    fn loops_are_detected_and_speech_is_not() {
        let looping =
            "produced the block books, produced the block books, produced the block books,";
        assert!(is_looping(looping));
        assert!(is_looping("the the the the"));
        assert!(is_looping("Thank you. Thank you. Thank you. Thank you."));
        assert!(!is_looping("no, no, no, that is not what I said"));
        assert!(!is_looping(
            "Printing, in the only sense with which we are at present concerned"
        ));
        assert!(!is_looping("very very good"));
        assert!(!is_looping(""));
    }

    #[test]
    fn annotations_are_not_speech() {
        for t in [
            "♪",
            " ♪♪ ",
            "[BLANK_AUDIO]",
            "(wind blowing)",
            "*sigh*",
            "...",
            "",
        ] {
            assert!(is_non_speech(t), "{t:?}");
        }
        for t in ["Thank you.", "10 of clubs", "(laughs) that's right", "ok"] {
            assert!(!is_non_speech(t), "{t:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ctx_is_monotone_and_bounded(a in 0.0f32..60.0, b in 0.0f32..60.0) {
            let p = DecodePolicy::default();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            proptest::prop_assert!(p.audio_ctx(lo) <= p.audio_ctx(hi));
            proptest::prop_assert!(p.audio_ctx(hi) <= FULL_AUDIO_CTX);
            // the window always covers the clip (or is the full window)
            let c = p.audio_ctx(hi);
            proptest::prop_assert!(c == FULL_AUDIO_CTX || c as f32 >= hi * FRAMES_PER_SECOND);
        }

        #[test]
        fn loop_detector_never_panics(s in ".{0,200}") {
            let _ = is_looping(&s);
        }
    }
}
