//! The playbook: coaching rules read from TOML (`assets/playbook.toml` is embedded; a team can
//! load its own), validated once into compiled rules.
//!
//! Every rule has `id`, `kind`, `priority`, `title`, `body`, `cooldown_s` and `max_per_call`,
//! plus the parameters of its kind (see the embedded playbook for one of each). Loading fails
//! with a precise [`PlaybookError`] naming the rule and field: an unknown kind, a parameter that
//! does not belong to the kind, a missing one, a value out of range, or a regex that does not
//! compile.

use crate::event::{HintKind, Priority, Track};
use regex::Regex;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

/// The playbook shipped with the server.
pub const EMBEDDED_PLAYBOOK: &str = include_str!("../../../assets/playbook.toml");

/// Largest playbook file accepted by [`Playbook::load`]; a hand-written playbook is a few tens of
/// kilobytes, so a megabyte means the wrong file.
pub const MAX_PLAYBOOK_BYTES: u64 = 1024 * 1024;

/// Compiled regexes are bounded so a pathological pattern cannot take memory without limit
/// (the regex crate's default is 10 MB per regex; phrase lists compile to far less).
const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlaybookError {
    #[error("failed to read playbook {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("playbook {path} is larger than {MAX_PLAYBOOK_BYTES} bytes")]
    TooLarge { path: String },
    #[error("playbook is not valid toml: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("playbook has no rules")]
    Empty,
    #[error("rule #{index}: missing `id`")]
    MissingId { index: usize },
    #[error("rule `{0}` is defined twice")]
    DuplicateId(String),
    #[error("rule `{rule}`: unknown kind `{kind}` (expected one of {expected})")]
    UnknownKind {
        rule: String,
        kind: String,
        expected: &'static str,
    },
    #[error("rule `{rule}`: missing `{field}`")]
    Missing { rule: String, field: &'static str },
    #[error("rule `{rule}`: `{field}` does not apply to kind `{kind}`")]
    NotApplicable {
        rule: String,
        field: &'static str,
        kind: &'static str,
    },
    #[error("rule `{rule}`: `{field}` {problem}")]
    Invalid {
        rule: String,
        field: &'static str,
        problem: String,
    },
    #[error("rule `{rule}`: bad pattern `{pattern}`: {source}")]
    BadPattern {
        rule: String,
        pattern: String,
        #[source]
        source: Box<regex::Error>,
    },
}

/// Whose words or voice a rule watches. A mixed track counts for both parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Agent,
    Customer,
    Any,
}

impl Speaker {
    pub fn matches(self, track: Track) -> bool {
        match self {
            Speaker::Agent => track.is_agent(),
            Speaker::Customer => track.is_customer(),
            Speaker::Any => true,
        }
    }
}

/// Words to look for in normalised text (lower case, punctuation turned into spaces).
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Phrases and patterns as one regex over normalised text.
    pub find: Regex,
    /// Look-alikes: when this matches, the rule does not fire on the utterance.
    pub exclude: Option<Regex>,
    /// Skip a match that has a negator ("not", "never", "don't", ...) within three words before
    /// it ("it's not too expensive").
    pub negation_guard: bool,
}

