//! PII redaction applied to every transcript before it is stored or fanned out.
//!
//! [`redact`] replaces payment card numbers (13–19 digits, Luhn-checked), US social security
//! numbers, phone numbers (US and E.164 forms) and email addresses with `[card]`, `[ssn]`,
//! `[phone]` and `[email]`. Text without PII comes back borrowed, so the common case costs one
//! scan and no allocation.
//!
//! Layout: emails are found with a regular expression (written and spoken forms: Whisper writes
//! "john dot smith at gmail dot com" as often as the address itself); numbers with a small lexer
//! that groups digit runs and spoken digit words ("five five five, one two three ...") into
//! candidate runs, then classifies every contiguous sub-run of groups, longest first:
//!
//! * written digits are judged by their shape (3-2-4 for an SSN, 3-3-4 or `+` and 8–15 digits for
//!   a phone, 13–19 digits with single space or dash separators and a valid Luhn check digit for
//!   a card), so dates (`2024-01-15`, `12/25/2024`), times, prices (`$1,299.99`), zip codes
//!   (`90210-1234`) and order numbers that fail Luhn survive;
//! * spoken digits carry no reliable grouping, so they are judged by digit count alone (9 → SSN,
//!   10 or 1+10 → phone, 13–19 with Luhn → card). Counting like this is what keeps the spoken
//!   form safe: "oh", "one" and "two" are everyday words, but nine of them in a row are not.
//!
//! The policy leans towards redacting: a bare 10-digit NANP-shaped number is taken for a phone
//! number even without separators, because a leaked number costs more than a masked order id.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// What a redacted span was; its placeholder is `[<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Card,
    Ssn,
    Phone,
    Email,
}

impl PiiKind {
    pub const fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Card => "[card]",
            PiiKind::Ssn => "[ssn]",
            PiiKind::Phone => "[phone]",
            PiiKind::Email => "[email]",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            PiiKind::Card => "card",
            PiiKind::Ssn => "ssn",
            PiiKind::Phone => "phone",
            PiiKind::Email => "email",
        }
    }
}

static REDACTIONS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    crate::metrics::counter_vec(
        "callcoach_redact_matches_total",
        "PII spans replaced in transcripts before storage and fan-out, by kind",
        &["kind"],
    )
});

/// Written addresses. The local part and domain follow RFC 5322's common subset; a TLD of two
/// or more letters keeps "a@b" fragments (chat handles, "meet @ 5") out.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    // unwrap: a constant pattern, exercised by the unit tests.
    Regex::new(r"(?i)\b[a-z0-9][a-z0-9._%+\-]*@[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*\.[a-z]{2,24}\b")
        .expect("valid email pattern")
});

/// Spoken addresses as Whisper writes them: "jane dot doe at acme dot com". The TLD list is
/// closed on purpose (the common generic and US ones): an open word there would turn "see you at
/// home dot" phrases into matches.
static SPOKEN_EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    // unwrap: a constant pattern, exercised by the unit tests.
    Regex::new(
        r"(?i)\b[a-z0-9][a-z0-9_\-]*(?:\s+(?:dot|underscore|dash)\s+[a-z0-9][a-z0-9_\-]*)*\s+at\s+[a-z0-9][a-z0-9\-]*(?:\s+dot\s+[a-z0-9][a-z0-9\-]*)*\s+dot\s+(?:com|net|org|edu|gov|io|co|us|biz|info|me)\b",
    )
    .expect("valid spoken email pattern")
});

/// Most characters allowed between two digit groups of one number ("), " is the longest a
/// written phone number needs: `(555) 123-4567`).
const MAX_SEPARATOR_LEN: usize = 3;

/// Longest run of groups considered at once. 19 card digits spoken one word each is the longest
/// real case; the cap bounds the quadratic sub-run search on adversarial input.
const MAX_RUN_GROUPS: usize = 24;

/// How far back (bytes) a word like "social" or "ssn" makes a bare 9-digit number an SSN.
const SSN_CONTEXT_BYTES: usize = 48;

