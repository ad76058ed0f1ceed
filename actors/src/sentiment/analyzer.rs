//! The VADER rules (Hutto & Gilbert, ICWSM 2014) over the VADER lexicon, adapted to speech
//! transcripts.
//!
//! The rules follow the reference Python implementation (`vaderSentiment` 3.3.2): boosters and
//! dampeners up to three words back, negation up to three words back (scaled by -0.74), "no" as a
//! negator, "least", "but" shifting weight to the second clause, "!"/"?" emphasis, ALL-CAPS
//! emphasis, special idioms, and `x / sqrt(x² + 15)` compound normalisation. Where the Python code
//! has an operator-precedence slip (the three-words-back "never so …" check fires on any "so" or
//! "this" right before the word) we implement the stated intent instead.
//!
//! Speech adaptations (Whisper writes cased, punctuated text, but nobody speaks in capitals):
//! disfluencies ("um", "uh", "hmm") are dropped before the rules look at word distances, so
//! "not, um, good" is still negated; discourse markers opening a clause ("Well, ...",
//! "Honestly, ...") carry no valence; and one- or two-letter all-caps tokens ("OK", "TV") never
//! count as shouted emphasis, because Whisper writes them that way by convention.
//!
//! The lexicon itself comes from the `vader_sentiment` crate (MIT, the unmodified
//! `vader_lexicon.txt` of the reference implementation); its rule code is not used (see the
//! module doc of [`crate::sentiment`]).

use crate::event::SentimentScore;
use std::collections::HashMap;

/// Booster step (paper, Table 3: mean intensity change 0.293 for degree modifiers).
const B_INCR: f64 = 0.293;
const B_DECR: f64 = -0.293;
/// Emphasis added to an ALL-CAPS sentiment word in mixed-case text (reference implementation).
const C_INCR: f64 = 0.733;
/// Negation multiplier (reference implementation).
const N_SCALAR: f64 = -0.74;
/// Per "!" (up to [`MAX_EMARK`]) and per "?" (2..=3 of them) emphasis (reference implementation).
const EMARK_INCR: f64 = 0.292;
const MAX_EMARK: usize = 4;
const QMARK_INCR: f64 = 0.18;
const MAX_QMARK_INCR: f64 = 0.96;
/// Compound normalisation constant: approximates the maximum expected raw score
/// (reference implementation).
const NORMALIZATION_ALPHA: f64 = 15.0;
/// Longest text analysed; the rest is ignored. A Whisper utterance is at most ~15 s of speech
/// (a few hundred bytes); this leaves room for pasted text without letting a caller make one
/// request cost milliseconds.
pub const MAX_TEXT_BYTES: usize = 8 * 1024;

const NEGATE: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

const BOOSTERS_UP: &[&str] = &[
    "absolutely",
    "amazingly",
    "awfully",
    "completely",
    "considerable",
    "considerably",
    "decidedly",
    "deeply",
    "effing",
    "enormous",
    "enormously",
    "entirely",
    "especially",
    "exceptional",
    "exceptionally",
    "extreme",
    "extremely",
    "fabulously",
    "flipping",
    "flippin",
    "frackin",
    "fracking",
    "fricking",
    "frickin",
    "frigging",
    "friggin",
    "fully",
    "fuckin",
    "fucking",
    "fuggin",
    "fugging",
    "greatly",
    "hella",
    "highly",
    "hugely",
    "incredible",
    "incredibly",
    "intensely",
    "major",
    "majorly",
    "more",
    "most",
    "particularly",
    "purely",
    "quite",
    "really",
    "remarkably",
    "so",
    "substantially",
    "thoroughly",
    "total",
    "totally",
    "tremendous",
    "tremendously",
    "uber",
    "unbelievably",
    "unusually",
    "utter",
    "utterly",
    "very",
];

const BOOSTERS_DOWN: &[&str] = &[
    "almost",
    "barely",
    "hardly",
    "just enough",
    "kind of",
    "kinda",
    "kindof",
    "kind-of",
    "less",
    "little",
    "marginal",
    "marginally",
    "occasional",
    "occasionally",
    "partly",
    "scarce",
    "scarcely",
    "slight",
    "slightly",
    "somewhat",
    "sort of",
    "sorta",
    "sortof",
    "sort-of",
];