/// What makes a rule fire, with its parameters in milliseconds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Trigger {
    /// Words said by `speaker`; also evaluated on partial transcripts when `on_partial`.
    Phrase { matcher: Matcher, on_partial: bool },
    /// An item the agent must say; ticks when said, hints when `due_ms` passes unsaid.
    Checklist {
        matcher: Matcher,
        label: String,
        due_ms: Option<u64>,
    },
    /// `speaker`'s sentiment trend fell `drop` below its peak in this call and is at most
    /// `below`, after at least `min_utterances` scored utterances.
    SentimentDrop {
        drop: f32,
        below: f32,
        min_utterances: usize,
    },
    /// Agent share of speech over the last `window_ms` above `max_share`, once at least
    /// `min_speech_ms` of speech is in the window. Needs two tracks.
    TalkRatio {
        max_share: f32,
        window_ms: u64,
        min_speech_ms: u64,
    },
    /// The agent has held the floor for `max_ms`. Needs two tracks.
    Monologue { max_ms: u64 },
    /// The agent started talking over the customer and both kept talking for `min_overlap_ms`,
    /// `count` times within `window_ms`. Needs two tracks.
    Interruption {
        min_overlap_ms: u64,
        count: usize,
        window_ms: u64,
    },
    /// Nobody has spoken for `max_ms` (after someone spoke).
    DeadAir { max_ms: u64 },
    /// Agent words per minute over finals of the last `window_ms` above `max_wpm`, once
    /// `min_words` are in the window. Needs two tracks (words must be the agent's).
    Pace {
        max_wpm: f32,
        window_ms: u64,
        min_words: usize,
    },
    /// A customer question the agent has not taken up within `within_ms` of the customer
    /// finishing. Needs two tracks.
    QuestionUnanswered { within_ms: u64 },
}

impl Trigger {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Trigger::Phrase { .. } => "phrase",
            Trigger::Checklist { .. } => "checklist",
            Trigger::SentimentDrop { .. } => "sentiment_drop",
            Trigger::TalkRatio { .. } => "talk_ratio",
            Trigger::Monologue { .. } => "monologue",
            Trigger::Interruption { .. } => "interruption",
            Trigger::DeadAir { .. } => "dead_air",
            Trigger::Pace { .. } => "pace",
            Trigger::QuestionUnanswered { .. } => "question_unanswered",
        }
    }

    /// Whether the rule only makes sense with agent and customer on separate tracks.
    pub fn needs_two_tracks(&self) -> bool {
        matches!(
            self,
            Trigger::TalkRatio { .. }
                | Trigger::Monologue { .. }
                | Trigger::Interruption { .. }
                | Trigger::Pace { .. }
                | Trigger::QuestionUnanswered { .. }
        )
    }
}

/// One validated playbook rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub hint: HintKind,
    pub priority: Priority,
    pub title: String,
    pub body: String,
    pub cooldown_ms: u64,
    pub max_per_call: u32,
    pub speaker: Speaker,
    pub trigger: Trigger,
}

/// A validated set of rules, shared by every call (wrap in `Arc`).
#[derive(Debug, Clone)]
pub struct Playbook {
    pub name: String,
    pub rules: Vec<Rule>,
}

const KINDS: &str = "phrase, checklist, sentiment_drop, talk_ratio, monologue, interruption, \
                     dead_air, pace, question_unanswered";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Option<String>,
    kind: Option<String>,
    priority: Option<Priority>,
    title: Option<String>,
    body: Option<String>,
    cooldown_s: Option<f64>,
    max_per_call: Option<u32>,
    // kind parameters
    hint: Option<HintKind>,
    speaker: Option<Speaker>,
    phrases: Option<Vec<String>>,
    patterns: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    negation_guard: Option<bool>,
    on_partial: Option<bool>,
    label: Option<String>,
    due_s: Option<f64>,
    drop: Option<f32>,
    below: Option<f32>,
    min_utterances: Option<usize>,
    max_share: Option<f32>,
    window_s: Option<f64>,
    min_speech_s: Option<f64>,
    max_s: Option<f64>,
    min_overlap_s: Option<f64>,
    count: Option<usize>,
    max_wpm: Option<f32>,
    min_words: Option<usize>,
    within_s: Option<f64>,
}

