//! The explainable lead score and the lead state machine.
//!
//! A lead's score is a logistic model over named features: `p = σ(b + Σ wᵢ·xᵢ)`. Every update
//! carries each feature's contribution `wᵢ·xᵢ` in log-odds next to the intercept `b`, so the
//! dashboard and the CRM can say *why* a lead scored what it did, and the contributions stored
//! per update can later be joined with outcomes to retrain the weights.
//!
//! Layout:
//! * this file — [`Feature`] (the named inputs and how each is computed), [`LeadFeatures`] (the
//!   lead's own attributes), [`Weights`] (the JSON weights file, `models/lead_scoring.json`) and
//!   [`Scorer`] (weights resolved to a fixed array, pure and cheap).
//! * [`signals`] — [`CallSignals`], the running signals of one live call.
//! * [`stage`] — [`Stage`], its legal transitions and the score thresholds that move it.
//! * [`actor`] — [`ScoringActor`], which keeps every live lead's state and publishes updates to
//!   a [`ScoreSink`].
//! * [`eval`] — ROC AUC and the held-out split used by `callcoach scoring train`.

pub mod actor;
pub mod eval;
pub mod signals;
pub mod stage;

pub use actor::{
    EndCall, LeadUpdate, LiveLeads, OpenLead, RecordOutcome, ScoreSink, ScoringActor, UpdateScore,
};
pub use signals::CallSignals;
pub use stage::{Outcome, Stage, StageThresholds, Transition};

use crate::event::Contribution;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors of the scorer, its weights file and the stage machine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScorerError {
    #[error("failed to read weights file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("failed to write weights file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid weights file: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("unsupported weights format `{0}` (expected `{WEIGHTS_FORMAT}`)")]
    Format(String),
    #[error("weights name feature `{0}` that the scorer does not compute")]
    UnknownFeature(String),
    #[error("feature `{0}` appears twice in the weights")]
    DuplicateFeature(String),
    #[error("weight of `{0}` is not a finite number")]
    NotFinite(String),
    #[error("invalid stage thresholds: {0}")]
    Thresholds(String),
    #[error("illegal stage transition from {from} to {to}")]
    IllegalTransition { from: Stage, to: Stage },
    #[error("unknown stage `{0}`")]
    UnknownStage(String),
    #[error("too many live leads (limit {0})")]
    Capacity(usize),
    #[error("lead {0} is not live on this node")]
    NotLive(String),
}

/// Where a lead came from: the `source=` one-hot features (exactly one of them is 1). The
/// default weights keep `other` at 0, the baseline the others are measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    Referral,
    Inbound,
    WebForm,
    Event,
    PaidAds,
    ColdList,
    #[default]
    Other,
}

impl LeadSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            LeadSource::Referral => "referral",
            LeadSource::Inbound => "inbound",
            LeadSource::WebForm => "web_form",
            LeadSource::Event => "event",
            LeadSource::PaidAds => "paid_ads",
            LeadSource::ColdList => "cold_list",
            LeadSource::Other => "other",
        }
    }

    /// Lenient parse of a CRM's source label ("Web Form", "web-form", "cold list"); anything
    /// unrecognised is `Other` rather than an error, since CRMs invent labels freely.
    pub fn parse_lenient(s: &str) -> Self {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| match c {
                ' ' | '-' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        match norm.as_str() {
            "referral" | "referred" => LeadSource::Referral,
            "inbound" | "inbound_call" | "organic" => LeadSource::Inbound,
            "web_form" | "webform" | "website" | "form" => LeadSource::WebForm,
            "event" | "trade_show" | "webinar" => LeadSource::Event,
            "paid_ads" | "paid" | "ads" | "ppc" => LeadSource::PaidAds,
            "cold_list" | "cold" | "outbound" | "list" => LeadSource::ColdList,
            _ => LeadSource::Other,
        }
    }
}

/// The lead's own attributes, loaded from the store when a call for it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LeadFeatures {
    pub source: LeadSource,
    /// Conversations with this lead before the current call.
    pub prior_contacts: u32,
    /// Days since the last conversation; `None` when there was none.
    pub days_since_last_contact: Option<f64>,
    /// The lead's stage before this update.
    pub stage: Stage,
}

/// The named inputs of the score. The `name` is what the weights file and the stored
/// contributions use; the doc of each variant says how its value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Mean VADER compound of the customer's final utterances, −1..1 (0 before any).
    SentimentLevel,
    /// Mean compound of the last three customer turns minus that of the turns before them,
    /// clamped to −1..1 (see [`CallSignals::sentiment_trend`]).
    SentimentTrend,
    /// ln(1 + buying-signal hints).
    BuyingSignals,
    /// ln(1 + objection hints).
    ObjectionsRaised,
    /// ln(1 + objections followed by a positive customer turn or a buying signal).
    ObjectionsHandled,
    /// Customer share of speech minus ½, −0.5..0.5 (0 before anyone spoke).
    CustomerTalkShare,
    /// ln(1 + questions the customer asked).
    Engagement,
    /// ln(1 + call minutes so far).
    CallMinutes,
    /// ln(1 + prior conversations with the lead).
    PriorContacts,
    /// ln(1 + days since the last conversation); 0 when there was none.
    DaysSinceLastContact,
    /// 1 when the lead's source is that value, else 0.
    Source(LeadSource),
}