/// Idioms whose valence replaces that of the lexicon word inside them (reference implementation).
const SPECIAL_CASES: &[(&str, f64)] = &[
    ("the shit", 3.0),
    ("the bomb", 3.0),
    ("bad ass", 1.5),
    ("badass", 1.5),
    ("bus stop", 0.0),
    ("yeah right", -2.0),
    ("kiss of death", -1.5),
    ("to die for", 3.0),
    ("beating heart", 3.1),
    ("broken heart", -2.9),
];

/// Filled pauses Whisper transcribes in conversational speech; they carry no valence and would
/// otherwise push a negator out of the three-word window.
const DISFLUENCIES: &[&str] = &[
    "um", "umm", "uh", "uhh", "er", "erm", "ah", "hmm", "mm", "mhm",
];

/// Words that open a spoken clause as a discourse marker ("Well, I don't know", "Honestly, it's
/// a lot") rather than as an opinion. The lexicon rates "well" +1.1, "honestly" +2.0, "like" +1.5
/// and "yeah" +1.2, which would make hesitant speech read as positive. They are neutral only when
/// they open a clause and a comma follows, which is how Whisper writes the marker use.
const DISCOURSE_MARKERS: &[&str] = &[
    "well",
    "honestly",
    "like",
    "yeah",
    "ok",
    "okay",
    "right",
    "so",
    "actually",
    "basically",
    "look",
    "listen",
    "anyway",
    "sure",
];

/// A VADER-family sentiment analyser. Build once (the lexicon is ~7 500 entries) and share it.
#[derive(Debug, Clone)]
pub struct Analyzer {
    lexicon: HashMap<&'static str, f64>,
    boosters: HashMap<&'static str, f64>,
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::new()
    }
}

/// One token of the text: the word as written and its lower-case form.
struct Token<'a> {
    raw: &'a str,
    lower: String,
    /// A discourse marker opening a clause ("Well, ...", "Honestly, ..."): no valence of its own.
    marker: bool,
}

impl Analyzer {
    pub fn new() -> Self {
        // The reference implementation looks words up lower-cased in a case-sensitive table, so
        // the handful of upper-case entries (emoticons such as ":D") are never reached; the crate
        // folds case, so keep only lower-case keys to match the reference.
        let lexicon = vader_sentiment::LEXICON
            .iter()
            .filter_map(|(k, v)| {
                let key: &'static str = k.into_inner();
                (!key.chars().any(char::is_uppercase)).then_some((key, *v))
            })
            .collect();
        let boosters = BOOSTERS_UP
            .iter()
            .map(|w| (*w, B_INCR))
            .chain(BOOSTERS_DOWN.iter().map(|w| (*w, B_DECR)))
            .collect();
        Analyzer { lexicon, boosters }
    }

    /// Number of entries in the lexicon (for diagnostics and tests).
    pub fn lexicon_len(&self) -> usize {
        self.lexicon.len()
    }

