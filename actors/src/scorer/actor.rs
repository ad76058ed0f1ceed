//! The scoring actor: every live lead's attributes and call signals, scored on each change.
//!
//! [`LeadBook`] is the state and logic (plain, synchronous, benchable); [`ScoringActor`] owns
//! one behind a bounded actix mailbox and publishes every update to a [`ScoreSink`]. Nothing in
//! here does IO: the sink is expected to hand updates off without blocking (the server's sink
//! queues them for the store writer and the dashboards).

use super::{LeadFeatures, Outcome, ScoreUpdate, Scorer, ScorerError, Stage};
use crate::metrics;
use crate::scorer::signals::CallSignals;
use actix::prelude::*;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// Mailbox capacity of the scoring actor. Each live call sends about one update per final
/// utterance (one every few seconds); 4096 queued messages absorb a burst from ~1000 concurrent
/// calls finishing utterances at once while a single update costs a few µs, i.e. the queue
/// drains in milliseconds. Callers on the audio path use `try_send` and count a full mailbox.
pub const SCORING_MAILBOX: usize = 4096;

/// Most leads tracked at once. A live lead costs a few hundred bytes; 50 000 is far above one
/// node's concurrent calls (the loadgen targets hundreds) and bounds memory if ends get lost.
pub const MAX_LIVE_LEADS: usize = 50_000;

static UPDATES: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_scorer_updates_total",
        "Lead score updates computed and published",
    )
});
static TRANSITIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_scorer_transitions_total",
        "Lead stage transitions, by destination stage",
        &["to"],
    )
});
static LIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    metrics::gauge(
        "callcoach_scorer_live_leads",
        "Leads with a live call tracked by the scoring actor",
    )
});
static REFUSED: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_scorer_refused_total",
        "Score updates refused because the live-lead table was full",
    )
});
static UNOPENED: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_scorer_unopened_leads_total",
        "Leads scored without an OpenLead (scored with default attributes)",
    )
});

/// One published update: which lead, which call, and the score with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadUpdate {
    pub tenant: String,
    pub lead_id: String,
    /// The call that caused it; `None` for outcomes recorded outside a call.
    pub call_id: Option<String>,
    pub update: ScoreUpdate,
}

/// Where score updates go. Called on the actor's thread for every update: implementations must
/// not block or do IO inline (queue with `try_send` and count what a full queue drops).
pub trait ScoreSink: Send + Sync + 'static {
    fn publish(&self, update: &LeadUpdate);
}

#[derive(Debug)]
struct LiveLead {
    lead: LeadFeatures,
    signals: CallSignals,
    call_id: String,
}

type Key = (String, String);

/// Every live lead's state and the scorer; what [`ScoringActor`] runs on each message.
#[derive(Debug)]
pub struct LeadBook {
    scorer: Arc<Scorer>,
    leads: HashMap<Key, LiveLead>,
}