impl Feature {
    /// Every feature, in the order of [`Scorer`]'s weight array.
    pub const ALL: [Feature; 17] = [
        Feature::SentimentLevel,
        Feature::SentimentTrend,
        Feature::BuyingSignals,
        Feature::ObjectionsRaised,
        Feature::ObjectionsHandled,
        Feature::CustomerTalkShare,
        Feature::Engagement,
        Feature::CallMinutes,
        Feature::PriorContacts,
        Feature::DaysSinceLastContact,
        Feature::Source(LeadSource::Referral),
        Feature::Source(LeadSource::Inbound),
        Feature::Source(LeadSource::WebForm),
        Feature::Source(LeadSource::Event),
        Feature::Source(LeadSource::PaidAds),
        Feature::Source(LeadSource::ColdList),
        Feature::Source(LeadSource::Other),
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Feature::SentimentLevel => "sentiment_level",
            Feature::SentimentTrend => "sentiment_trend",
            Feature::BuyingSignals => "buying_signals",
            Feature::ObjectionsRaised => "objections_raised",
            Feature::ObjectionsHandled => "objections_handled",
            Feature::CustomerTalkShare => "customer_talk_share",
            Feature::Engagement => "engagement",
            Feature::CallMinutes => "call_minutes",
            Feature::PriorContacts => "prior_contacts",
            Feature::DaysSinceLastContact => "days_since_last_contact",
            Feature::Source(LeadSource::Referral) => "source=referral",
            Feature::Source(LeadSource::Inbound) => "source=inbound",
            Feature::Source(LeadSource::WebForm) => "source=web_form",
            Feature::Source(LeadSource::Event) => "source=event",
            Feature::Source(LeadSource::PaidAds) => "source=paid_ads",
            Feature::Source(LeadSource::ColdList) => "source=cold_list",
            Feature::Source(LeadSource::Other) => "source=other",
        }
    }

    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// This feature's value for a lead and its call so far.
    pub fn value(self, lead: &LeadFeatures, signals: &CallSignals) -> f64 {
        match self {
            Feature::SentimentLevel => signals.sentiment_level(),
            Feature::SentimentTrend => signals.sentiment_trend(),
            Feature::BuyingSignals => ln1p(signals.buying_signals),
            Feature::ObjectionsRaised => ln1p(signals.objections_raised),
            Feature::ObjectionsHandled => ln1p(signals.objections_handled),
            Feature::CustomerTalkShare => signals.customer_talk_share_centred(),
            Feature::Engagement => ln1p(signals.customer_questions),
            Feature::CallMinutes => (signals.call_ms as f64 / 60_000.0).ln_1p(),
            Feature::PriorContacts => ln1p(lead.prior_contacts),
            Feature::DaysSinceLastContact => match lead.days_since_last_contact {
                Some(d) if d.is_finite() && d > 0.0 => d.ln_1p(),
                _ => 0.0,
            },
            Feature::Source(s) => f64::from(u8::from(lead.source == s)),
        }
    }
}

fn ln1p(n: u32) -> f64 {
    f64::from(n).ln_1p()
}

/// The `format` tag of weights files this build reads.
pub const WEIGHTS_FORMAT: &str = "callcoach-logistic-v1";

/// The default weights, shipped in the binary (see the `note`s in the file for the reasoning).
pub const EMBEDDED_WEIGHTS: &str = include_str!("../../models/lead_scoring.json");

/// One feature's weight in a weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureWeight {
    pub name: String,
    /// Log-odds per unit of the feature's value.
    pub weight: f64,
    /// Why this weight (defaults) or where it came from (trained files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A logistic model as stored in `models/*.json`: written by `callcoach scoring train`, read by
/// the scorer. Raw-scale weights: `contribution = value × weight`, no hidden standardisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub intercept: f64,
    pub features: Vec<FeatureWeight>,
    /// Stage thresholds; the defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<StageThresholds>,
    /// How the weights were obtained (training command, data, held-out AUC); free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<serde_json::Value>,
}

impl Weights {
    /// The defaults compiled into the binary from `models/lead_scoring.json`.
    pub fn embedded() -> Weights {
        // unwrap: the embedded file is checked by `embedded_weights_load_and_resolve`; a broken
        // file fails that test and never ships.
        Weights::from_json(EMBEDDED_WEIGHTS).expect("embedded weights are valid")
    }

    pub fn from_json(text: &str) -> Result<Weights, ScorerError> {
        let w: Weights = serde_json::from_str(text)?;
        w.validate()?;
        Ok(w)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Weights, ScorerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScorerError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Weights::from_json(&text)
    }