    /// Valence of a text: `compound` in [-1, 1] and the positive/neutral/negative proportions.
    pub fn polarity(&self, text: &str) -> SentimentScore {
        let text = truncate(text, MAX_TEXT_BYTES);
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return SentimentScore::default();
        }
        let cap_diff = allcap_differential(&tokens);
        let mut sentiments = Vec::with_capacity(tokens.len());
        for i in 0..tokens.len() {
            let w = tokens[i].lower.as_str();
            if self.boosters.contains_key(w)
                || (w == "kind" && tokens.get(i + 1).is_some_and(|n| n.lower == "of"))
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(&tokens, i, cap_diff));
        }
        but_check(&tokens, &mut sentiments);
        score_valence(&sentiments, text)
    }

    fn in_lexicon(&self, w: &str) -> bool {
        self.lexicon.contains_key(w)
    }

    fn valence(&self, tokens: &[Token<'_>], i: usize, cap_diff: bool) -> f64 {
        let item = &tokens[i];
        let Some(&base) = self.lexicon.get(item.lower.as_str()) else {
            return 0.0;
        };
        if item.marker {
            return 0.0;
        }
        let lower = |j: usize| tokens[j].lower.as_str();
        let mut valence = base;
        // "no" right before another lexicon word negates it rather than carrying its own valence.
        if item.lower == "no" && tokens.get(i + 1).is_some_and(|n| self.in_lexicon(&n.lower)) {
            valence = 0.0;
        }
        if (i > 0 && lower(i - 1) == "no")
            || (i > 1 && lower(i - 2) == "no")
            || (i > 2 && lower(i - 3) == "no" && matches!(lower(i - 1), "or" | "nor"))
        {
            valence = base * N_SCALAR;
        }
        if cap_diff && is_shouting(item.raw) {
            valence += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        for start_i in 0..3 {
            if i > start_i && !self.in_lexicon(lower(i - start_i - 1)) {
                let mut s = self.scalar_inc_dec(&tokens[i - start_i - 1], valence, cap_diff);
                if start_i == 1 {
                    s *= 0.95;
                } else if start_i == 2 {
                    s *= 0.9;
                }
                valence += s;
                valence = negation_check(valence, tokens, start_i, i);
                if start_i == 2 {
                    valence = self.special_idioms_check(valence, tokens, i);
                }
            }
        }
        self.least_check(valence, tokens, i)
    }

    fn scalar_inc_dec(&self, token: &Token<'_>, valence: f64, cap_diff: bool) -> f64 {
        let Some(&b) = self.boosters.get(token.lower.as_str()) else {
            return 0.0;
        };
        let mut scalar = if valence < 0.0 { -b } else { b };
        if cap_diff && is_shouting(token.raw) {
            scalar += if valence > 0.0 { C_INCR } else { -C_INCR };
        }
        scalar
    }

    fn special_idioms_check(&self, valence: f64, t: &[Token<'_>], i: usize) -> f64 {
        let l = |j: usize| t[j].lower.as_str();
        let mut valence = valence;
        let one_zero = format!("{} {}", l(i - 1), l(i));
        let two_one_zero = format!("{} {} {}", l(i - 2), l(i - 1), l(i));
        let two_one = format!("{} {}", l(i - 2), l(i - 1));
        let three_two_one = format!("{} {} {}", l(i - 3), l(i - 2), l(i - 1));
        let three_two = format!("{} {}", l(i - 3), l(i - 2));
        for seq in [
            &one_zero,
            &two_one_zero,
            &two_one,
            &three_two_one,
            &three_two,
        ] {
            if let Some(v) = special_case(seq) {
                valence = v;
                break;
            }
        }
        if t.len() > i + 1 {
            if let Some(v) = special_case(&format!("{} {}", l(i), l(i + 1))) {
                valence = v;
            }
        }
        if t.len() > i + 2 {
            if let Some(v) = special_case(&format!("{} {} {}", l(i), l(i + 1), l(i + 2))) {
                valence = v;
            }
        }
        // Multi-word dampeners such as "kind of" and "sort of".
        for n_gram in [&three_two_one, &three_two, &two_one] {
            if let Some(b) = self.boosters.get(n_gram.as_str()) {
                valence += b;
            }
        }
        valence
    }

    fn least_check(&self, valence: f64, t: &[Token<'_>], i: usize) -> f64 {
        if i > 0 && t[i - 1].lower == "least" && !self.in_lexicon("least") {
            // "least good" negates; "at least good" and "very least" do not.
            if i > 1 && matches!(t[i - 2].lower.as_str(), "at" | "very") {
                return valence;
            }
            return valence * N_SCALAR;
        }
        valence
    }
}

fn special_case(seq: &str) -> Option<f64> {
    SPECIAL_CASES
        .iter()
        .find(|(k, _)| *k == seq)
        .map(|(_, v)| *v)
}

fn negated(word: &str) -> bool {
    NEGATE.contains(&word) || word.contains("n't")
}

fn negation_check(valence: f64, t: &[Token<'_>], start_i: usize, i: usize) -> f64 {
    let l = |j: usize| t[j].lower.as_str();
    let so_or_this = |w: &str| w == "so" || w == "this";
    match start_i {
        0 if negated(l(i - 1)) => valence * N_SCALAR,
        1 => {
            if l(i - 2) == "never" && so_or_this(l(i - 1)) {
                valence * 1.25
            } else if l(i - 2) == "without" && l(i - 1) == "doubt" {
                valence
            } else if negated(l(i - 2)) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            if l(i - 3) == "never" && (so_or_this(l(i - 2)) || so_or_this(l(i - 1))) {
                valence * 1.25
            } else if l(i - 3) == "without" && (l(i - 2) == "doubt" || l(i - 1) == "doubt") {
                valence
            } else if negated(l(i - 3)) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

/// "but" halves what came before it and weights what follows by 1.5 (first "but" only, as in the
/// reference implementation).
fn but_check(t: &[Token<'_>], sentiments: &mut [f64]) {
    if let Some(bi) = t.iter().position(|w| w.lower == "but") {
        for (si, s) in sentiments.iter_mut().enumerate() {
            if si < bi {
                *s *= 0.5;
            } else if si > bi {
                *s *= 1.5;
            }
        }
    }
}

fn punctuation_emphasis(text: &str) -> f64 {
    let ep = text.bytes().filter(|b| *b == b'!').count().min(MAX_EMARK) as f64 * EMARK_INCR;
    let qm_count = text.bytes().filter(|b| *b == b'?').count();
    let qm = match qm_count {
        0 | 1 => 0.0,
        2 | 3 => qm_count as f64 * QMARK_INCR,
        _ => MAX_QMARK_INCR,
    };
    ep + qm
}

fn normalize(score: f64) -> f64 {
    (score / (score * score + NORMALIZATION_ALPHA).sqrt()).clamp(-1.0, 1.0)
}

fn score_valence(sentiments: &[f64], text: &str) -> SentimentScore {
    if sentiments.is_empty() {
        return SentimentScore::default();
    }
    let punct = punctuation_emphasis(text);
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += punct;
    } else if sum < 0.0 {
        sum -= punct;
    }
    let compound = normalize(sum);
    // Each sentiment word counts one more than its valence so that neutral words (counted 1)
    // are on the same scale (reference implementation).
    let (mut pos, mut neg, mut neu) = (0.0f64, 0.0f64, 0.0f64);
    for &s in sentiments {
        if s > 0.0 {
            pos += s + 1.0;
        } else if s < 0.0 {
            neg += s - 1.0;
        } else {
            neu += 1.0;
        }
    }
    if pos > neg.abs() {
        pos += punct;
    } else if pos < neg.abs() {
        neg -= punct;
    }
    let total = pos + neg.abs() + neu;
    if total <= 0.0 {
        return SentimentScore::default();
    }
    SentimentScore {
        compound: compound as f32,
        positive: (pos / total).abs() as f32,
        neutral: (neu / total).abs() as f32,
        negative: (neg / total).abs() as f32,
    }
}

/// Whitespace tokens with leading/trailing ASCII punctuation removed, unless that would leave two
/// characters or fewer (which keeps emoticons such as ":)"), disfluencies dropped, and discourse
/// markers flagged.
fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut clause_start = true;
    for w in text.split_whitespace() {
        let stripped = w.trim_matches(|c: char| c.is_ascii_punctuation());
        let raw = if stripped.chars().count() <= 2 {
            w
        } else {
            stripped
        };
        let lower = raw.to_lowercase();
        let bare = lower.trim_matches(|c: char| c.is_ascii_punctuation());
        let comma_after = w.ends_with(',');
        let ends_clause = w.ends_with(['.', ',', ';', ':', '!', '?']);
        if DISFLUENCIES.contains(&bare) {
            clause_start |= ends_clause;
            continue;
        }
        let marker = clause_start && comma_after && DISCOURSE_MARKERS.contains(&bare);
        tokens.push(Token { raw, lower, marker });
        clause_start = ends_clause;
    }
    tokens
}

/// Python's `str.isupper()`: at least one cased character and no lower-case one.
fn is_upper(s: &str) -> bool {
    s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase)
}

/// An all-caps word long enough to be shouting rather than an initialism ("OK", "TV").
fn is_shouting(s: &str) -> bool {
    is_upper(s) && s.chars().filter(|c| c.is_alphabetic()).count() > 2
}

/// Whether some but not all tokens are in capitals (emphasis only means something then).
fn allcap_differential(tokens: &[Token<'_>]) -> bool {
    let caps = tokens.iter().filter(|t| is_upper(t.raw)).count();
    caps > 0 && caps < tokens.len()
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