impl LeadBook {
    pub fn new(scorer: Arc<Scorer>) -> LeadBook {
        LeadBook {
            scorer,
            leads: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.leads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leads.is_empty()
    }

    /// The stage a live lead is at.
    pub fn stage(&self, tenant: &str, lead_id: &str) -> Option<Stage> {
        self.leads
            .get(&(tenant.to_owned(), lead_id.to_owned()))
            .map(|l| l.lead.stage)
    }

    /// Starts tracking a lead for a call (attributes from the store) and scores it; a new or
    /// nurture lead becomes contacted. Reopening a live lead replaces its attributes and keeps
    /// its call signals.
    pub fn open(
        &mut self,
        tenant: &str,
        lead_id: &str,
        call_id: &str,
        features: LeadFeatures,
    ) -> Result<LeadUpdate, ScorerError> {
        let key = (tenant.to_owned(), lead_id.to_owned());
        if !self.leads.contains_key(&key) && self.leads.len() >= MAX_LIVE_LEADS {
            REFUSED.inc();
            return Err(ScorerError::Capacity(MAX_LIVE_LEADS));
        }
        let live = self.leads.entry(key).or_insert_with(|| LiveLead {
            lead: features.clone(),
            signals: CallSignals::default(),
            call_id: call_id.to_owned(),
        });
        live.lead = features;
        live.call_id = call_id.to_owned();
        let contact = live.lead.stage.on_contact(call_id);
        LIVE.set(self.leads.len() as i64);
        Ok(self.rescore(tenant, lead_id, contact))
    }

    /// Replaces a live lead's call signals with `signals` and rescores it. A lead not opened
    /// first is opened with default attributes (source other, stage new). `None` when the lead
    /// is closed (won or lost) or the table is full.
    pub fn update(
        &mut self,
        tenant: &str,
        lead_id: &str,
        call_id: &str,
        signals: CallSignals,
    ) -> Option<LeadUpdate> {
        let key = (tenant.to_owned(), lead_id.to_owned());
        let mut contact = None;
        if !self.leads.contains_key(&key) {
            UNOPENED.inc();
            tracing::debug!(lead_id, call_id, "scoring a lead that was not opened");
            match self.open(tenant, lead_id, call_id, LeadFeatures::default()) {
                Ok(opened) => contact = Some(opened.update.transitions),
                Err(_) => return None,
            }
        }
        let live = self.leads.get_mut(&key)?;
        if live.lead.stage.is_terminal() {
            return None;
        }
        live.signals = signals;
        let mut out = self.rescore(tenant, lead_id, None);
        if let Some(mut first) = contact {
            // Report the contact transition of the implicit open with this update.
            first.append(&mut out.update.transitions);
            out.update.transitions = first;
        }
        Some(out)
    }

    /// Records an explicit outcome for a live lead.
    pub fn outcome(
        &mut self,
        tenant: &str,
        lead_id: &str,
        outcome: Outcome,
        reason: &str,
    ) -> Result<LeadUpdate, ScorerError> {
        let key = (tenant.to_owned(), lead_id.to_owned());
        let live = self
            .leads
            .get(&key)
            .ok_or_else(|| ScorerError::NotLive(lead_id.to_owned()))?;
        let t = live.lead.stage.on_outcome(outcome, reason)?;
        Ok(self.rescore(tenant, lead_id, Some(t)))
    }

    /// Ends a lead's call: a last score, the nurture rule, and the lead is forgotten. `None`
    /// when the lead is not live or another call of it has taken over.
    pub fn end(&mut self, tenant: &str, lead_id: &str, call_id: &str) -> Option<LeadUpdate> {
        let key = (tenant.to_owned(), lead_id.to_owned());
        if self.leads.get(&key)?.call_id != call_id {
            return None;
        }
        let mut out = self.rescore(tenant, lead_id, None);
        if let Some(t) = out
            .update
            .stage
            .on_call_end(out.update.score, self.scorer.thresholds())
        {
            TRANSITIONS.with_label_values(&[t.to.as_str()]).inc();
            out.update.stage = t.to;
            out.update.transitions.push(t);
        }
        self.leads.remove(&key);
        LIVE.set(self.leads.len() as i64);
        Some(out)
    }

    /// Scores a live lead after applying `first` (an explicit transition) and commits the
    /// resulting stage. The caller guarantees the lead is live.
    fn rescore(
        &mut self,
        tenant: &str,
        lead_id: &str,
        first: Option<super::Transition>,
    ) -> LeadUpdate {
        let key = (tenant.to_owned(), lead_id.to_owned());
        let scorer = Arc::clone(&self.scorer);
        let Some(live) = self.leads.get_mut(&key) else {
            // Unreachable by the callers' contract; an empty update is the harmless answer.
            return LeadUpdate {
                tenant: tenant.to_owned(),
                lead_id: lead_id.to_owned(),
                call_id: None,
                update: scorer.score(&LeadFeatures::default(), &CallSignals::default()),
            };
        };
        let mut transitions = Vec::new();
        if let Some(t) = first {
            live.lead.stage = t.to;
            transitions.push(t);
        }
        let mut update = scorer.score(&live.lead, &live.signals);
        transitions.append(&mut update.transitions);
        for t in &transitions {
            TRANSITIONS.with_label_values(&[t.to.as_str()]).inc();
        }
        update.transitions = transitions;
        live.lead.stage = update.stage;
        UPDATES.inc();
        LeadUpdate {
            tenant: tenant.to_owned(),
            lead_id: lead_id.to_owned(),
            call_id: Some(live.call_id.clone()),
            update,
        }
    }
}

/// The actix actor around a [`LeadBook`]: bounded mailbox, publishes to a [`ScoreSink`].
pub struct ScoringActor {
    book: LeadBook,
    sink: Arc<dyn ScoreSink>,
}

impl ScoringActor {
    pub fn new(scorer: Arc<Scorer>, sink: Arc<dyn ScoreSink>) -> ScoringActor {
        ScoringActor {
            book: LeadBook::new(scorer),
            sink,
        }
    }

