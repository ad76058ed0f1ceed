//! One utterance through one `WhisperState`: the guarded decode the pool workers run.
//!
//! Greedy, English, `no_context`, one segment, no timestamps (unless asked), the encoder window
//! and token budget from [`DecodePolicy`]; a decode that hits the budget or loops is redone at
//! the full window. Silence never reaches the model (RMS gate) and noise that the model itself
//! calls no-speech yields no text, so silence never becomes "Thank you.".

use super::policy::{self, DecodePolicy, FULL_AUDIO_CTX};
use super::{CancelToken, Segment, TranscribeError, Transcription};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use whisper_rs::{FullParams, SamplingStrategy, WhisperState};

/// 16 kHz: the only rate Whisper takes.
pub const SAMPLE_RATE: usize = 16_000;
/// Clips shorter than this (100 ms) carry no word; they are answered empty without decoding.
pub const MIN_SAMPLES: usize = SAMPLE_RATE / 10;
/// Whisper's window: longer audio is decoded in several windows with timestamps.
pub const WINDOW_SAMPLES: usize = SAMPLE_RATE * 30;

/// Settings of one decode.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub threads: usize,
    pub policy: DecodePolicy,
    /// Segment timestamps (more segments, slower); off for live utterances.
    pub timestamps: bool,
}

/// Outcome of one whisper pass, before policy.
struct Pass {
    segments: Vec<Segment>,
    tokens: usize,
    no_speech_prob: f32,
    mean_logprob: f32,
}

/// Transcribes `samples` (16 kHz mono f32) with the guards described in the module doc.
pub fn transcribe(
    state: &mut WhisperState,
    samples: &[f32],
    opts: &DecodeOptions,
    cancel: &CancelToken,
) -> Result<Transcription, TranscribeError> {
    let started = Instant::now();
    let seconds = samples.len() as f32 / SAMPLE_RATE as f32;
    let empty = |no_speech| Transcription {
        text: String::new(),
        segments: Vec::new(),
        no_speech,
        elapsed: started.elapsed(),
        audio: Duration::from_secs_f32(seconds),
        audio_ctx: 0,
        retried: false,
    };
    if samples.len() < MIN_SAMPLES || policy::rms(samples) < opts.policy.silence_rms {
        return Ok(empty(true));
    }
    let long = samples.len() > WINDOW_SAMPLES;
    let mut ctx = if long {
        FULL_AUDIO_CTX
    } else {
        opts.policy.audio_ctx(seconds)
    };
    let budget = opts.policy.token_budget(seconds.min(30.0));
    let mut retried = false;
    let pass = loop {
        let pass = run_pass(
            state,
            samples,
            opts,
            cancel,
            ctx,
            if long { 0 } else { budget },
            long,
        )?;
        let text: String = pass.segments.iter().map(|s| s.text.as_str()).collect();
        let suspicious = !long && (pass.tokens as u32 >= budget || policy::is_looping(&text));
        match (suspicious, opts.policy.wider(ctx)) {
            (true, Some(wider)) => {
                tracing::debug!(
                    ctx,
                    wider,
                    tokens = pass.tokens,
                    "decode guard fired, retrying wider"
                );
                super::RETRIES.inc();
                ctx = wider;
                retried = true;
            }
            _ => break pass,
        }
    };
    let no_speech = pass.no_speech_prob > opts.policy.no_speech_prob
        && pass.mean_logprob < opts.policy.no_speech_logprob;
    if no_speech {
        return Ok(Transcription {
            audio_ctx: ctx,
            retried,
            ..empty(true)
        });
    }
    let mut segments: Vec<Segment> = pass
        .segments
        .into_iter()
        .map(|mut s| {
            s.text = s.text.trim().to_owned();
            s
        })
        .filter(|s| !policy::is_non_speech(&s.text))
        .collect();
    if !opts.timestamps && !long {
        let end_ms = (seconds * 1000.0) as u64;
        for s in &mut segments {
            s.start_ms = 0;
            s.end_ms = end_ms;
        }
    }
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Transcription {
        no_speech: text.is_empty(),
        text,
        segments,
        elapsed: started.elapsed(),
        audio: Duration::from_secs_f32(seconds),
        audio_ctx: ctx,
        retried,
    })
}

/// whisper.cpp's abort callback: reads the job's cancel flag.
///
/// # Safety
/// `flag` must point to a live `AtomicBool`.
unsafe extern "C" fn cancel_requested(flag: *mut c_void) -> bool {
    // SAFETY: `run_pass` passes the flag of a `CancelToken` it borrows for the whole `full`
    // call, and whisper.cpp calls this only inside `full`.
    unsafe { (*(flag as *const AtomicBool)).load(Ordering::Relaxed) }
}

fn run_pass(
    state: &mut WhisperState,
    samples: &[f32],
    opts: &DecodeOptions,
    cancel: &CancelToken,
    audio_ctx: u32,
    max_tokens: u32,
    long: bool,
) -> Result<Pass, TranscribeError> {
    let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    p.set_n_threads(opts.threads as i32);
    p.set_language(Some("en"));
    p.set_translate(false);
    p.set_no_context(true);
    p.set_single_segment(!long);
    p.set_no_timestamps(!(opts.timestamps || long));
    p.set_print_special(false);
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_timestamps(false);
    p.set_suppress_blank(true);
    p.set_suppress_nst(true);
    // Greedy only: whisper.cpp's temperature fallback would re-decode up to 5 times; the
    // window retry above is the (cheaper) fallback we want.
    p.set_temperature(0.0);
    p.set_temperature_inc(0.0);
    p.set_audio_ctx(audio_ctx as i32);
    p.set_max_tokens(max_tokens as i32);
    // whisper-rs's `set_abort_callback_safe` reads its boxed closure back as the wrong type and
    // leaks it on every call, so the raw callback is used with a flag that outlives the call.
    // SAFETY: `cancel` is borrowed until `full` returns; `cancel_requested` only reads it.
    unsafe {
        p.set_abort_callback(Some(cancel_requested));
        p.set_abort_callback_user_data(cancel.flag() as *const AtomicBool as *mut c_void);
    }
    if cancel.is_cancelled() {
        return Err(TranscribeError::Cancelled);
    }
    state
        .full(p, samples)
        .map_err(|e| TranscribeError::Whisper(e.to_string()))?;
    let mut segments = Vec::new();
    let (mut tokens, mut logprob_sum, mut no_speech_prob) = (0usize, 0f64, 0f32);
    for seg in state.as_iter() {
        no_speech_prob = no_speech_prob.max(seg.no_speech_probability());
        let text = seg
            .to_str_lossy()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        for i in 0..seg.n_tokens() {
            if let Some(tok) = seg.get_token(i) {
                let bytes = tok.to_bytes().unwrap_or_default();
                // special tokens render as "[_...]" / "<|...|>"; only text tokens count
                if bytes.starts_with(b"[_") || bytes.starts_with(b"<|") {
                    continue;
                }
                tokens += 1;
                logprob_sum += f64::from(tok.token_probability().max(1e-10).ln());
            }
        }
        segments.push(Segment {
            start_ms: (seg.start_timestamp().max(0) as u64) * 10,
            end_ms: (seg.end_timestamp().max(0) as u64) * 10,
            text,
        });
    }
    let mean_logprob = if tokens == 0 {
        0.0
    } else {
        (logprob_sum / tokens as f64) as f32
    };
    Ok(Pass {
        segments,
        tokens,
        no_speech_prob,
        mean_logprob,
    })
}