impl RawRule {
    /// The kind-specific fields that are set, by name.
    fn set_params(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! check {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        check!(
            hint,
            speaker,
            phrases,
            patterns,
            exclude,
            negation_guard,
            on_partial,
            label,
            due_s,
            drop,
            below,
            min_utterances,
            max_share,
            window_s,
            min_speech_s,
            max_s,
            min_overlap_s,
            count,
            max_wpm,
            min_words,
            within_s
        );
        v
    }
}

impl Playbook {
    /// The playbook shipped in `assets/playbook.toml`.
    pub fn embedded() -> Result<Playbook, PlaybookError> {
        Self::from_toml_str(EMBEDDED_PLAYBOOK)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Playbook, PlaybookError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let io = |source| PlaybookError::Io {
            path: shown.clone(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_PLAYBOOK_BYTES {
            return Err(PlaybookError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_toml_str(&text)
    }

    pub fn from_toml_str(text: &str) -> Result<Playbook, PlaybookError> {
        let raw: RawPlaybook = toml::from_str(text)?;
        if raw.rules.is_empty() {
            return Err(PlaybookError::Empty);
        }
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (index, r) in raw.rules.into_iter().enumerate() {
            let rule = compile_rule(index, r)?;
            if !seen.insert(rule.id.clone()) {
                return Err(PlaybookError::DuplicateId(rule.id));
            }
            rules.push(rule);
        }
        Ok(Playbook {
            name: raw.name.unwrap_or_else(|| "playbook".into()),
            rules,
        })
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

/// Lower case, curly apostrophes made straight, every character other than a letter, digit or
/// apostrophe turned into a space, runs of spaces collapsed. Phrases and transcript text go
/// through the same function so that "Too expensive!" matches the phrase "too expensive".
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    // Lower-case first, then filter: lower-casing can yield characters that are not letters
    // ("İ" becomes "i" + a combining dot), and filtering after keeps the function idempotent.
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            '\u{2019}' | '\u{2018}' | '`' => '\'',
            c => c,
        };
        if c.is_alphanumeric() || c == '\'' {
            out.push(c);
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn compile_rule(index: usize, r: RawRule) -> Result<Rule, PlaybookError> {
    let id = match r.id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => return Err(PlaybookError::MissingId { index }),
    };
    let missing = |field| PlaybookError::Missing {
        rule: id.clone(),
        field,
    };
    let invalid = |field, problem: &str| PlaybookError::Invalid {
        rule: id.clone(),
        field,
        problem: problem.to_string(),
    };
    let kind = r.kind.clone().ok_or_else(|| missing("kind"))?;
    let priority = r.priority.ok_or_else(|| missing("priority"))?;
    let title = r.title.clone().ok_or_else(|| missing("title"))?;
    let body = r.body.clone().ok_or_else(|| missing("body"))?;
    if title.trim().is_empty() {
        return Err(invalid("title", "is empty"));
    }
    if body.trim().is_empty() {
        return Err(invalid("body", "is empty"));
    }
    let cooldown_ms = secs_to_ms(r.cooldown_s.ok_or_else(|| missing("cooldown_s"))?)
        .ok_or_else(|| invalid("cooldown_s", "must be a non-negative number of seconds"))?;
    let max_per_call = r.max_per_call.ok_or_else(|| missing("max_per_call"))?;
    if max_per_call == 0 {
        return Err(invalid("max_per_call", "must be at least 1"));
    }

    let (kind_name, allowed): (&'static str, &[&str]) = match kind.as_str() {
        "phrase" => (
            "phrase",
            &[
                "hint",
                "speaker",
                "phrases",
                "patterns",
                "exclude",
                "negation_guard",
                "on_partial",
            ],
        ),
        "checklist" => (
            "checklist",
            &[
                "speaker",
                "phrases",
                "patterns",
                "exclude",
                "negation_guard",
                "label",
                "due_s",
            ],
        ),
        "sentiment_drop" => (
            "sentiment_drop",
            &["speaker", "drop", "below", "min_utterances"],
        ),
        "talk_ratio" => ("talk_ratio", &["max_share", "window_s", "min_speech_s"]),
        "monologue" => ("monologue", &["max_s"]),
        "interruption" => ("interruption", &["min_overlap_s", "count", "window_s"]),
        "dead_air" => ("dead_air", &["max_s"]),
        "pace" => ("pace", &["max_wpm", "window_s", "min_words"]),
        "question_unanswered" => ("question_unanswered", &["within_s"]),
        _ => {
            return Err(PlaybookError::UnknownKind {
                rule: id,
                kind,
                expected: KINDS,
            })
        }
    };
    if let Some(field) = r.set_params().into_iter().find(|f| !allowed.contains(f)) {
        return Err(PlaybookError::NotApplicable {
            rule: id,
            field,
            kind: kind_name,
        });
    }

    let secs = |v: Option<f64>, field: &'static str| -> Result<u64, PlaybookError> {
        let v = v.ok_or_else(|| missing(field))?;
        match secs_to_ms(v) {
            Some(ms) if ms > 0 => Ok(ms),
            _ => Err(invalid(field, "must be a positive number of seconds")),
        }
    };
    let unit =
        |v: Option<f32>, field: &'static str, lo: f32, hi: f32| -> Result<f32, PlaybookError> {
            let v = v.ok_or_else(|| missing(field))?;
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(field, &format!("must be between {lo} and {hi}")))
            }
        };

    let (hint, speaker, trigger) = match kind_name {
        "phrase" => {
            let hint = r.hint.ok_or_else(|| missing("hint"))?;
            if hint == HintKind::Whisper {
                return Err(invalid(
                    "hint",
                    "cannot be `whisper` (reserved for supervisors)",
                ));
            }
            let speaker = r.speaker.ok_or_else(|| missing("speaker"))?;
            let matcher = compile_matcher(&id, &r)?;
            let on_partial = r.on_partial.unwrap_or(true);
            (
                hint,
                speaker,
                Trigger::Phrase {
                    matcher,
                    on_partial,
                },
            )
        }
        "checklist" => {
            let label = r.label.clone().ok_or_else(|| missing("label"))?;
            let due_ms = match r.due_s {
                None => None,
                Some(_) => Some(secs(r.due_s, "due_s")?),
            };
            let matcher = compile_matcher(&id, &r)?;
            let speaker = r.speaker.unwrap_or(Speaker::Agent);
            (
                HintKind::Checklist,
                speaker,
                Trigger::Checklist {
                    matcher,
                    label,
                    due_ms,
                },
            )
        }
        "sentiment_drop" => (
            HintKind::SentimentDrop,
            r.speaker.unwrap_or(Speaker::Customer),
            Trigger::SentimentDrop {
                drop: unit(r.drop, "drop", 0.0, 2.0)?,
                below: unit(r.below, "below", -1.0, 1.0)?,
                min_utterances: r.min_utterances.unwrap_or(1).max(1),
            },
        ),
        "talk_ratio" => (
            HintKind::TalkRatio,
            Speaker::Agent,
            Trigger::TalkRatio {
                max_share: unit(r.max_share, "max_share", 0.0, 1.0)?,
                window_ms: secs(r.window_s, "window_s")?,
                min_speech_ms: secs(r.min_speech_s, "min_speech_s")?,
            },
        ),
        "monologue" => (
            HintKind::Monologue,
            Speaker::Agent,
            Trigger::Monologue {
                max_ms: secs(r.max_s, "max_s")?,
            },
        ),
        "interruption" => {
            let count = r.count.ok_or_else(|| missing("count"))?;
            if count == 0 {
                return Err(invalid("count", "must be at least 1"));
            }
            (
                HintKind::Interruption,
                Speaker::Agent,
                Trigger::Interruption {
                    min_overlap_ms: secs(r.min_overlap_s, "min_overlap_s")?,
                    count,
                    window_ms: secs(r.window_s, "window_s")?,
                },
            )
        }
        "dead_air" => (
            HintKind::DeadAir,
            Speaker::Any,
            Trigger::DeadAir {
                max_ms: secs(r.max_s, "max_s")?,
            },
        ),
        "pace" => {
            let max_wpm = r.max_wpm.ok_or_else(|| missing("max_wpm"))?;
            if !(max_wpm.is_finite() && max_wpm > 0.0) {
                return Err(invalid("max_wpm", "must be a positive number"));
            }
            (
                HintKind::Pace,
                Speaker::Agent,
                Trigger::Pace {
                    max_wpm,
                    window_ms: secs(r.window_s, "window_s")?,
                    min_words: r.min_words.ok_or_else(|| missing("min_words"))?.max(1),
                },
            )
        }
        "question_unanswered" => (
            HintKind::QuestionUnanswered,
            Speaker::Customer,
            Trigger::QuestionUnanswered {
                within_ms: secs(r.within_s, "within_s")?,
            },
        ),
        // unwrap-free: every name above comes from the match that produced `kind_name`.
        _ => unreachable!("kind names are matched exhaustively above"),
    };

    Ok(Rule {
        id,
        hint,
        priority,
        title: title.trim().to_string(),
        body: body.trim().to_string(),
        cooldown_ms,
        max_per_call,
        speaker,
        trigger,
    })
}

fn secs_to_ms(s: f64) -> Option<u64> {
    // A day is far beyond any call; larger values are a typo.
    (s.is_finite() && (0.0..=86_400.0).contains(&s)).then(|| (s * 1000.0).round() as u64)
}

/// `\b(?:p1|p2)\b` over normalised phrases, or'ed with the raw patterns.
fn phrase_regex(
    rule: &str,
    phrases: &[String],
    patterns: &[String],
) -> Result<Option<Regex>, PlaybookError> {
    let mut alts = Vec::new();
    let words: Vec<String> = phrases
        .iter()
        .map(|p| normalize_text(p))
        .filter(|p| !p.is_empty())
        .map(|p| regex::escape(&p))
        .collect();
    if words.len() != phrases.len() {
        return Err(PlaybookError::Invalid {
            rule: rule.to_string(),
            field: "phrases",
            problem: "contains a phrase with no letters or digits".into(),
        });
    }
    if !words.is_empty() {
        alts.push(format!(r"\b(?:{})\b", words.join("|")));
    }
    for p in patterns {
        build_regex(p).map_err(|source| PlaybookError::BadPattern {
            rule: rule.to_string(),
            pattern: p.clone(),
            source: Box::new(source),
        })?;
        alts.push(format!("(?:{p})"));
    }
    if alts.is_empty() {
        return Ok(None);
    }
    let joined = alts.join("|");
    build_regex(&joined)
        .map(Some)
        .map_err(|source| PlaybookError::BadPattern {
            rule: rule.to_string(),
            pattern: joined,
            source: Box::new(source),
        })
}

fn build_regex(p: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(p)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

fn compile_matcher(rule: &str, r: &RawRule) -> Result<Matcher, PlaybookError> {
    let phrases = r.phrases.clone().unwrap_or_default();
    let patterns = r.patterns.clone().unwrap_or_default();
    let find = phrase_regex(rule, &phrases, &patterns)?.ok_or_else(|| PlaybookError::Missing {
        rule: rule.to_string(),
        field: "phrases",
    })?;
    let exclude = phrase_regex(rule, &r.exclude.clone().unwrap_or_default(), &[])?;
    Ok(Matcher {
        find,
        exclude,
        negation_guard: r.negation_guard.unwrap_or(true),
    })
}

/// Words that, within three words before a match, mean the speaker is denying it.
const NEGATORS: &[&str] = &[
    "not", "no", "never", "don't", "dont", "doesn't", "didn't", "isn't", "wasn't", "aren't",
    "won't", "wouldn't", "can't", "cannot", "hardly", "nothing",
];

impl Matcher {
    /// The first match in normalised `text` that survives the look-alike and negation checks.
    pub fn find<'t>(&self, text: &'t str) -> Option<&'t str> {
        if self.exclude.as_ref().is_some_and(|x| x.is_match(text)) {
            return None;
        }
        self.find
            .find_iter(text)
            .find(|m| !(self.negation_guard && negated_before(text, m.start())))
            .map(|m| m.as_str())
    }
}

fn negated_before(text: &str, start: usize) -> bool {
    text[..start]
        .split_whitespace()
        .rev()
        .take(3)
        .any(|w| NEGATORS.contains(&w))
}
