//! English transcript normalisation and word error rate, for `eval-asr`.
//!
//! Normalisation (applied to reference and hypothesis alike): lower case; `mr`/`mrs`/`dr`
//! spelled out; hyphens, slashes and punctuation become word breaks, apostrophes vanish
//! ("don't" → "dont"); digits are spelled out in words — four-digit numbers 1100–1999 as years
//! ("1462" → "fourteen sixty two", the way LJ Speech spells them), others as cardinals,
//! with ordinal suffixes ("15th" → "fifteenth"), `%` → "percent" and thousands separators
//! dropped — so "10 of clubs" and "ten of clubs" agree.

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// Cardinal words for `n` ("one hundred twenty three").
pub fn cardinal(n: u64) -> String {
    fn below_1000(n: u64, out: &mut Vec<String>) {
        if n >= 100 {
            out.push(ONES[(n / 100) as usize].to_owned());
            out.push("hundred".into());
        }
        let r = n % 100;
        if r >= 20 {
            out.push(TENS[(r / 10) as usize].to_owned());
            if r % 10 != 0 {
                out.push(ONES[(r % 10) as usize].to_owned());
            }
        } else if r > 0 || n == 0 {
            out.push(ONES[r as usize].to_owned());
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let mut out = Vec::new();
    let scales = [
        (1_000_000_000_000, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ];
    let mut rest = n;
    for (value, name) in scales {
        if rest >= value {
            below_1000((rest / value).min(999), &mut out);
            out.push(name.into());
            rest %= value;
        }
    }
    if rest > 0 {
        below_1000(rest, &mut out);
    }
    out.join(" ")
}

/// Year reading of 1100–1999: "fourteen sixty two", "nineteen hundred", "fourteen oh five".
fn year(n: u64) -> String {
    let (hi, lo) = (n / 100, n % 100);
    match lo {
        0 => format!("{} hundred", cardinal(hi)),
        1..=9 => format!("{} oh {}", cardinal(hi), cardinal(lo)),
        _ => format!("{} {}", cardinal(hi), cardinal(lo)),
    }
}

fn ordinal(words: &str) -> String {
    let (head, last) = match words.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l),
        None => (String::new(), words),
    };
    let last = match last {
        "one" => "first".to_owned(),
        "two" => "second".to_owned(),
        "three" => "third".to_owned(),
        "five" => "fifth".to_owned(),
        "eight" => "eighth".to_owned(),
        "nine" => "ninth".to_owned(),
        "twelve" => "twelfth".to_owned(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// Spells one token that contains digits; anything unparseable is returned unchanged.
fn spell_number(tok: &str) -> String {
    let digits: String = tok.chars().filter(|c| c.is_ascii_digit()).collect();
    let suffix: String = tok.chars().skip_while(|c| c.is_ascii_digit()).collect();
    let Ok(n) = digits.parse::<u64>() else {
        return tok.to_owned();
    };
    let words = if (1100..2000).contains(&n) && suffix.is_empty() && digits.len() == 4 {
        year(n)
    } else {
        cardinal(n)
    };
    match suffix.as_str() {
        "" => words,
        "st" | "nd" | "rd" | "th" => ordinal(&words),
        "s" => format!("{words}s"),
        _ => format!("{words} {suffix}"),
    }
}

/// Normalises a transcript to lower-case words (see the module doc).
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    // Keep digit groups together ("1,000", "3.5"), then break on everything else.
    let mut cleaned = String::with_capacity(lower.len());
    let chars: Vec<char> = lower.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = |i: usize| {
            i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_ascii_digit()
                && chars[i + 1].is_ascii_digit()
        };
        match c {
            ',' if between_digits(i) => {}
            '.' if between_digits(i) => cleaned.push_str(" point "),
            '%' => cleaned.push_str(" percent "),
            '\'' | '’' => {}
            c if c.is_alphanumeric() => cleaned.push(c),
            _ => cleaned.push(' '),
        }
    }
    let mut out = Vec::new();
    for w in cleaned.split_whitespace() {
        let w = match w {
            "mr" => "mister",
            "mrs" => "missus",
            "dr" => "doctor",
            w => w,
        };
        if w.starts_with(|c: char| c.is_ascii_digit()) {
            out.extend(spell_number(w).split_whitespace().map(str::to_owned));
        } else {
            out.push(w.to_owned());
        }
    }
    out
}

/// Word-level edit distance (substitutions + deletions + insertions).
pub fn edit_distance(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut cur = vec![0; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[hypothesis.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s).join(" ")
    }

    #[test]
    fn case_punctuation_and_abbreviations() {
        assert_eq!(
            n("Printing, then, for our purpose;"),
            "printing then for our purpose"
        );
        assert_eq!(n("the \"lower-case\" letters"), "the lower case letters");
        assert_eq!(n("Mr. Dashwood doesn't"), "mister dashwood doesnt");
    }

    #[test]
    fn numbers_are_spelled_like_the_references() {
        assert_eq!(n("in the year 1462)"), n("in the year fourteen sixty-two)"));
        assert_eq!(n("10 of clubs"), "ten of clubs");
        assert_eq!(n("the 15th century"), "the fifteenth century");
        assert_eq!(n("42-line Bible"), "forty two line bible");
        assert_eq!(n("1,000 copies"), "one thousand copies");
        assert_eq!(n("3.5%"), "three point five percent");
        assert_eq!(n("1900"), "nineteen hundred");
        assert_eq!(n("2024"), "two thousand twenty four");
        assert_eq!(n("the 20th and 21st"), "the twentieth and twenty first");
    }

    #[test]
    fn edit_distance_counts_word_edits() {
        let w = |s: &str| normalize(s);
        assert_eq!(edit_distance(&w("a b c"), &w("a b c")), 0);
        assert_eq!(edit_distance(&w("a b c"), &w("a x c")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("a c")), 1);
        assert_eq!(edit_distance(&w("a b c"), &w("a b c d e")), 2);
        assert_eq!(edit_distance(&w(""), &w("a b")), 2);
    }
}
