//! `callcoach scoring train` — fit the lead-scoring logistic model from a CSV of past outcomes,
//! report ROC AUC on a held-out split and write a weights file the scorer can load.
//!
//! Columns become features by type: a column whose values all parse as numbers is one numeric
//! feature named after the column; any other column is one-hot encoded as `column=level` (every
//! level kept: the L2 penalty makes the fit unique without dropping a baseline). A CSV whose
//! columns are the scorer's own feature names (`sentiment_level`, …, `source` with levels such
//! as `referral`) therefore trains weights the live scorer loads directly.
//!
//! The fit runs on standardised features (zero mean, unit variance on the training rows), which
//! the L-BFGS solver needs to converge on columns of very different scales; the weights are then
//! mapped back to raw units, so the file keeps the scorer's contract `contribution = value ×
//! weight`. The split is stratified and seeded (`scorer::eval`), so a run is reproducible.

pub mod csv;
pub mod train;

use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Fit weights from a CSV of past outcomes and report held-out ROC AUC.
    Train(TrainArgs),
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training data: delimited text with a header row (`,` `;` or tab, detected).
    #[arg(long)]
    pub csv: PathBuf,
    /// The outcome column.
    #[arg(long)]
    pub target: String,
    /// The target value that means a won lead (default: yes, 1, true, won or converted).
    #[arg(long)]
    pub positive: Option<String>,
    /// Columns to use as features (comma-separated; default: every column but the target and
    /// the excluded ones).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
    /// Columns never used. The default drops `duration`: the length of the finished call is
    /// only known once the outcome is (the UCI data's own notes say it leaks the target). Pass
    /// `--exclude ''` to keep every column.
    #[arg(long, value_delimiter = ',', default_value = "duration")]
    pub exclude: Vec<String>,
    /// Share of rows held out for the AUC (stratified by outcome).
    #[arg(long, default_value_t = 0.25)]
    pub test_fraction: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// L2 penalty of the fit (linfa's `alpha`, on standardised features).
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Solver iterations.
    #[arg(long, default_value_t = 500)]
    pub max_iterations: u64,
    /// Where to write the weights file.
    #[arg(long, default_value = "models/lead_scoring.json")]
    pub out: PathBuf,
    /// Replace `--out` if it exists (the default path holds the shipped defaults).
    #[arg(long)]
    pub force: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Train(args) => run_train(args),
    }
}

fn run_train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.csv)
        .with_context(|| format!("failed to read {}", args.csv.display()))?;
    let table = csv::parse(&text, csv::detect_delimiter(&text))
        .with_context(|| format!("failed to parse {}", args.csv.display()))?;
    let opts = train::Options {
        target: args.target.clone(),
        positive: args.positive.clone(),
        features: args
            .features
            .iter()
            .filter(|f| !f.is_empty())
            .cloned()
            .collect(),
        exclude: args
            .exclude
            .iter()
            .filter(|f| !f.is_empty())
            .cloned()
            .collect(),
        test_fraction: args.test_fraction,
        seed: args.seed,
        alpha: args.alpha,
        max_iterations: args.max_iterations,
    };
    let trained = match train::train(&table, &opts) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(super::EXIT_BAD_INPUT));
        }
    };
    let source = args
        .csv
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let weights = trained.to_weights(&source, &opts);

    if args.out.exists() && !args.force {
        eprintln!(
            "error: {} exists; pass --force to replace it or --out to write elsewhere",
            args.out.display()
        );
        print_report(&trained, &args);
        return Ok(ExitCode::from(super::EXIT_BAD_INPUT));
    }
    weights
        .save(&args.out)
        .with_context(|| format!("failed to write {}", args.out.display()))?;
    print_report(&trained, &args);
    match callcoach_actors::scorer::Scorer::new(&weights) {
        Ok(_) => eprintln!("wrote {} (loadable by the live scorer)", args.out.display()),
        Err(e) => eprintln!(
            "wrote {} — note: the live scorer will not load it ({e}); it scores these CSV columns, not call signals",
            args.out.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(t: &train::Trained, args: &TrainArgs) {
    if args.json {
        // unwrap: a report of strings and finite numbers always serialises.
        println!(
            "{}",
            serde_json::to_string_pretty(&t.report).expect("report serialises")
        );
        return;
    }
    let r = &t.report;
    println!(
        "rows {} (positives {}, {:.1}%), train {} / test {}, features {} from {} columns",
        r.rows,
        r.positives,
        100.0 * r.positives as f64 / r.rows.max(1) as f64,
        r.train_rows,
        r.test_rows,
        r.features,
        r.columns.len()
    );
    if !r.excluded.is_empty() {
        println!("excluded: {}", r.excluded.join(", "));
    }
    println!(
        "ROC AUC held-out {:.4} (train {:.4}); seed {}, test fraction {}, alpha {}",
        r.auc_test, r.auc_train, r.seed, r.test_fraction, r.alpha
    );
    println!("strongest features (log-odds per standard deviation):");
    for (name, w) in r.top_features.iter().take(12) {
        println!("  {w:+.3}  {name}");
    }
}
