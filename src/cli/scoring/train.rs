//! Encoding a table into a design matrix, fitting linfa's logistic regression and evaluating it.

use super::csv::Table;
use callcoach_actors::scorer::eval::{roc_auc, stratified_split};
use callcoach_actors::scorer::{sigmoid, FeatureWeight, Weights, WEIGHTS_FORMAT};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, Axis};
use serde::Serialize;

/// A text column with more distinct values than this is taken for an identifier or free text
/// and skipped: one-hot encoding it would add a feature per row and learn nothing general.
pub const MAX_LEVELS: usize = 64;

/// Fewest rows of each class in the training part; below this a held-out AUC means nothing.
pub const MIN_ROWS_PER_CLASS: usize = 10;

/// Values read as "no value" in numeric columns (filled with the training mean).
const MISSING: &[&str] = &["", "na", "n/a", "nan", "null", "none", "?"];

/// Target values taken as the positive (won) class when `--positive` is not given.
const POSITIVE_NAMES: &[&str] = &["yes", "y", "1", "true", "won", "win", "converted"];

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    #[error("no column named `{0}`")]
    UnknownColumn(String),
    #[error("target `{column}` must have exactly two values, found {found:?}")]
    TargetValues { column: String, found: Vec<String> },
    #[error("cannot tell which target value is the positive class among {0:?}; pass --positive")]
    AmbiguousPositive(Vec<String>),
    #[error("no usable feature columns")]
    NoFeatures,
    #[error("too few rows: {0}")]
    TooFewRows(String),
    #[error("invalid option: {0}")]
    BadOption(String),
    #[error("fit failed: {0}")]
    Fit(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    pub positive: Option<String>,
    pub features: Vec<String>,
    pub exclude: Vec<String>,
    pub test_fraction: f64,
    pub seed: u64,
    pub alpha: f64,
    pub max_iterations: u64,
}

/// What a training run did and how well the model ranks held-out rows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub positive: String,
    pub rows: usize,
    pub positives: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    /// Source columns used.
    pub columns: Vec<String>,
    pub excluded: Vec<String>,
    /// Columns dropped, with why.
    pub skipped: Vec<(String, String)>,
    /// Encoded features (after one-hot).
    pub features: usize,
    pub seed: u64,
    pub test_fraction: f64,
    pub alpha: f64,
    pub auc_test: f64,
    pub auc_train: f64,
    /// Features by |standardised weight|, strongest first.
    pub top_features: Vec<(String, f64)>,
}

/// A fitted model in raw units.
#[derive(Debug, Clone)]
pub struct Trained {
    pub names: Vec<String>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Log-odds per standard deviation of each feature (comparable across features).
    pub std_weights: Vec<f64>,
    /// The fitted model on standardised features: intercept, training means and deviations.
    pub std_intercept: f64,
    pub mean: Vec<f64>,
    pub sd: Vec<f64>,
    pub report: Report,
}

impl Trained {
    /// Log-odds of one encoded row.
    pub fn log_odds(&self, x: &[f64]) -> f64 {
        self.intercept + x.iter().zip(&self.weights).map(|(a, w)| a * w).sum::<f64>()
    }

    pub fn to_weights(&self, source: &str, opts: &Options) -> Weights {
        Weights {
            format: WEIGHTS_FORMAT.to_owned(),
            description: Some(format!(
                "trained by `callcoach scoring train` on {source}: target {}={}, held-out ROC AUC {:.4}",
                opts.target, self.report.positive, self.report.auc_test
            )),
            intercept: self.intercept,
            features: self
                .names
                .iter()
                .zip(&self.weights)
                .zip(&self.std_weights)
                .map(|((name, &weight), sw)| FeatureWeight {
                    name: name.clone(),
                    weight,
                    note: Some(format!("{sw:+.4} log-odds per standard deviation")),
                })
                .collect(),
            thresholds: None,
            provenance: serde_json::to_value(&self.report).ok(),
        }
    }
}

/// How one source column becomes features.
#[derive(Debug, Clone)]
enum Column {
    Numeric {
        col: usize,
        name: String,
    },
    OneHot {
        col: usize,
        name: String,
        levels: Vec<String>,
    },
}

fn is_missing(v: &str) -> bool {
    MISSING.contains(&v.trim().to_ascii_lowercase().as_str())
}

