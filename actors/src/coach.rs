//! The coach: one per live call, it turns voice activity, transcripts and sentiment into hints
//! by the rules of a [`Playbook`].
//!
//! * [`playbook`] — the rule file format, its validation and phrase matching.
//! * [`Coach`] — per-call state: voice timeline per track (talk share, monologue, overlap,
//!   silence), rule cooldowns and caps, dismissed rules, checklist, pending customer question.
//!
//! Inputs arrive in audio time (milliseconds since the call started): [`Coach::on_voice`] from the
//! segmenter's speech start/end, [`Coach::on_partial`] / [`Coach::on_final`] from the transcriber,
//! and [`Coach::tick`] about every 250 ms for rules that fire on elapsed time. Talk-time rules use
//! voice activity only and work with no transcript at all. A mixed (single) track counts for both
//! parties; rules that need to tell the parties apart are off for mixed calls.
//!
//! Firing policy: a rule fires at most `max_per_call` times, not within `cooldown` of its last
//! hint, never again once the agent dismissed one of its hints, and never twice for the same
//! utterance (a phrase seen on a partial does not fire again on the final).

pub mod playbook;
#[cfg(test)]
mod tests;

pub use playbook::{
    normalize_text, Matcher, Playbook, PlaybookError, Rule, Speaker, Trigger, EMBEDDED_PLAYBOOK,
};

use crate::event::{
    ChecklistItem, Hint, HintKind, Priority, SentimentScore, TalkStats, Track, Transcript,
    UtteranceId,
};
use crate::metrics;
use crate::sentiment::Trend;
use prometheus::{IntCounter, IntCounterVec};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

/// A gap in the agent's speech shorter than this does not end a monologue: people pause for
/// breath and between sentences for well under two seconds (the endpointer's own utterance gap is
/// 0.4 s), whereas handing the floor over takes a longer silence or the customer speaking.
pub const MONOLOGUE_PAUSE_MS: u64 = 2_000;

/// Customer speech this long ends the agent's monologue; shorter sounds are backchannels
/// ("mm-hm", "right"), which typically last well under a second.
pub const CUSTOMER_TURN_MS: u64 = 1_000;

/// Agent speech after a customer question that counts as taking it up (a one-second answer start
/// is more than a backchannel).
pub const MIN_ANSWER_MS: u64 = 1_000;

/// Window for the `agent_wpm` figure in [`TalkStats`] (the last minute of agent finals).
pub const WPM_STATS_WINDOW_MS: u64 = 60_000;

/// Voice history kept for windowed figures when no rule needs more: the last ten minutes.
const MIN_HISTORY_MS: u64 = 600_000;

/// Longest supervisor whisper pushed to an overlay; the overlay shows a short card, and a
/// whisper is typed live, so 500 characters is generous.
pub const MAX_WHISPER_CHARS: usize = 500;

static HINTS_BY_KIND: LazyLock<IntCounterVec> = LazyLock::new(|| {
    metrics::counter_vec(
        "callcoach_coach_hints_by_kind_total",
        "Hints produced by playbook rules, by hint kind",
        &["kind"],
    )
});
static DISMISSED: LazyLock<IntCounter> = LazyLock::new(|| {
    metrics::counter(
        "callcoach_coach_hints_dismissed_total",
        "Hints the agent marked not useful (their rule is silenced for the call)",
    )
});

/// A hint from a supervisor, shown as is.
pub fn whisper_hint(text: &str, at_ms: u64) -> Hint {
    let body: String = text.trim().chars().take(MAX_WHISPER_CHARS).collect();
    Hint {
        id: Uuid::now_v7(),
        rule: "whisper".into(),
        kind: HintKind::Whisper,
        priority: Priority::High,
        title: "Supervisor".into(),
        body,
        reason: "supervisor whisper".into(),
        evidence: Vec::new(),
        at_ms,
    }
}

#[derive(Debug, Clone, Copy)]
struct Interval {
    track: Track,
    start: u64,
    end: u64,
}