    pub fn to_json_pretty(&self) -> String {
        // unwrap: plain structs of strings and finite floats always serialise.
        let mut s = serde_json::to_string_pretty(self).expect("weights serialise");
        s.push('\n');
        s
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ScorerError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json_pretty()).map_err(|source| ScorerError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Checks the format tag, finiteness and duplicates (not feature names: a trained file may
    /// use any CSV columns; [`Scorer::new`] checks names against what it computes).
    pub fn validate(&self) -> Result<(), ScorerError> {
        if self.format != WEIGHTS_FORMAT {
            return Err(ScorerError::Format(self.format.clone()));
        }
        if !self.intercept.is_finite() {
            return Err(ScorerError::NotFinite("intercept".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            if !f.weight.is_finite() {
                return Err(ScorerError::NotFinite(f.name.clone()));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(ScorerError::DuplicateFeature(f.name.clone()));
            }
        }
        if let Some(t) = &self.thresholds {
            t.validate()?;
        }
        Ok(())
    }

    /// The weight of a named feature, if present.
    pub fn weight(&self, name: &str) -> Option<f64> {
        self.features
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.weight)
    }
}

/// The result of one scoring: probability, its explanation and the stage it implies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreUpdate {
    /// Probability of a won outcome, 0..1.
    pub score: f64,
    /// Intercept in log-odds (the score of a lead with every feature at 0).
    pub intercept: f64,
    /// One entry per weighted feature, in [`Feature::ALL`] order; they sum with the intercept to
    /// the log-odds of `score`.
    pub contributions: Vec<Contribution>,
    /// The stage after this update.
    pub stage: Stage,
    /// Stage changes this update caused, in order (empty most of the time).
    pub transitions: Vec<Transition>,
}

impl ScoreUpdate {
    /// `intercept + Σ contributions`: the log-odds of `score`.
    pub fn log_odds(&self) -> f64 {
        self.intercept
            + self
                .contributions
                .iter()
                .map(|c| c.contribution)
                .sum::<f64>()
    }
}

/// Weights resolved against [`Feature::ALL`]; scoring is a 17-term dot product.
#[derive(Debug, Clone)]
pub struct Scorer {
    intercept: f64,
    weights: [f64; Feature::ALL.len()],
    thresholds: StageThresholds,
}

impl Scorer {
    /// Resolves `weights` by feature name. A name the scorer does not compute is an error (a
    /// weights file trained on other columns cannot silently score garbage); a feature the file
    /// leaves out has weight 0.
    pub fn new(weights: &Weights) -> Result<Scorer, ScorerError> {
        weights.validate()?;
        let mut resolved = [0.0; Feature::ALL.len()];
        for fw in &weights.features {
            let idx = Feature::ALL
                .iter()
                .position(|f| f.name() == fw.name)
                .ok_or_else(|| ScorerError::UnknownFeature(fw.name.clone()))?;
            resolved[idx] = fw.weight;
        }
        Ok(Scorer {
            intercept: weights.intercept,
            weights: resolved,
            thresholds: weights.thresholds.clone().unwrap_or_default(),
        })
    }

    /// The scorer over the embedded default weights.
    pub fn embedded() -> Scorer {
        // unwrap: the embedded weights name only known features (checked by a unit test).
        Scorer::new(&Weights::embedded()).expect("embedded weights resolve")
    }

    pub fn thresholds(&self) -> &StageThresholds {
        &self.thresholds
    }

    pub fn with_thresholds(mut self, thresholds: StageThresholds) -> Result<Scorer, ScorerError> {
        thresholds.validate()?;
        self.thresholds = thresholds;
        Ok(self)
    }

    /// Log-odds of a lead and its call so far, without building the explanation.
    pub fn log_odds(&self, lead: &LeadFeatures, signals: &CallSignals) -> f64 {
        Feature::ALL
            .iter()
            .zip(self.weights.iter())
            .filter(|(_, w)| **w != 0.0)
            .map(|(f, w)| f.value(lead, signals) * w)
            .sum::<f64>()
            + self.intercept
    }

    /// Scores a lead, explains the score and moves its stage by the score thresholds (forward
    /// only: see [`stage::advance_on_score`]).
    pub fn score(&self, lead: &LeadFeatures, signals: &CallSignals) -> ScoreUpdate {
        let mut contributions = Vec::with_capacity(Feature::ALL.len());
        let mut z = self.intercept;
        for (f, &w) in Feature::ALL.iter().zip(self.weights.iter()) {
            if w == 0.0 {
                continue;
            }
            let value = f.value(lead, signals);
            let contribution = value * w;
            z += contribution;
            contributions.push(Contribution {
                feature: f.name().to_owned(),
                value,
                weight: w,
                contribution,
            });
        }
        let score = sigmoid(z);
        let transitions = stage::advance_on_score(lead.stage, score, &self.thresholds);
        let stage = transitions.last().map_or(lead.stage, |t| t.to);
        ScoreUpdate {
            score,
            intercept: self.intercept,
            contributions,
            stage,
            transitions,
        }
    }
}

/// The logistic function, stable at both tails.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests;
