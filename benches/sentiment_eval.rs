//! Scores the sentiment analyser against VADER's human-rated sentences (Hutto & Gilbert, ICWSM
//! 2014): Pearson r between the compound score and the mean human rating, and sign accuracy on
//! the sentences raters agree are not neutral (|mean| >= 0.5), per file, next to the paper's
//! figures and to the `vader_sentiment` crate's own rules on the same lexicon.
//!
//! `cargo bench --bench sentiment_eval` — data from `$CALLCOACH_SENTIMENT_DATA` (a directory of
//! `*_GroundTruth.txt` files or one file), else `../shared/data/sentiment` beside the repo.

use callcoach_actors::sentiment::Analyzer;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Correlation with the human mean reported by the paper (Hutto & Gilbert 2014, Table 4, VADER
/// row). Only the tweets figure (r = 0.881) is quoted in the paper's text as well.
const PAPER_R: &[(&str, f64)] = &[
    ("tweets", 0.881),
    ("movieReview", 0.451),
    ("amazonReview", 0.565),
    ("nytEditorial", 0.492),
];

/// Ratings in the files run from -4 to +4; raters' means within ±0.5 of zero are treated as
/// neutral and left out of the sign accuracy.
const NON_NEUTRAL: f64 = 0.5;

struct Row {
    human: f64,
    text: String,
}

fn load(path: &Path) -> std::io::Result<Vec<Row>> {
    // The files are mostly UTF-8 with a few Latin-1 bytes; a lossy read keeps every line.
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            let _id = parts.next()?;
            let human: f64 = parts.next()?.trim().parse().ok()?;
            let text = parts.next()?.to_string();
            Some(Row { human, text })
        })
        .collect())
}

fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    sxy / (sxx * syy).sqrt()
}

fn sign_accuracy(human: &[f64], predicted: &[f64]) -> (f64, usize) {
    let (mut right, mut n) = (0usize, 0usize);
    for (h, p) in human.iter().zip(predicted) {
        if h.abs() >= NON_NEUTRAL {
            n += 1;
            // A zero score is neither sign: counted wrong.
            if (*h > 0.0 && *p > 0.0) || (*h < 0.0 && *p < 0.0) {
                right += 1;
            }
        }
    }
    (right as f64 / n.max(1) as f64, n)
}

fn files(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with("_GroundTruth.txt"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let root = std::env::var_os("CALLCOACH_SENTIMENT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sentiment"));
    let paths = files(&root);
    if paths.is_empty() {
        eprintln!(
            "no *_GroundTruth.txt under {} (set CALLCOACH_SENTIMENT_DATA)",
            root.display()
        );
        std::process::exit(2);
    }
    let ours = Analyzer::new();
    let crate_rules = vader_sentiment::SentimentIntensityAnalyzer::new();
    println!(
        "{:<40} {:>6} {:>8} {:>8} {:>8} {:>6} {:>9} {:>9} {:>8}",
        "file", "n", "r ours", "r crate", "r paper", "n sign", "sign ours", "sign crt", "µs/text"
    );
    for path in paths {
        let rows = match load(&path) {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                continue;
            }
        };
        let human: Vec<f64> = rows.iter().map(|r| r.human).collect();
        let t0 = Instant::now();
        let ours_scores: Vec<f64> = rows
            .iter()
            .map(|r| f64::from(ours.polarity(&r.text).compound))
            .collect();
        let per_text_us = t0.elapsed().as_secs_f64() * 1e6 / rows.len() as f64;
        let crate_scores: Vec<f64> = rows
            .iter()
            .map(|r| crate_rules.polarity_scores(&r.text)["compound"])
            .collect();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let paper = PAPER_R
            .iter()
            .find(|(k, _)| name.starts_with(k))
            .map_or("-".to_string(), |(_, r)| format!("{r:.3}"));
        let (acc, n_sign) = sign_accuracy(&human, &ours_scores);
        let (acc_crate, _) = sign_accuracy(&human, &crate_scores);
        println!(
            "{:<40} {:>6} {:>8.3} {:>8.3} {:>8} {:>6} {:>8.1}% {:>8.1}% {:>8.1}",
            name,
            rows.len(),
            pearson(&ours_scores, &human),
            pearson(&crate_scores, &human),
            paper,
            n_sign,
            acc * 100.0,
            acc_crate * 100.0,
            per_text_us
        );
    }
    println!("sign accuracy over sentences with |human mean| >= {NON_NEUTRAL}; a zero score counts as wrong");
}