/// Where each track's voice is and what it added up to.
#[derive(Debug, Default)]
struct Voice {
    /// Start of the current speech run per track (agent, customer, mixed).
    speaking: [Option<u64>; 3],
    total_ms: [u64; 3],
    /// Closed speech runs, oldest first, pruned to `history_ms`.
    intervals: VecDeque<Interval>,
    /// Audio time up to which silence and overlap are accounted.
    swept_ms: u64,
    /// Whether anybody has spoken yet (silence before the first word is ringing, not dead air).
    started: bool,
    silence_ms: u64,
    overlap_ms: u64,
    /// Start of the current stretch where nobody speaks.
    silent_since: Option<u64>,
    /// Agent monologue: when the current run began and when the agent last stopped.
    run_start: Option<u64>,
    agent_last_end: Option<u64>,
    longest_run_ms: u64,
    /// Agent barge-ins: (start, end of the overlap once it ended).
    barge_ins: VecDeque<(u64, Option<u64>)>,
    /// End of the customer's last speech run.
    customer_last_end: Option<u64>,
}

fn slot(track: Track) -> usize {
    match track {
        Track::Agent => 0,
        Track::Customer => 1,
        Track::Mixed => 2,
    }
}

impl Voice {
    fn is_speaking(&self, track: Track) -> bool {
        self.speaking[slot(track)].is_some()
    }

    fn anyone_speaking(&self) -> bool {
        self.speaking.iter().any(Option::is_some)
    }

    fn sweep(&mut self, t: u64) {
        let dt = t.saturating_sub(self.swept_ms);
        if self.started && !self.anyone_speaking() {
            self.silence_ms += dt;
        }
        if self.is_speaking(Track::Agent) && self.is_speaking(Track::Customer) {
            self.overlap_ms += dt;
        }
        self.swept_ms = self.swept_ms.max(t);
    }

    /// Speech of `track` within `[from, to]`, closed runs and the open one.
    fn speech_between(&self, track: Track, from: u64, to: u64) -> u64 {
        let clip = |s: u64, e: u64| e.min(to).saturating_sub(s.max(from));
        let closed: u64 = self
            .intervals
            .iter()
            .rev()
            .take_while(|iv| iv.end >= from)
            .filter(|iv| iv.track == track)
            .map(|iv| clip(iv.start, iv.end))
            .sum();
        let open = self.speaking[slot(track)].map_or(0, |s| clip(s, to));
        closed + open
    }

    /// Length of the agent's current monologue at `now`, if one is running.
    fn current_run(&self, now: u64) -> Option<(u64, u64)> {
        let start = self.run_start?;
        if self.is_speaking(Track::Agent) {
            return Some((start, now.saturating_sub(start)));
        }
        let end = self.agent_last_end?;
        (now.saturating_sub(end) <= MONOLOGUE_PAUSE_MS).then(|| (start, end.saturating_sub(start)))
    }

    fn end_run_if_over(&mut self, now: u64) {
        let customer_turn = self.speaking[slot(Track::Customer)]
            .is_some_and(|s| now.saturating_sub(s) >= CUSTOMER_TURN_MS);
        let paused = !self.is_speaking(Track::Agent)
            && self
                .agent_last_end
                .is_some_and(|e| now.saturating_sub(e) > MONOLOGUE_PAUSE_MS);
        if customer_turn || paused {
            self.run_start = None;
        }
    }
}

/// Per-rule firing state.
#[derive(Debug, Default)]
struct RuleState {
    fired: u32,
    last_fired_ms: Option<u64>,
    dismissed: bool,
    /// Checklist: said.
    done: bool,
    /// Monologue / dead-air: the episode (run or gap start) already hinted.
    episode: Option<u64>,
    /// Sentiment drop: trend of the watched speaker and its peak this call (0 = neutral start).
    trend: Trend,
    peak: f32,
    /// Interruptions: barge-ins that started after this were not yet counted.
    counted_until: Option<u64>,
    /// Question unanswered: the open question (utterance, end of the question).
    question: Option<(UtteranceId, u64)>,
}