fn parse_num(v: &str) -> Option<f64> {
    v.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Fits and evaluates; see the module doc of `cli::scoring` for the method.
pub fn train(table: &Table, opts: &Options) -> Result<Trained, TrainError> {
    if !(opts.test_fraction > 0.0 && opts.test_fraction < 1.0) {
        return Err(TrainError::BadOption(
            "test fraction must be between 0 and 1".into(),
        ));
    }
    if !(opts.alpha.is_finite() && opts.alpha >= 0.0) {
        return Err(TrainError::BadOption(
            "alpha must be a non-negative number".into(),
        ));
    }
    let target_col = table
        .column(&opts.target)
        .ok_or_else(|| TrainError::UnknownColumn(opts.target.clone()))?;
    for name in opts.features.iter().chain(&opts.exclude) {
        if table.column(name).is_none() && !opts.exclude.contains(name) {
            return Err(TrainError::UnknownColumn(name.clone()));
        }
    }

    // Target.
    let norm = |v: &str| v.trim().to_ascii_lowercase();
    let mut values: Vec<String> = table.rows.iter().map(|r| norm(&r[target_col])).collect();
    values.sort();
    values.dedup();
    if values.len() != 2 {
        return Err(TrainError::TargetValues {
            column: opts.target.clone(),
            found: values.into_iter().take(5).collect(),
        });
    }
    let positive = match &opts.positive {
        Some(p) if values.contains(&norm(p)) => norm(p),
        Some(p) => {
            return Err(TrainError::BadOption(format!(
                "--positive {p} is not a target value"
            )))
        }
        None => values
            .iter()
            .find(|v| POSITIVE_NAMES.contains(&v.as_str()))
            .cloned()
            .ok_or_else(|| TrainError::AmbiguousPositive(values.clone()))?,
    };
    let labels: Vec<bool> = table
        .rows
        .iter()
        .map(|r| norm(&r[target_col]) == positive)
        .collect();

    // Columns.
    let mut skipped = Vec::new();
    let mut columns = Vec::new();
    for (col, name) in table.header.iter().enumerate() {
        let chosen = if opts.features.is_empty() {
            col != target_col && !opts.exclude.contains(name)
        } else {
            opts.features.contains(name) && !opts.exclude.contains(name)
        };
        if !chosen || col == target_col {
            continue;
        }
        let present: Vec<&str> = table
            .rows
            .iter()
            .map(|r| r[col].as_str())
            .filter(|v| !is_missing(v))
            .collect();
        if present.is_empty() {
            skipped.push((name.clone(), "no values".to_owned()));
        } else if present.iter().all(|v| parse_num(v).is_some()) {
            columns.push(Column::Numeric {
                col,
                name: name.clone(),
            });
        } else {
            let mut levels: Vec<String> = table
                .rows
                .iter()
                .map(|r| r[col].trim().to_owned())
                .collect();
            levels.sort();
            levels.dedup();
            if levels.len() > MAX_LEVELS {
                skipped.push((
                    name.clone(),
                    format!("{} distinct text values", levels.len()),
                ));
            } else {
                columns.push(Column::OneHot {
                    col,
                    name: name.clone(),
                    levels,
                });
            }
        }
    }
    if columns.is_empty() {
        return Err(TrainError::NoFeatures);
    }

    // Split first, so fill values and scaling come from training rows only.
    let (train_idx, test_idx) = stratified_split(&labels, opts.test_fraction, opts.seed);
    for (part, idx) in [("training", &train_idx), ("held-out", &test_idx)] {
        let pos = idx.iter().filter(|&&i| labels[i]).count();
        if pos < MIN_ROWS_PER_CLASS || idx.len() - pos < MIN_ROWS_PER_CLASS {
            return Err(TrainError::TooFewRows(format!(
                "the {part} part has {pos} positive and {} negative rows (need {MIN_ROWS_PER_CLASS} of each)",
                idx.len() - pos
            )));
        }
    }

    let mut names = Vec::new();
    for c in &columns {
        match c {
            Column::Numeric { name, .. } => names.push(name.clone()),
            Column::OneHot { name, levels, .. } => {
                names.extend(levels.iter().map(|l| format!("{name}={l}")));
            }
        }
    }
    let p = names.len();
    let n = table.rows.len();
    let mut x = Array2::<f64>::zeros((n, p));
    let mut j = 0;
    for c in &columns {
        match c {
            Column::Numeric { col, .. } => {
                let train_vals: Vec<f64> = train_idx
                    .iter()
                    .filter_map(|&i| parse_num(&table.rows[i][*col]))
                    .collect();
                let fill = if train_vals.is_empty() {
                    0.0
                } else {
                    train_vals.iter().sum::<f64>() / train_vals.len() as f64
                };
                for (i, row) in table.rows.iter().enumerate() {
                    x[[i, j]] = parse_num(&row[*col]).unwrap_or(fill);
                }
                j += 1;
            }
            Column::OneHot { col, levels, .. } => {
                for (i, row) in table.rows.iter().enumerate() {
                    if let Ok(k) = levels.binary_search(&row[*col].trim().to_owned()) {
                        x[[i, j + k]] = 1.0;
                    }
                }
                j += levels.len();
            }
        }
    }

    // Standardise with training statistics; drop features constant on the training rows.
    let x_train_raw = x.select(Axis(0), &train_idx);
    let mean = x_train_raw
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array1::zeros(p));
    let sd = x_train_raw.std_axis(Axis(0), 0.0);
    let keep: Vec<usize> = (0..p).filter(|&k| sd[k] > 1e-12).collect();
    for k in (0..p).filter(|k| !keep.contains(k)) {
        skipped.push((names[k].clone(), "constant on the training rows".to_owned()));
    }
    if keep.is_empty() {
        return Err(TrainError::NoFeatures);
    }
    let names: Vec<String> = keep.iter().map(|&k| names[k].clone()).collect();
    let mean = mean.select(Axis(0), &keep);
    let sd = sd.select(Axis(0), &keep);
    let x = x.select(Axis(1), &keep);
    let z = (&x - &mean) / &sd;

    let z_train = z.select(Axis(0), &train_idx);
    let y_train: Array1<bool> = train_idx.iter().map(|&i| labels[i]).collect();
    let data = Dataset::new(z_train, y_train);
    let model = LogisticRegression::default()
        .alpha(opts.alpha)
        .max_iterations(opts.max_iterations)
        .fit(&data)
        .map_err(|e| TrainError::Fit(e.to_string()))?;
    // linfa's "positive" class is one of the two labels by its own rule: orient to ours.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    let std_weights: Vec<f64> = model.params().iter().map(|w| sign * w).collect();
    let std_intercept = sign * model.intercept();

    let predict = |idx: &[usize]| -> Vec<f64> {
        idx.iter()
            .map(|&i| {
                let zl = std_intercept
                    + z.row(i)
                        .iter()
                        .zip(&std_weights)
                        .map(|(a, w)| a * w)
                        .sum::<f64>();
                sigmoid(zl)
            })
            .collect()
    };
    let auc = |idx: &[usize]| {
        let labels: Vec<bool> = idx.iter().map(|&i| labels[i]).collect();
        roc_auc(&predict(idx), &labels).unwrap_or(f64::NAN)
    };
    let auc_test = auc(&test_idx);
    let auc_train = auc(&train_idx);

    // Back to raw units: w·(x−μ)/σ + b = (w/σ)·x + (b − Σ w·μ/σ).
    let weights: Vec<f64> = std_weights
        .iter()
        .zip(sd.iter())
        .map(|(w, s)| w / s)
        .collect();
    let intercept = std_intercept
        - std_weights
            .iter()
            .zip(mean.iter().zip(sd.iter()))
            .map(|(w, (m, s))| w * m / s)
            .sum::<f64>();

    let mut top: Vec<(String, f64)> = names
        .iter()
        .cloned()
        .zip(std_weights.iter().copied())
        .collect();
    top.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));

    let report = Report {
        target: opts.target.clone(),
        positive,
        rows: n,
        positives: labels.iter().filter(|&&l| l).count(),
        train_rows: train_idx.len(),
        test_rows: test_idx.len(),
        columns: columns
            .iter()
            .map(|c| match c {
                Column::Numeric { name, .. } | Column::OneHot { name, .. } => name.clone(),
            })
            .collect(),
        excluded: opts.exclude.clone(),
        skipped,
        features: names.len(),
        seed: opts.seed,
        test_fraction: opts.test_fraction,
        alpha: opts.alpha,
        auc_test,
        auc_train,
        top_features: top,
    };
    Ok(Trained {
        names,
        weights,
        intercept,
        std_weights,
        std_intercept,
        mean: mean.to_vec(),
        sd: sd.to_vec(),
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use callcoach_actors::scorer::eval::SplitMix64;
    use callcoach_actors::scorer::Scorer;

    fn opts(target: &str) -> Options {
        Options {
            target: target.into(),
            positive: None,
            features: vec![],
            exclude: vec![],
            test_fraction: 0.25,
            seed: 1,
            alpha: 1.0,
            max_iterations: 300,
        }
    }

    /// Rows drawn from a known logistic model over scorer feature names, so the fit can be
    /// checked against the truth and the output loaded by the live scorer.
    fn synthetic(n: usize, seed: u64) -> Table {
        let mut rng = SplitMix64::new(seed);
        let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let sources = ["referral", "cold_list", "other"];
        let mut rows = Vec::new();
        for _ in 0..n {
            let sentiment = unit() * 2.0 - 1.0;
            let buying = (unit() * 2.0).floor();
            let noise = unit() * 10.0;
            let src = sources[(unit() * 3.0) as usize % 3];
            let src_w = match src {
                "referral" => 1.0,
                "cold_list" => -1.0,
                _ => 0.0,
            };
            let z = -0.5 + 2.0 * sentiment + 1.0 * buying + src_w;
            let won = unit() < sigmoid(z);
            rows.push(vec![
                format!("{sentiment:.4}"),
                format!("{buying}"),
                format!("{noise:.3}"),
                src.to_owned(),
                if won { "won" } else { "lost" }.to_owned(),
            ]);
        }
        Table {
            header: [
                "sentiment_level",
                "buying_signals",
                "noise",
                "source",
                "outcome",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }
    }

    #[test]
    fn recovers_a_known_model_and_its_weights_load_into_the_scorer() {
        let table = synthetic(4000, 3);
        let mut o = opts("outcome");
        o.alpha = 0.1;
        let t = train(&table, &o).unwrap();
        assert!(t.report.auc_test > 0.75, "auc {}", t.report.auc_test);
        let w = |name: &str| t.weights[t.names.iter().position(|n| n == name).unwrap()];
        assert!(
            (w("sentiment_level") - 2.0).abs() < 0.4,
            "{}",
            w("sentiment_level")
        );
        assert!(
            (w("buying_signals") - 1.0).abs() < 0.3,
            "{}",
            w("buying_signals")
        );
        assert!(w("noise").abs() < 0.1, "{}", w("noise"));
        // One-hot levels keep their differences (the shared offset goes to the intercept).
        let ref_minus_cold = w("source=referral") - w("source=cold_list");
        assert!((ref_minus_cold - 2.0).abs() < 0.5, "{ref_minus_cold}");

        let mut ws = t.to_weights("synthetic.csv", &o);
        assert!(Scorer::new(&ws).is_err(), "`noise` is not a scorer feature");
        ws.features.retain(|f| f.name != "noise");
        assert!(Scorer::new(&ws).is_ok());
    }

    #[test]
    fn raw_weights_reproduce_the_standardised_model() {
        let table = synthetic(600, 9);
        let t = train(&table, &opts("outcome")).unwrap();
        // Encode one row by hand: sentiment, buying, noise, then the three source levels.
        let row = &table.rows[0];
        let mut x: Vec<f64> = row[..3].iter().map(|v| v.parse().unwrap()).collect();
        for level in ["cold_list", "other", "referral"] {
            x.push(f64::from(u8::from(row[3] == level)));
        }
        assert_eq!(t.names.len(), 6);
        let standardised = t.std_intercept
            + x.iter()
                .zip(t.mean.iter().zip(&t.sd))
                .zip(&t.std_weights)
                .map(|((v, (m, s)), w)| (v - m) / s * w)
                .sum::<f64>();
        assert!(
            (t.log_odds(&x) - standardised).abs() < 1e-9,
            "{} vs {standardised}",
            t.log_odds(&x)
        );
    }

    #[test]
    fn same_seed_same_auc_and_bad_inputs_are_named() {
        let table = synthetic(800, 5);
        let a = train(&table, &opts("outcome")).unwrap();
        let b = train(&table, &opts("outcome")).unwrap();
        assert_eq!(a.report.auc_test, b.report.auc_test);
        assert_eq!(a.weights, b.weights);

        assert!(matches!(
            train(&table, &opts("nope")),
            Err(TrainError::UnknownColumn(_))
        ));
        assert!(matches!(
            train(&table, &opts("source")),
            Err(TrainError::TargetValues { .. })
        ));
        let mut o = opts("outcome");
        o.exclude = ["sentiment_level", "buying_signals", "noise", "source"]
            .map(String::from)
            .to_vec();
        assert!(matches!(train(&table, &o), Err(TrainError::NoFeatures)));
        let small = Table {
            header: table.header.clone(),
            rows: table.rows[..20].to_vec(),
        };
        assert!(matches!(
            train(&small, &opts("outcome")),
            Err(TrainError::TooFewRows(_))
        ));
    }

    #[test]
    fn excluding_a_leaky_column_lowers_the_auc() {
        // `leak` is the outcome plus a little noise, like a finished call's duration.
        let mut table = synthetic(1200, 11);
        table.header.push("leak".into());
        let mut rng = SplitMix64::new(4);
        for row in &mut table.rows {
            let won = row[4] == "won";
            let jitter = (rng.next_u64() % 100) as f64 / 200.0;
            row.push(format!("{}", f64::from(u8::from(won)) + jitter));
        }
        let with = train(&table, &opts("outcome")).unwrap();
        let mut o = opts("outcome");
        o.exclude = vec!["leak".into()];
        let without = train(&table, &o).unwrap();
        assert!(with.report.auc_test > 0.99);
        assert!(without.report.auc_test < with.report.auc_test);
    }
}