    fn publish(&self, update: &LeadUpdate) {
        self.sink.publish(update);
    }
}

impl Actor for ScoringActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(SCORING_MAILBOX);
    }
}

/// Start tracking a lead for a call, with its attributes from the store.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ScoreUpdate, ScorerError>")]
pub struct OpenLead {
    pub tenant: String,
    pub lead_id: String,
    pub call_id: String,
    pub features: LeadFeatures,
}

/// The call's signals changed: rescore. Answers the update (`None` for a closed lead).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<ScoreUpdate>")]
pub struct UpdateScore {
    pub tenant: String,
    pub lead_id: String,
    pub call_id: String,
    pub signals: CallSignals,
}

/// A person or the CRM recorded an outcome for a live lead.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ScoreUpdate, ScorerError>")]
pub struct RecordOutcome {
    pub tenant: String,
    pub lead_id: String,
    pub outcome: Outcome,
    pub reason: String,
}

/// The lead's call ended: final score, nurture rule, forget the lead.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<ScoreUpdate>")]
pub struct EndCall {
    pub tenant: String,
    pub lead_id: String,
    pub call_id: String,
}

/// How many leads are live.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "usize")]
pub struct LiveLeads;

impl Handler<OpenLead> for ScoringActor {
    type Result = Result<ScoreUpdate, ScorerError>;
    fn handle(&mut self, m: OpenLead, _: &mut Context<Self>) -> Self::Result {
        let out = self
            .book
            .open(&m.tenant, &m.lead_id, &m.call_id, m.features)?;
        self.publish(&out);
        Ok(out.update)
    }
}

impl Handler<UpdateScore> for ScoringActor {
    type Result = Option<ScoreUpdate>;
    fn handle(&mut self, m: UpdateScore, _: &mut Context<Self>) -> Self::Result {
        let out = self
            .book
            .update(&m.tenant, &m.lead_id, &m.call_id, m.signals)?;
        self.publish(&out);
        Some(out.update)
    }
}

impl Handler<RecordOutcome> for ScoringActor {
    type Result = Result<ScoreUpdate, ScorerError>;
    fn handle(&mut self, m: RecordOutcome, _: &mut Context<Self>) -> Self::Result {
        let out = self
            .book
            .outcome(&m.tenant, &m.lead_id, m.outcome, &m.reason)?;
        self.publish(&out);
        Ok(out.update)
    }
}

impl Handler<EndCall> for ScoringActor {
    type Result = Option<ScoreUpdate>;
    fn handle(&mut self, m: EndCall, _: &mut Context<Self>) -> Self::Result {
        let out = self.book.end(&m.tenant, &m.lead_id, &m.call_id)?;
        self.publish(&out);
        Some(out.update)
    }
}