/// Replaces PII in `text` with placeholders; returns the input borrowed when there is none.
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut spans = Vec::new();
    find_spans(text, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in &spans {
        out.push_str(&text[at..span.start]);
        out.push_str(span.kind.placeholder());
        REDACTIONS.with_label_values(&[span.kind.as_str()]).inc();
        at = span.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

/// One span of PII found in a text (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: PiiKind,
}

/// The PII spans of `text`, sorted and non-overlapping (for callers that want to count or
/// highlight rather than replace).
pub fn find(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    find_spans(text, &mut spans);
    spans
}

fn find_spans(text: &str, spans: &mut Vec<Span>) {
    let mut taken: Vec<Span> = Vec::new();
    for re in [&*EMAIL, &*SPOKEN_EMAIL] {
        for m in re.find_iter(text) {
            push_if_free(
                &mut taken,
                Span {
                    start: m.start(),
                    end: m.end(),
                    kind: PiiKind::Email,
                },
            );
        }
    }
    let mut numbers = Vec::new();
    find_numbers(text, &mut numbers);
    for span in numbers {
        push_if_free(&mut taken, span);
    }
    taken.sort_by_key(|s| s.start);
    spans.extend(taken);
}

fn push_if_free(taken: &mut Vec<Span>, span: Span) {
    if taken
        .iter()
        .all(|t| span.end <= t.start || span.start >= t.end)
    {
        taken.push(span);
    }
}

/// A group of digits inside a candidate number: a written digit run, or one spoken digit word
/// ("double five" is one group of two digits).
#[derive(Debug, Clone)]
struct Group {
    start: usize,
    end: usize,
    digits: Vec<u8>,
    spoken: bool,
    /// Text between the previous group's end and this one's start (empty for the first).
    sep_before: (usize, usize),
}

fn digit_word(word: &str) -> Option<u8> {
    let d = match word.to_ascii_lowercase().as_str() {
        "zero" | "oh" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    };
    Some(d)
}

fn repeat_word(word: &str) -> Option<usize> {
    match word.to_ascii_lowercase().as_str() {
        "double" => Some(2),
        "triple" => Some(3),
        _ => None,
    }
}

fn is_sep_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'-' | b'.' | b',' | b'(' | b')')
}

/// Lexes `text` into runs of digit groups and classifies each run.
fn find_numbers(text: &str, out: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut run: Vec<Group> = Vec::new();
    // End of the last group in `run`, to measure the separator to the next one.
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let glued = (start > 0 && bytes[start - 1].is_ascii_alphabetic())
                || (i < bytes.len() && bytes[i].is_ascii_alphabetic());
            if glued {
                // "4th", "A1234", "10am": part of a word, not a number on its own.
                flush(text, &mut run, out);
                continue;
            }
            let digits = bytes[start..i].iter().map(|d| d - b'0').collect();
            push_group(text, &mut run, out, start, i, digits, false);
        } else if b.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'\'') {
                i += 1;
            }
            let word = &text[start..i];
            if let Some(d) = digit_word(word) {
                push_group(text, &mut run, out, start, i, vec![d], true);
            } else if let Some(times) = repeat_word(word) {
                // "double five": look ahead for the digit word it multiplies.
                let mut j = i;
                while j < bytes.len() && bytes[j] == b' ' {
                    j += 1;
                }
                let next_start = j;
                while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
                    j += 1;
                }
                match digit_word(&text[next_start..j]) {
                    Some(d) if j > next_start => {
                        push_group(text, &mut run, out, start, j, vec![d; times], true);
                        i = j;
                    }
                    _ => flush(text, &mut run, out),
                }
            } else {
                flush(text, &mut run, out);
            }
        } else if is_sep_byte(b) || b == b'+' {
            i += 1;
        } else {
            flush(text, &mut run, out);
            // Step over a whole UTF-8 character.
            i += 1;
            while i < bytes.len() && !text.is_char_boundary(i) {
                i += 1;
            }
        }
    }
    flush(text, &mut run, out);
}

fn push_group(
    text: &str,
    run: &mut Vec<Group>,
    out: &mut Vec<Span>,
    start: usize,
    end: usize,
    digits: Vec<u8>,
    spoken: bool,
) {
    if let Some(last) = run.last() {
        let sep = &text.as_bytes()[last.end..start];
        let joins = sep.len() <= MAX_SEPARATOR_LEN && sep.iter().all(|&b| is_sep_byte(b));
        if !joins || run.len() >= MAX_RUN_GROUPS {
            flush(text, run, out);
        }
    }
    let sep_before = match run.last() {
        Some(last) => (last.end, start),
        None => (start, start),
    };
    run.push(Group {
        start,
        end,
        digits,
        spoken,
        sep_before,
    });
}

