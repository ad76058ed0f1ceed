//! Starts the long-lived parts of the pipeline and keeps them alive.
//!
//! * The transcription pool supervises its own worker threads (a panicking job rebuilds that
//!   worker's `WhisperState`; see [`crate::transcriber`]).
//! * The sentiment and scoring actors run on a dedicated arbiter (their own thread, so their work
//!   never sits on a web worker) under [`actix::Supervisor`]: when one stops — which is what
//!   [`contain`] makes a panicking handler do — it is restarted behind the *same* mailbox, so the
//!   addresses every call holds stay valid. Each restart is counted in
//!   `callcoach_actor_restarts_total{actor=…}` and delayed by an exponential backoff so a crash
//!   loop cannot spin a core.

use crate::call::Pipeline;
use crate::coach::Playbook;
use crate::metrics;
use crate::scorer::{ScoreSink, Scorer, ScoringActor, Weights};
use crate::segmenter::SegmenterConfig;
use crate::sentiment::Analyzer;
use crate::sentiment::SentimentActor;
use crate::transcriber::{TranscriberConfig, TranscriberPool};
use actix::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// First restart waits 50 ms, doubling to at most 5 s: quick recovery from a one-off, and a
/// crash loop costs at most one restart every 5 s.
const BACKOFF_START: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error("failed to load the playbook: {0}")]
    Playbook(String),
    #[error("failed to load the scoring weights: {0}")]
    Weights(String),
}

/// What the services need to start.
#[derive(Clone)]
pub struct ServicesConfig {
    /// `None`: transcription disabled (ingest-only, or talk-time coaching only).
    pub transcription: Option<TranscriberConfig>,
    /// `None`: the playbook embedded in the binary.
    pub playbook: Option<PathBuf>,
    pub segmenter: SegmenterConfig,
    pub max_call: Duration,
    /// Where lead score updates go (the server stores them with their outbox rows).
    pub score_sink: Arc<dyn ScoreSink>,
}

/// The running services. Dropping this does not stop them; the process does.
pub struct Services {
    pub transcriber: Option<TranscriberPool>,
    pub sentiment: Addr<SentimentActor>,
    pub scoring: Addr<ScoringActor>,
    pub playbook: Arc<Playbook>,
    segmenter: SegmenterConfig,
    max_call: Duration,
    _arbiter: ArbiterHandle,
}

impl Services {
    /// The handles a call needs.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline {
            transcriber: self.transcriber.as_ref().map(|p| p.handle()),
            sentiment: self.sentiment.clone(),
            scoring: Some(self.scoring.clone()),
            playbook: self.playbook.clone(),
            segmenter: self.segmenter.clone(),
            max_call: self.max_call,
        }
    }
}

/// Starts the pool and the supervised actors. A model that fails to load does not stop the
/// start: the server runs without transcription (talk-time coaching, `/readyz` unready).
pub fn start(cfg: &ServicesConfig) -> Result<Services, SupervisorError> {
    let playbook = match &cfg.playbook {
        Some(path) => Playbook::load(path).map_err(|e| SupervisorError::Playbook(e.to_string()))?,
        None => Playbook::embedded().map_err(|e| SupervisorError::Playbook(e.to_string()))?,
    };
    let transcriber = cfg.transcription.as_ref().and_then(|tc| {
        match TranscriberPool::start(tc.clone()) {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::error!(error = %e, model = %tc.model_path.display(),
                    "transcription unavailable: model failed to load; continuing with talk-time coaching");
                None
            }
        }
    });
    let arbiter = Arbiter::new().handle();
    // The lexicon and the weights are loaded once; a restarted actor reuses them.
    let analyzer = Arc::new(Analyzer::new());
    let sentiment = actix::Supervisor::start_in_arbiter(&arbiter, move |_| {
        SentimentActor::new(analyzer.clone())
    });
    let scorer = Arc::new(
        Scorer::new(&Weights::embedded()).map_err(|e| SupervisorError::Weights(e.to_string()))?,
    );
    let sink = cfg.score_sink.clone();
    let scoring = actix::Supervisor::start_in_arbiter(&arbiter, move |_| {
        ScoringActor::new(scorer.clone(), sink.clone())
    });
    Ok(Services {
        transcriber,
        sentiment,
        scoring,
        playbook: Arc::new(playbook),
        segmenter: cfg.segmenter.clone(),
        max_call: cfg.max_call,
        _arbiter: arbiter,
    })
}

/// Backoff before the `restarts`-th restart (1-based).
pub fn backoff(restarts: u32) -> Duration {
    let factor = 1u32 << restarts.saturating_sub(1).min(16);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Runs a handler body; a panic stops the actor (its supervisor restarts it) and yields `None`.
/// Use at every handler boundary of a supervised actor: actix does not recover panics itself.
pub fn contain<A, R>(ctx: &mut A::Context, actor: &'static str, f: impl FnOnce() -> R) -> Option<R>
where
    A: Actor<Context = Context<A>>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::error!(actor, "panic in actor handler; restarting it");
            ctx.stop();
            None
        }
    }
}

static SENTIMENT_RESTARTS: AtomicU32 = AtomicU32::new(0);
static SCORING_RESTARTS: AtomicU32 = AtomicU32::new(0);

impl Supervised for SentimentActor {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        restarting(ctx, "sentiment", &SENTIMENT_RESTARTS);
    }
}

impl Supervised for ScoringActor {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        restarting(ctx, "scoring", &SCORING_RESTARTS);
    }
}

/// Counts a restart and delays the actor's next message by the backoff.
fn restarting<A>(ctx: &mut Context<A>, actor: &'static str, restarts: &AtomicU32)
where
    A: Actor<Context = Context<A>>,
{
    let n = restarts.fetch_add(1, Ordering::Relaxed) + 1;
    metrics::ACTOR_RESTARTS.with_label_values(&[actor]).inc();
    let delay = backoff(n);
    tracing::warn!(
        actor,
        restarts = n,
        delay_ms = delay.as_millis() as u64,
        "actor restarting"
    );
    // `wait` holds the mailbox until the delay passes: messages queue, nothing is lost.
    ctx.wait(actix::fut::wrap_future::<_, A>(actix::clock::sleep(delay)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(50));
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