impl Handler<LiveLeads> for ScoringActor {
    type Result = usize;
    fn handle(&mut self, _: LiveLeads, _: &mut Context<Self>) -> usize {
        self.book.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::{LeadSource, Weights};
    use std::sync::Mutex;

    /// A sink that keeps what it is given, to assert on.
    #[derive(Default)]
    struct Collect(Mutex<Vec<LeadUpdate>>);

    impl ScoreSink for Collect {
        fn publish(&self, update: &LeadUpdate) {
            self.0.lock().unwrap().push(update.clone());
        }
    }

    fn referral() -> LeadFeatures {
        LeadFeatures {
            source: LeadSource::Referral,
            prior_contacts: 1,
            days_since_last_contact: Some(3.0),
            stage: Stage::New,
        }
    }

    fn warm_signals() -> CallSignals {
        let mut s = CallSignals::default();
        for _ in 0..4 {
            s.observe_customer_sentiment(0.7);
        }
        s.buying_signals = 3;
        s.customer_questions = 3;
        s.talk.agent_ms = 40_000;
        s.talk.customer_ms = 60_000;
        s.call_ms = 300_000;
        s
    }

    #[actix::test]
    async fn a_call_moves_a_lead_from_new_to_qualified_and_publishes_each_step() {
        let sink = Arc::new(Collect::default());
        let addr = ScoringActor::new(
            Arc::new(Scorer::embedded()),
            sink.clone() as Arc<dyn ScoreSink>,
        )
        .start();
        let opened = addr
            .send(OpenLead {
                tenant: "t1".into(),
                lead_id: "l1".into(),
                call_id: "c1".into(),
                features: referral(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened.stage, Stage::Contacted);
        assert_eq!(opened.transitions[0].from, Stage::New);

        let warm = addr
            .send(UpdateScore {
                tenant: "t1".into(),
                lead_id: "l1".into(),
                call_id: "c1".into(),
                signals: warm_signals(),
            })
            .await
            .unwrap()
            .unwrap();
        assert!(warm.score > opened.score);
        assert_eq!(warm.stage, Stage::Qualified, "score {}", warm.score);
        assert_eq!(warm.transitions.len(), 2);
        assert!((warm.log_odds() - (warm.score / (1.0 - warm.score)).ln()).abs() < 1e-9);

        let won = addr
            .send(RecordOutcome {
                tenant: "t1".into(),
                lead_id: "l1".into(),
                outcome: Outcome::Won,
                reason: "signed".into(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(won.stage, Stage::Won);
        assert!(won.transitions[0].reason.contains("signed"));

        // Closed leads are not rescored, and cannot be moved again.
        let after = addr
            .send(UpdateScore {
                tenant: "t1".into(),
                lead_id: "l1".into(),
                call_id: "c1".into(),
                signals: CallSignals::default(),
            })
            .await
            .unwrap();
        assert!(after.is_none());
        let again = addr
            .send(RecordOutcome {
                tenant: "t1".into(),
                lead_id: "l1".into(),
                outcome: Outcome::Lost,
                reason: String::new(),
            })
            .await
            .unwrap();
        assert!(matches!(again, Err(ScorerError::IllegalTransition { .. })));

        let published = sink.0.lock().unwrap();
        assert_eq!(published.len(), 3);
        assert!(published
            .iter()
            .all(|u| u.lead_id == "l1" && u.tenant == "t1"));
    }

    #[test]
    fn ending_a_cold_call_nurtures_and_forgets_the_lead() {
        let mut book = LeadBook::new(Arc::new(Scorer::embedded()));
        let cold = LeadFeatures {
            source: LeadSource::ColdList,
            ..LeadFeatures::default()
        };
        book.open("t", "l", "c", cold).unwrap();
        let mut s = CallSignals::default();
        s.observe_customer_sentiment(-0.6);
        s.objections_raised = 2;
        s.objections_open = 2;
        book.update("t", "l", "c", s).unwrap();
        assert!(book.end("t", "l", "other-call").is_none());
        let end = book.end("t", "l", "c").unwrap();
        assert_eq!(
            end.update.stage,
            Stage::Nurture,
            "score {}",
            end.update.score
        );
        assert!(end
            .update
            .transitions
            .last()
            .unwrap()
            .reason
            .contains("nurture"));
        assert!(book.is_empty());
    }

    #[test]
    fn leads_of_different_tenants_are_kept_apart() {
        let mut book = LeadBook::new(Arc::new(Scorer::embedded()));
        book.open("a", "same-id", "c1", referral()).unwrap();
        let b = book.update("b", "same-id", "c2", warm_signals()).unwrap();
        assert_eq!(
            b.update.transitions[0].from,
            Stage::New,
            "b was opened implicitly"
        );
        assert_eq!(book.len(), 2);
        assert_eq!(book.stage("a", "same-id"), Some(Stage::Contacted));
    }

    #[test]
    fn outcome_for_a_lead_not_live_is_an_error() {
        let mut book = LeadBook::new(Arc::new(Scorer::embedded()));
        assert!(matches!(
            book.outcome("t", "nobody", Outcome::Won, ""),
            Err(ScorerError::NotLive(_))
        ));
    }

    #[test]
    fn custom_weights_change_the_score() {
        let mut w = Weights::embedded();
        w.intercept = 3.0;
        w.features.clear();
        let mut book = LeadBook::new(Arc::new(Scorer::new(&w).unwrap()));
        let u = book.open("t", "l", "c", LeadFeatures::default()).unwrap();
        assert!((u.update.score - super::super::sigmoid(3.0)).abs() < 1e-12);
        assert!(u.update.contributions.is_empty());
    }
}