/// Classifies the sub-runs of `run`, leftmost first and longest first, and clears it.
fn flush(text: &str, run: &mut Vec<Group>, out: &mut Vec<Span>) {
    let mut i = 0;
    while i < run.len() {
        let mut matched = None;
        for j in (i..run.len()).rev() {
            if let Some(kind) = classify(text, &run[i..=j]) {
                matched = Some((j, kind));
                break;
            }
        }
        match matched {
            Some((j, kind)) => {
                let mut start = run[i].start;
                let bytes = text.as_bytes();
                // Take a leading "+" or "(" with the number so no punctuation dangles.
                if start > 0 && matches!(bytes[start - 1], b'+' | b'(') && kind == PiiKind::Phone {
                    start -= 1;
                }
                out.push(Span {
                    start,
                    end: run[j].end,
                    kind,
                });
                i = j + 1;
            }
            None => i += 1,
        }
    }
    run.clear();
}

fn classify(text: &str, groups: &[Group]) -> Option<PiiKind> {
    let digits: Vec<u8> = groups
        .iter()
        .flat_map(|g| g.digits.iter().copied())
        .collect();
    let n = digits.len();
    let bytes = text.as_bytes();
    let seps: Vec<&str> = groups[1..]
        .iter()
        .map(|g| &text[g.sep_before.0..g.sep_before.1])
        .collect();
    let plus = groups[0].start > 0 && bytes[groups[0].start - 1] == b'+';

    if groups.iter().any(|g| g.spoken) {
        // Spoken (or mixed) digits: judged by count, see the module doc.
        return match n {
            13..=19 if luhn_valid(&digits) => Some(PiiKind::Card),
            9 if ssn_valid(&digits) => Some(PiiKind::Ssn),
            10 => Some(PiiKind::Phone),
            11 if digits[0] == 1 => Some(PiiKind::Phone),
            _ => None,
        };
    }

    let lens: Vec<usize> = groups.iter().map(|g| g.digits.len()).collect();
    let card_seps = seps.iter().all(|s| *s == " " || *s == "-");
    if (13..=19).contains(&n) && card_seps && !plus && luhn_valid(&digits) {
        return Some(PiiKind::Card);
    }
    let ssn_seps = seps.len() == 2 && seps[0] == seps[1] && (seps[0] == "-" || seps[0] == " ");
    if lens == [3, 2, 4] && ssn_seps && ssn_valid(&digits) {
        return Some(PiiKind::Ssn);
    }
    if lens == [9] && ssn_valid(&digits) && ssn_context(text, groups[0].start) {
        return Some(PiiKind::Ssn);
    }
    if plus && (8..=15).contains(&n) && seps.iter().all(|s| phone_sep(s)) {
        return Some(PiiKind::Phone);
    }
    let phone_seps = seps.iter().all(|s| phone_sep(s));
    let nanp = |d: &[u8]| d[0] >= 2;
    match lens.as_slice() {
        [3, 3, 4] if phone_seps && nanp(&digits) => Some(PiiKind::Phone),
        [1, 3, 3, 4] if phone_seps && digits[0] == 1 && nanp(&digits[1..]) => Some(PiiKind::Phone),
        [10] if nanp(&digits) => Some(PiiKind::Phone),
        [11] if digits[0] == 1 && nanp(&digits[1..]) => Some(PiiKind::Phone),
        _ => None,
    }
}

/// Separators a written phone number uses between groups: `-`, `.`, a space, or the `) ` after
/// an area code. Commas are not among them (they separate list items and thousands).
fn phone_sep(s: &str) -> bool {
    matches!(
        s,
        "-" | "." | " " | ") " | ")" | ")-" | ") -" | " - " | " (" | "-("
    )
}

/// The Luhn (mod 10) check every payment card number carries in its last digit.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// SSA rules for issued numbers: area not 000, 666 or 900–999; group not 00; serial not 0000.
fn ssn_valid(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = d[3] * 10 + d[4];
    let serial = d[5..].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn ssn_context(text: &str, at: usize) -> bool {
    let mut from = at.saturating_sub(SSN_CONTEXT_BYTES);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let before = text[from..at].to_ascii_lowercase();
    ["social", "ssn", "security number"]
        .iter()
        .any(|k| before.contains(k))
}

#[cfg(test)]
mod tests;
