//! Sentiment of transcript text: a VADER-family analyser, the actor that serves it with a
//! fingerprint cache, and a per-speaker trend.
//!
//! * [`analyzer`] — the rules (negation, boosters, "but", punctuation and capitals emphasis,
//!   compound normalisation) over the VADER lexicon, adapted to Whisper transcripts.
//! * [`SentimentActor`] — an actix actor answering [`Analyze`] with a bounded LRU keyed by a
//!   fingerprint of the normalised text; partial re-decodes and stock phrases ("thank you",
//!   "okay") repeat, so most lookups are hits. Hits and misses are exported as metrics.
//! * [`Trend`] — moving average of one speaker's compound score, which is what the coach's
//!   sentiment-drop rule and the dashboard look at.
//!
//! Why not the `vader_sentiment` crate whole: its 0.1.1 release (2019, unmaintained) inverts the
//! "at least" rule, has an operator-precedence slip in its three-words-back negation check, adds
//! a booster for every booster *substring* of the three previous words ("so" in "also"), counts a
//! single "?" as emphasis and drops every one-character token. We take only its copy of the
//! lexicon (MIT, identical to the reference `vader_lexicon.txt`) and implement the rules here.

pub mod analyzer;
#[cfg(test)]
mod tests;

pub use analyzer::{Analyzer, MAX_TEXT_BYTES};

use crate::event::SentimentScore;
use crate::metrics;
use actix::{Actor, ActorContext, Context, Handler, Message, MessageResult};
use lru::LruCache;
use prometheus::{Histogram, IntCounter};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};

/// Mailbox capacity of the sentiment actor. One message per final (and per changed partial) of
/// every live call; an analysis takes tens of microseconds, so 1 024 queued messages are well
/// under 100 ms of work and absorb bursts from a few hundred calls without letting a stalled
/// actor hold unbounded memory. Callers use `try_send` and treat `Full` as "no score this time".
pub const SENTIMENT_MAILBOX_CAPACITY: usize = 1024;

/// Entries in the fingerprint cache. Each entry is a 64-bit key and a 16-byte score (~60 bytes
/// with the LRU links), so 16 384 entries are about 1 MB: enough to hold every distinct
/// utterance of a few hundred concurrent calls for the minutes in which partial re-decodes and
/// repeats happen.
pub const CACHE_CAPACITY: usize = 16 * 1024;

/// Utterances averaged by [`Trend`]. Four recent utterances (roughly the last half minute of one
/// speaker) react within one or two turns yet do not swing on a single "no".
pub const TREND_WINDOW: usize = 4;

static CACHE_HITS: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_sentiment_cache_hits_total",
        "Sentiment requests answered from the fingerprint cache",
    )
});
static CACHE_MISSES: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_sentiment_cache_misses_total",
        "Sentiment requests that ran the analyser",
    )
});
static ANALYZE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    metrics::stage_histogram(
        "callcoach_sentiment_analyze_seconds",
        "Time to analyse one uncached text",
    )
});

/// The cache key of a text: a 64-bit hash of the text with surrounding whitespace trimmed and
/// inner runs of whitespace collapsed. Case and punctuation are kept because they change the
/// score. With 2^64 keys, a collision among the 16 K cached entries has odds near 10^-11.
pub fn fingerprint(text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for word in text.split_whitespace() {
        word.hash(&mut h);
    }
    h.finish()
}

/// Hit and miss counts of one actor's cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub len: usize,
}

/// Score one text. Answers the score; never fails (empty or over-long text is handled).
#[derive(Debug, Clone)]
pub struct Analyze {
    pub text: String,
}

impl Message for Analyze {
    type Result = SentimentScore;
}

/// Ask the actor for its cache figures.
#[derive(Debug, Clone, Copy)]
pub struct GetCacheStats;

impl Message for GetCacheStats {
    type Result = CacheStats;
}

/// Serves [`Analyze`] from a shared [`Analyzer`] behind a bounded LRU.
pub struct SentimentActor {
    analyzer: Arc<Analyzer>,
    cache: LruCache<u64, SentimentScore>,
    stats: CacheStats,
}

impl SentimentActor {
    pub fn new(analyzer: Arc<Analyzer>) -> Self {
        Self::with_capacity(analyzer, CACHE_CAPACITY)
    }

    /// With a different cache size (tests, benches); zero is taken as one.
    pub fn with_capacity(analyzer: Arc<Analyzer>, capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        SentimentActor {
            analyzer,
            cache: LruCache::new(cap),
            stats: CacheStats::default(),
        }
    }

    /// The cached lookup the actor runs per message; public so benches can measure it without
    /// a mailbox in the way.
    pub fn analyze(&mut self, text: &str) -> SentimentScore {
        let key = fingerprint(text);
        if let Some(score) = self.cache.get(&key) {
            self.stats.hits += 1;
            CACHE_HITS.inc();
            return *score;
        }
        self.stats.misses += 1;
        CACHE_MISSES.inc();
        let timer = ANALYZE_SECONDS.start_timer();
        let score = self.analyzer.polarity(text);
        timer.observe_duration();
        self.cache.put(key, score);
        score
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            len: self.cache.len(),
            ..self.stats
        }
    }
}

impl Actor for SentimentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(SENTIMENT_MAILBOX_CAPACITY);
    }
}

impl Handler<Analyze> for SentimentActor {
    type Result = MessageResult<Analyze>;

    fn handle(&mut self, msg: Analyze, ctx: &mut Self::Context) -> Self::Result {
        // actix does not recover a panicking handler. The analyser is not expected to panic (a
        // property test feeds it arbitrary text), but if it does the cache may be half-updated:
        // drop it, stop so the supervisor restarts the actor behind the same mailbox, and answer
        // neutral rather than leave the caller without a reply.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.analyze(&msg.text))) {
            Ok(score) => MessageResult(score),
            Err(_) => {
                tracing::error!("panic in sentiment analysis; clearing the cache and restarting");
                self.cache.clear();
                ctx.stop();
                MessageResult(SentimentScore::default())
            }
        }
    }
}

impl Handler<GetCacheStats> for SentimentActor {
    type Result = MessageResult<GetCacheStats>;

    fn handle(&mut self, _msg: GetCacheStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.cache_stats())
    }
}

/// Moving average of one speaker's compound score over the last [`TREND_WINDOW`] utterances.
#[derive(Debug, Clone, Default)]
pub struct Trend {
    recent: VecDeque<f32>,
}

impl Trend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one utterance's compound score and answers the new average. Non-finite input is
    /// ignored (answers the average so far).
    pub fn push(&mut self, compound: f32) -> f32 {
        if compound.is_finite() {
            if self.recent.len() == TREND_WINDOW {
                self.recent.pop_front();
            }
            self.recent.push_back(compound.clamp(-1.0, 1.0));
        }
        self.value()
    }

    /// The current average (0 before any utterance).
    pub fn value(&self) -> f32 {
        if self.recent.is_empty() {
            return 0.0;
        }
        self.recent.iter().sum::<f32>() / self.recent.len() as f32
    }

    /// Utterances currently averaged.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }
}