/// Coaching state of one call. Not shared between threads: the call actor owns it.
#[derive(Debug)]
pub struct Coach {
    playbook: Arc<Playbook>,
    rules: Vec<RuleState>,
    now_ms: u64,
    tracks_seen: [bool; 3],
    voice: Voice,
    history_ms: u64,
    fired_for: HashSet<(usize, UtteranceId)>,
    hint_rules: HashMap<Uuid, usize>,
    /// Agent finals: (end, words, speech ms), for pace.
    agent_words: VecDeque<(u64, usize, u64)>,
    checklist_changed: bool,
}

impl Coach {
    pub fn new(playbook: Arc<Playbook>) -> Self {
        let history_ms = playbook
            .rules
            .iter()
            .map(|r| match r.trigger {
                Trigger::TalkRatio { window_ms, .. }
                | Trigger::Interruption { window_ms, .. }
                | Trigger::Pace { window_ms, .. } => window_ms,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
            .max(MIN_HISTORY_MS);
        let rules = playbook
            .rules
            .iter()
            .map(|_| RuleState::default())
            .collect();
        Coach {
            playbook,
            rules,
            now_ms: 0,
            tracks_seen: [false; 3],
            voice: Voice::default(),
            history_ms,
            fired_for: HashSet::new(),
            hint_rules: HashMap::new(),
            agent_words: VecDeque::new(),
            checklist_changed: true,
        }
    }

    /// Declares the call's tracks (from the start message). Without it the coach learns them from
    /// the events it sees.
    pub fn set_tracks(&mut self, tracks: &[Track]) {
        for t in tracks {
            self.tracks_seen[slot(*t)] = true;
        }
    }

    /// Agent and customer on separate tracks, and no mixed track.
    pub fn two_tracks(&self) -> bool {
        self.tracks_seen[0] && self.tracks_seen[1] && !self.tracks_seen[2]
    }

    pub fn playbook(&self) -> &Arc<Playbook> {
        &self.playbook
    }

    /// Voice activity on one track: speech started (`speaking`) or ended at `at_ms`.
    pub fn on_voice(&mut self, track: Track, speaking: bool, at_ms: u64) -> Vec<Hint> {
        self.tracks_seen[slot(track)] = true;
        // Tracks have their own clocks; an event a little behind another track's is taken as now.
        let t = at_ms.max(self.voice.swept_ms);
        self.voice.sweep(t);
        self.now_ms = self.now_ms.max(t);
        let v = &mut self.voice;
        let i = slot(track);
        match (speaking, v.speaking[i]) {
            (true, None) => {
                v.speaking[i] = Some(t);
                v.started = true;
                v.silent_since = None;
                if track == Track::Agent {
                    let new_run = v.run_start.is_none()
                        || v.agent_last_end
                            .is_some_and(|e| t.saturating_sub(e) > MONOLOGUE_PAUSE_MS);
                    if new_run {
                        v.run_start = Some(t);
                    }
                    v.agent_last_end = None;
                    if v.is_speaking(Track::Customer) {
                        v.barge_ins.push_back((t, None));
                    }
                }
            }
            (false, Some(start)) => {
                v.speaking[i] = None;
                v.total_ms[i] += t.saturating_sub(start);
                v.intervals.push_back(Interval {
                    track,
                    start,
                    end: t,
                });
                match track {
                    Track::Agent => {
                        v.agent_last_end = Some(t);
                        if let Some(rs) = v.run_start {
                            v.longest_run_ms = v.longest_run_ms.max(t.saturating_sub(rs));
                        }
                    }
                    Track::Customer => {
                        v.customer_last_end = Some(t);
                        if t.saturating_sub(start) >= CUSTOMER_TURN_MS {
                            v.run_start = None;
                        }
                    }
                    Track::Mixed => {}
                }
                if matches!(track, Track::Agent | Track::Customer) {
                    if let Some(last) = v.barge_ins.back_mut() {
                        if last.1.is_none() {
                            last.1 = Some(t);
                        }
                    }
                }
                if !v.anyone_speaking() {
                    v.silent_since = Some(t);
                }
            }
            // Repeated start or end: nothing changes.
            _ => {}
        }
        self.prune(t);
        self.time_rules(t)
    }

    /// A partial transcript: only phrase rules marked `on_partial` and checklist items look at it,
    /// and only at words that will not change (the last word of an unfinished partial may still
    /// grow: "price" → "priceless").
    pub fn on_partial(&mut self, transcript: &Transcript, at_ms: u64) -> Vec<Hint> {
        self.tracks_seen[slot(transcript.track)] = true;
        self.now_ms = self.now_ms.max(at_ms);
        let trimmed = transcript.text.trim_end();
        let settled = if trimmed.ends_with(['.', '?', '!']) {
            trimmed
        } else {
            trimmed
                .rsplit_once(char::is_whitespace)
                .map_or("", |(head, _)| head)
        };
        let text = normalize_text(settled);
        self.text_rules(transcript, &text, true, at_ms)
    }

    /// A final transcript with its sentiment (when the sentiment actor answered).
    pub fn on_final(
        &mut self,
        transcript: &Transcript,
        sentiment: Option<SentimentScore>,
        at_ms: u64,
    ) -> Vec<Hint> {
        self.tracks_seen[slot(transcript.track)] = true;
        self.now_ms = self.now_ms.max(at_ms);
        let now = self.now_ms;
        let text = normalize_text(&transcript.text);
        let mut hints = self.text_rules(transcript, &text, false, now);

        let words = text.split_whitespace().count();
        if transcript.track == Track::Agent && words > 0 {
            let dur = transcript.end_ms.saturating_sub(transcript.start_ms);
            self.agent_words.push_back((transcript.end_ms, words, dur));
        }
        let question = is_question(&transcript.text, &text);
        let two_tracks = self.two_tracks();
        let playbook = Arc::clone(&self.playbook);
        for (ri, rule) in playbook.rules.iter().enumerate() {
            match rule.trigger {
                Trigger::SentimentDrop {
                    drop,
                    below,
                    min_utterances,
                } => {
                    let Some(score) = sentiment else { continue };
                    if !rule.speaker.matches(transcript.track) {
                        continue;
                    }
                    let st = &mut self.rules[ri];
                    let trend = st.trend.push(score.compound);
                    st.peak = st.peak.max(trend);
                    if st.trend.len() >= min_utterances && st.peak - trend >= drop && trend <= below
                    {
                        let reason = format!(
                            "{} sentiment fell from {:+.2} to {:+.2}",
                            speaker_name(rule.speaker),
                            st.peak,
                            trend
                        );
                        if let Some(h) = self.fire(ri, now, reason, vec![transcript.utterance_id]) {
                            // A new hint needs a new fall from here.
                            self.rules[ri].peak = trend;
                            hints.push(h);
                        }
                    }
                }
                Trigger::Pace {
                    max_wpm,
                    window_ms,
                    min_words,
                } if two_tracks && transcript.track == Track::Agent => {
                    if let Some(wpm) = self.agent_wpm(window_ms, min_words) {
                        if wpm > max_wpm {
                            let reason =
                                format!("agent at {wpm:.0} words per minute (limit {max_wpm:.0})");
                            if let Some(h) =
                                self.fire(ri, now, reason, vec![transcript.utterance_id])
                            {
                                hints.push(h);
                            }
                        }
                    }
                }
                Trigger::QuestionUnanswered { .. }
                    if two_tracks && question && transcript.track == Track::Customer =>
                {
                    self.rules[ri].question = Some((transcript.utterance_id, transcript.end_ms));
                }
                _ => {}
            }
        }
        hints.extend(self.time_rules(now));
        hints
    }

    /// Rules that fire on elapsed time (monologue, dead air, talk ratio, interruptions, question
    /// unanswered, checklist deadlines). Call about every 250 ms with the call's audio clock.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Hint> {
        let t = now_ms.max(self.voice.swept_ms);
        self.voice.sweep(t);
        self.now_ms = self.now_ms.max(t);
        self.prune(t);
        self.time_rules(self.now_ms)
    }

    /// The agent's verdict on a hint. "Not useful" silences that hint's rule for the rest of the
    /// call. Answers whether the hint was one of this call's.
    pub fn feedback(&mut self, hint_id: Uuid, useful: bool) -> bool {
        let Some(&ri) = self.hint_rules.get(&hint_id) else {
            return false;
        };
        if !useful && !self.rules[ri].dismissed {
            self.rules[ri].dismissed = true;
            DISMISSED.inc();
        }
        true
    }

    /// Whether a rule has been silenced by a dismissal.
    pub fn is_dismissed(&self, rule_id: &str) -> bool {
        self.playbook
            .rules
            .iter()
            .position(|r| r.id == rule_id)
            .is_some_and(|i| self.rules[i].dismissed)
    }

    pub fn talk_stats(&self) -> TalkStats {
        let v = &self.voice;
        let now = self.now_ms.max(v.swept_ms);
        let open = |track: Track| v.speaking[slot(track)].map_or(0, |s| now.saturating_sub(s));
        let mixed = v.total_ms[2] + open(Track::Mixed);
        let agent_ms = v.total_ms[0] + open(Track::Agent) + mixed;
        let customer_ms = v.total_ms[1] + open(Track::Customer) + mixed;
        let total = agent_ms + customer_ms;
        let agent_share = if total == 0 {
            0.5
        } else {
            agent_ms as f32 / total as f32
        };
        let current_run = v.current_run(now).map_or(0, |(_, len)| len);
        TalkStats {
            agent_ms,
            customer_ms,
            agent_share,
            overlap_ms: v.overlap_ms,
            longest_agent_monologue_ms: v.longest_run_ms.max(current_run),
            silence_ms: v.silence_ms,
            agent_wpm: self.agent_wpm(WPM_STATS_WINDOW_MS, 1),
        }
    }

    /// The checklist in playbook order.
    pub fn checklist(&self) -> Vec<ChecklistItem> {
        self.playbook
            .rules
            .iter()
            .zip(&self.rules)
            .filter_map(|(r, st)| match &r.trigger {
                Trigger::Checklist { label, due_ms, .. } => Some(ChecklistItem {
                    id: r.id.clone(),
                    label: label.clone(),
                    done: st.done,
                    due_ms: *due_ms,
                }),
                _ => None,
            })
            .collect()
    }

    /// The checklist if it changed since the last call of this method (the first call always
    /// answers it, so the overlay can draw it).
    pub fn take_checklist_update(&mut self) -> Option<Vec<ChecklistItem>> {
        std::mem::take(&mut self.checklist_changed).then(|| self.checklist())
    }

    fn agent_wpm(&self, window_ms: u64, min_words: usize) -> Option<f32> {
        let last_end = self.agent_words.back()?.0;
        let from = last_end.saturating_sub(window_ms);
        let (words, ms) = self
            .agent_words
            .iter()
            .rev()
            .take_while(|(end, _, _)| *end >= from)
            .fold((0usize, 0u64), |(w, d), (_, words, dur)| {
                (w + words, d + dur)
            });
        // Under a second of speech gives no meaningful rate.
        (words >= min_words && ms >= 1000).then(|| words as f32 * 60_000.0 / ms as f32)
    }

    fn prune(&mut self, now: u64) {
        let keep_from = now.saturating_sub(self.history_ms);
        while self
            .voice
            .intervals
            .front()
            .is_some_and(|iv| iv.end < keep_from)
        {
            self.voice.intervals.pop_front();
        }
        while self
            .voice
            .barge_ins
            .front()
            .is_some_and(|(s, e)| e.is_some() && *s < keep_from)
        {
            self.voice.barge_ins.pop_front();
        }
        while self
            .agent_words
            .front()
            .is_some_and(|(end, _, _)| *end < keep_from)
        {
            self.agent_words.pop_front();
        }
    }

    fn text_rules(&mut self, tr: &Transcript, text: &str, partial: bool, now: u64) -> Vec<Hint> {
        let mut hints = Vec::new();
        if text.is_empty() {
            return hints;
        }
        let playbook = Arc::clone(&self.playbook);
        for (ri, rule) in playbook.rules.iter().enumerate() {
            if !rule.speaker.matches(tr.track) {
                continue;
            }
            match &rule.trigger {
                Trigger::Phrase {
                    matcher,
                    on_partial,
                } => {
                    if (partial && !on_partial) || self.fired_for.contains(&(ri, tr.utterance_id)) {
                        continue;
                    }
                    let Some(found) = matcher.find(text) else {
                        continue;
                    };
                    let reason = format!("{} said \"{found}\"", tr.track);
                    if let Some(h) = self.fire(ri, now, reason, vec![tr.utterance_id]) {
                        self.fired_for.insert((ri, tr.utterance_id));
                        hints.push(h);
                    }
                }
                Trigger::Checklist { matcher, .. }
                    if !self.rules[ri].done && matcher.find(text).is_some() =>
                {
                    self.rules[ri].done = true;
                    self.checklist_changed = true;
                }
                _ => {}
            }
        }
        hints
    }

    fn time_rules(&mut self, now: u64) -> Vec<Hint> {
        self.voice.end_run_if_over(now);
        let mut hints = Vec::new();
        let two_tracks = self.two_tracks();
        let playbook = Arc::clone(&self.playbook);
        for (ri, rule) in playbook.rules.iter().enumerate() {
            if rule.trigger.needs_two_tracks() && !two_tracks {
                continue;
            }
            let hint = match rule.trigger {
                Trigger::TalkRatio {
                    max_share,
                    window_ms,
                    min_speech_ms,
                } => {
                    let from = now.saturating_sub(window_ms);
                    let agent = self.voice.speech_between(Track::Agent, from, now);
                    let customer = self.voice.speech_between(Track::Customer, from, now);
                    let total = agent + customer;
                    let share = agent as f32 / total.max(1) as f32;
                    if total >= min_speech_ms && share > max_share {
                        let reason = format!(
                            "agent spoke {:.0}% of the last {} s",
                            share * 100.0,
                            window_ms / 1000
                        );
                        self.fire(ri, now, reason, Vec::new())
                    } else {
                        None
                    }
                }
                Trigger::Monologue { max_ms } => match self.voice.current_run(now) {
                    Some((start, len))
                        if len >= max_ms && self.rules[ri].episode != Some(start) =>
                    {
                        let reason = format!("agent has held the floor for {} s", len / 1000);
                        let h = self.fire(ri, now, reason, Vec::new());
                        if h.is_some() {
                            self.rules[ri].episode = Some(start);
                        }
                        h
                    }
                    _ => None,
                },
                Trigger::Interruption {
                    min_overlap_ms,
                    count,
                    window_ms,
                } => {
                    let from = now.saturating_sub(window_ms);
                    let after = self.rules[ri].counted_until;
                    let qualifying: Vec<u64> = self
                        .voice
                        .barge_ins
                        .iter()
                        .filter(|(s, _)| *s >= from && after.is_none_or(|a| *s > a))
                        .filter(|(s, e)| e.unwrap_or(now).saturating_sub(*s) >= min_overlap_ms)
                        .map(|(s, _)| *s)
                        .collect();
                    if qualifying.len() >= count {
                        let reason = format!(
                            "agent talked over the customer {} times in {} s",
                            qualifying.len(),
                            window_ms / 1000
                        );
                        let h = self.fire(ri, now, reason, Vec::new());
                        if h.is_some() {
                            self.rules[ri].counted_until = qualifying.last().copied();
                        }
                        h
                    } else {
                        None
                    }
                }
                Trigger::DeadAir { max_ms } => match self.voice.silent_since {
                    Some(gap)
                        if self.voice.started
                            && !self.voice.anyone_speaking()
                            && now.saturating_sub(gap) >= max_ms
                            && self.rules[ri].episode != Some(gap) =>
                    {
                        let reason = format!("{} s of silence", now.saturating_sub(gap) / 1000);
                        let h = self.fire(ri, now, reason, Vec::new());
                        if h.is_some() {
                            self.rules[ri].episode = Some(gap);
                        }
                        h
                    }
                    _ => None,
                },
                Trigger::QuestionUnanswered { within_ms } => {
                    let Some((utt, asked_end)) = self.rules[ri].question else {
                        continue;
                    };
                    let answered =
                        self.voice.speech_between(Track::Agent, asked_end, now) >= MIN_ANSWER_MS;
                    let customer_still = self.voice.is_speaking(Track::Customer);
                    let base = self
                        .voice
                        .customer_last_end
                        .map_or(asked_end, |e| e.max(asked_end));
                    if answered {
                        self.rules[ri].question = None;
                        None
                    } else if !customer_still && now.saturating_sub(base) >= within_ms {
                        self.rules[ri].question = None;
                        let reason = format!(
                            "customer question waiting {} s for an answer",
                            now.saturating_sub(base) / 1000
                        );
                        self.fire(ri, now, reason, vec![utt])
                    } else {
                        None
                    }
                }
                Trigger::Checklist {
                    due_ms: Some(due), ..
                } if !self.rules[ri].done && now >= due => {
                    let reason = format!("not said in the first {} s", due / 1000);
                    self.fire(ri, now, reason, Vec::new())
                }
                _ => None,
            };
            hints.extend(hint);
        }
        hints
    }

    /// Makes a hint from rule `ri` unless the rule is dismissed, capped or cooling down.
    fn fire(
        &mut self,
        ri: usize,
        now: u64,
        reason: String,
        evidence: Vec<UtteranceId>,
    ) -> Option<Hint> {
        let rule = &self.playbook.rules[ri];
        let st = &mut self.rules[ri];
        if st.dismissed || st.fired >= rule.max_per_call {
            return None;
        }
        if st
            .last_fired_ms
            .is_some_and(|last| now < last.saturating_add(rule.cooldown_ms))
        {
            return None;
        }
        st.fired += 1;
        st.last_fired_ms = Some(now);
        let hint = Hint {
            id: Uuid::now_v7(),
            rule: rule.id.clone(),
            kind: rule.hint,
            priority: rule.priority,
            title: rule.title.clone(),
            body: rule.body.clone(),
            reason,
            evidence,
            at_ms: now,
        };
        self.hint_rules.insert(hint.id, ri);
        HINTS_BY_KIND
            .with_label_values(&[hint_kind_name(rule.hint)])
            .inc();
        Some(hint)
    }
}

fn speaker_name(s: Speaker) -> &'static str {
    match s {
        Speaker::Agent => "agent",
        Speaker::Customer => "customer",
        Speaker::Any => "speaker",
    }
}

fn hint_kind_name(k: HintKind) -> &'static str {
    match k {
        HintKind::Objection => "objection",
        HintKind::BuyingSignal => "buying_signal",
        HintKind::SentimentDrop => "sentiment_drop",
        HintKind::TalkRatio => "talk_ratio",
        HintKind::Monologue => "monologue",
        HintKind::Interruption => "interruption",
        HintKind::DeadAir => "dead_air",
        HintKind::Pace => "pace",
        HintKind::QuestionUnanswered => "question_unanswered",
        HintKind::Checklist => "checklist",
        HintKind::Whisper => "whisper",
    }
}

/// Words a spoken question usually opens with, for transcripts that lost their "?".
const QUESTION_OPENERS: &[&str] = &[
    "what", "how", "when", "where", "why", "who", "which", "can", "could", "do", "does", "did",
    "is", "are", "will", "would", "should",
];

fn is_question(raw: &str, normalized: &str) -> bool {
    if raw.trim_end().ends_with('?') {
        return true;
    }
    let mut words = normalized.split_whitespace();
    // Three words at least: "is it" alone is more likely a backchannel than a question.
    words.next().is_some_and(|w| QUESTION_OPENERS.contains(&w)) && words.count() >= 2
}
