// Supervisor dashboard: a live table of every call in the token's scope fed by the `/v1/live`
// WebSocket, a detail panel for one call (transcript, sentiment, talk ratio, score, hints,
// whisper) and a history page (`#/history`) read from the REST API.
//
// Rendering is batched: messages only change state and mark calls dirty; one
// requestAnimationFrame pass updates the DOM of dirty rows and of the open call. That keeps 50
// busy calls cheap and lets the lag probe measure message → painted frame.

import {
  takeToken, storeToken, forgetToken, claimsOf, isExpired, wsUrl, LiveSocket, LagProbe, refusalStatus,
  fmtDuration, fmtPct, fmtSigned, sentimentWord, h, svg,
} from '/shared/live.js';

// ---- policy numbers -------------------------------------------------------------------------

// Customer sentiment alert: the moving-average trend below −0.2 is clearly negative (VADER's
// own neutral band is ±0.05), or a fall of 0.3 over the last few utterances even if still
// positive — a supervisor wants to see a call turning, not only one that has turned.
const SENTIMENT_ALERT_LEVEL = -0.2;
const SENTIMENT_ALERT_DROP = 0.3;
const SENTIMENT_DROP_WINDOW = 4;
// Points kept per speaker for the sparkline: about the last 10 minutes of a lively call.
const SENTIMENT_POINTS = 120;
// Transcript lines kept per live call in the page; older lines stay in the store (history).
const TRANSCRIPT_LINES = 400;
// Hints kept per live call in the page.
const HINTS_KEPT = 100;
// Contributions shown next to the score: the five that moved it most.
const TOP_CONTRIBUTIONS = 5;
// An ended call stays in the table (greyed) this long so a supervisor sees how it ended.
const ENDED_LINGER_MS = 120000;
// While a live call is open and some of its hints have no feedback yet, its REST record is
// re-read this often to pick the feedback up (the overlay sends it to the server, not to the
// live feed). Each read is an audited transcript read, so not more often than a supervisor
// would notice the difference.
const DETAIL_REFRESH_MS = 10000;
// Calls per history page (the API allows 1..=200).
const HISTORY_PAGE = 100;
// Rows re-sort at most this often when the order depends on live values (alerts, score), so the
// table does not jump under the supervisor's pointer on every event.
const RESORT_EVERY_TICKS = 5;
// The pipeline re-sends `backlog` each time transcription falls behind and says nothing when it
// catches up, so the alert shows for this long after the latest one (a few utterances' worth).
const BACKLOG_ALERT_MS = 15000;
// Alert badges shown in a table row (most severe first); the rest collapse into "+N" so a row
// stays one line high with 50 calls on screen. The detail panel lists them all.
const ROW_ALERTS = 2;
const ALERT_RANK = { bad: 0, warn: 1, info: 2 };
// Score change under one point is shown as flat.
const SCORE_FLAT = 0.01;

const SPEAKERS = { agent: 'Agent', customer: 'Customer', mixed: 'Call' };
const PRIORITY_WORD = { low: 'low', normal: 'normal', high: 'high', urgent: 'urgent' };

// ---- state ----------------------------------------------------------------------------------

let token = null;
let claims = null;
let socket = null;
const lag = new LagProbe();
const calls = new Map(); // call_id -> CallState
const dirty = new Set();
let orderDirty = true;
let selected = null; // call_id of the open detail panel
let frameRequested = false;
let detailTimer = null;
let everOpened = false;
let failedBeforeOpen = 0;
let ticks = 0;

window.__callcoach = { lag, calls }; // read by the browser test and handy in devtools

function newCall(summary) {
  return {
    id: summary.call_id,
    summary,
    startedAt: Date.parse(summary.started_at) || Date.now(),
    utterances: new Map(),
    sentiment: { agent: [], customer: [], mixed: [] },
    talk: null,
    score: Number.isFinite(summary.score) ? summary.score : null,
    prevScore: null,
    stage: summary.stage || null,
    contributions: [],
    hints: [],
    feedback: new Map(), // hint id -> true (useful) / false (dismissed)
    warnings: new Map(), // code -> message
    checklist: [],
    clockMs: 0, // call time (ms since start) last seen on an event ...
    clockWall: 0, // ... and the Date.now() when it was seen
    ended: false,
    endedAt: 0,
    endedReason: '',
    row: null,
    trNodes: new Map(), // utterance id -> <li>
    // Bumped when a part of the detail panel has something new to show.
    v: { score: 0, talk: 0, sentiment: 0, hints: 0 },
  };
}

// ---- messages -------------------------------------------------------------------------------

function onMessage(msg, at) {
  switch (msg.type) {
    case 'snapshot': {
      const seen = new Set();
      for (const s of msg.calls || []) {
        if (!s || !s.call_id) continue;
        seen.add(s.call_id);
        const existing = calls.get(s.call_id);
        if (existing) {
          existing.summary = s;
          existing.ended = false;
        } else {
          calls.set(s.call_id, newCall(s));
        }
        dirty.add(s.call_id);
      }
      // After a reconnect, calls that ended while we were away are no longer in the snapshot.
      for (const c of calls.values()) if (!seen.has(c.id) && !c.ended) markEnded(c, 'ended');
      orderDirty = true;
      break;
    }
    case 'call_started': {
      const s = msg.call;
      if (!s || !s.call_id) return;
      if (!calls.has(s.call_id)) calls.set(s.call_id, newCall(s));
      else calls.get(s.call_id).summary = s;
      dirty.add(s.call_id);
      orderDirty = true;
      break;
    }
    case 'call_event': {
      const c = calls.get(msg.call_id);
      if (!c || !msg.event) return;
      applyEvent(c, msg.event);
      dirty.add(c.id);
      break;
    }
    case 'warning':
      // The node is shutting down; the socket closes next and reconnects (to another node).
      if (msg.code === 'shutting_down') setText(document.getElementById('conn'), 'server restarting…');
      return;
    case 'call_ended': {
      const c = calls.get(msg.call_id);
      if (!c) return;
      markEnded(c, c.endedReason || msg.reason || 'ended');
      dirty.add(c.id);
      break;
    }
    default:
      return;
  }
  lag.arrived(at);
  scheduleRender();
}

function markEnded(c, reason) {
  c.ended = true;
  c.endedAt = Date.now();
  c.endedReason = reason;
  dirty.add(c.id);
  orderDirty = true;
}

function applyEvent(c, ev) {
  switch (ev.type) {
    case 'partial':
    case 'final': {
      const isFinal = ev.type === 'final';
      const cur = c.utterances.get(ev.utterance_id);
      // Finals are never revised; a partial only replaces an older partial.
      if (cur && (cur.final || (!isFinal && cur.revision > ev.revision))) return;
      c.utterances.set(ev.utterance_id, {
        id: ev.utterance_id, track: ev.track, text: ev.text, final: isFinal,
        revision: ev.revision, start_ms: ev.start_ms, end_ms: ev.end_ms, changed: true,
      });
      if (c.utterances.size > TRANSCRIPT_LINES) {
        const oldest = c.utterances.keys().next().value;
        c.utterances.delete(oldest);
        const node = c.trNodes.get(oldest);
        if (node) node.remove();
        c.trNodes.delete(oldest);
      }
      seeCallTime(c, ev.end_ms);
      if (isFinal) c.warnings.delete('transcription_unavailable');
      break;
    }
    case 'sentiment': {
      const list = c.sentiment[ev.track] || (c.sentiment[ev.track] = []);
      list.push({ compound: ev.compound, trend: ev.trend });
      if (list.length > SENTIMENT_POINTS) list.shift();
      c.v.sentiment += 1;
      break;
    }
    case 'talk':
      c.talk = ev;
      c.v.talk += 1;
      break;
    case 'score':
      if (c.score !== null && Math.abs(ev.score - c.score) >= 1e-9) c.prevScore = c.score;
      c.score = ev.score;
      c.stage = ev.stage;
      c.contributions = ev.contributions || [];
      c.v.score += 1;
      break;
    case 'hint':
      c.hints.push(ev);
      if (c.hints.length > HINTS_KEPT) c.hints.shift();
      seeCallTime(c, ev.at_ms);
      c.v.hints += 1;
      break;
    case 'feedback':
      if (ev.hint_id) c.feedback.set(ev.hint_id, !!ev.useful);
      c.v.hints += 1;
      break;
    case 'checklist':
      c.checklist = Array.isArray(ev.items) ? ev.items : [];
      break;
    case 'warning':
    case 'error':
      if (isResumed(ev)) c.warnings.delete('transcription_unavailable');
      else c.warnings.set(ev.code || 'warning', { message: ev.message || ev.code, at: Date.now() });
      break;
    case 'ended':
      markEnded(c, ev.reason || 'ended');
      break;
    default:
      break;
  }
}

// ---- derived signals ------------------------------------------------------------------------

/// Call time now (ms since the call started): the latest time an event carried, carried forward
/// by the wall clock; before any such event, wall time since `started_at`.
function callNowMs(c) {
  if (c.clockWall) return c.clockMs + (Date.now() - c.clockWall);
  return Date.now() - c.startedAt;
}

function seeCallTime(c, t) {
  if (!Number.isFinite(t)) return;
  if (!c.clockWall || t > callNowMs(c)) {
    c.clockMs = t;
    c.clockWall = Date.now();
  }
}

function overdueItems(c) {
  const now = callNowMs(c);
  return c.checklist.filter((i) => i && !i.done && Number.isFinite(i.due_ms) && now > i.due_ms);
}

/// Transcription came back: a `transcription_resumed` code, or the pipeline's current form, a
/// `transcription_unavailable` warning whose message says it resumed.
function isResumed(ev) {
  return ev.code === 'transcription_resumed'
    || (ev.code === 'transcription_unavailable' && /resumed/i.test(ev.message || ''));
}

function customerSeries(c) {
  return c.sentiment.customer.length ? c.sentiment.customer : c.sentiment.mixed;
}

function currentSentiment(c) {
  const s = customerSeries(c);
  if (s.length) return s[s.length - 1].trend;
  return Number.isFinite(c.summary.sentiment) ? c.summary.sentiment : null;
}

function alertsOf(c) {
  const out = [];
  if (c.ended) return out;
  const s = customerSeries(c);
  if (s.length) {
    const now = s[s.length - 1].trend;
    const window = s.slice(-SENTIMENT_DROP_WINDOW);
    const peak = Math.max(...window.map((p) => p.trend));
    if (now <= SENTIMENT_ALERT_LEVEL || peak - now >= SENTIMENT_ALERT_DROP) {
      out.push({ key: 'sentiment', text: 'Sentiment falling', level: 'warn' });
    }
  }
  const overdue = overdueItems(c);
  // Without checklist events, an important checklist hint is the only sign of a missed item.
  const overdueHint = !c.checklist.length && c.hints.some((hn) => hn.kind === 'checklist'
    && (hn.priority === 'high' || hn.priority === 'urgent'));
  if (overdue.length || overdueHint) {
    const what = overdue.length ? `: ${overdue.map((i) => i.label || i.id).join(', ')}` : '';
    out.push({ key: 'compliance', text: 'Compliance overdue', detail: `Compliance overdue${what}`, level: 'bad' });
  }
  const urgent = c.hints.length && c.hints[c.hints.length - 1].priority === 'urgent';
  if (urgent) out.push({ key: 'urgent', text: 'Urgent hint', level: 'bad' });
  const backlog = c.warnings.get('backlog');
  if (c.warnings.has('transcription_unavailable')) {
    out.push({ key: 'asr', text: 'Transcripts paused', level: 'info' });
  } else if (backlog && Date.now() - backlog.at < BACKLOG_ALERT_MS) {
    out.push({ key: 'backlog', text: 'Transcripts delayed', level: 'info' });
  }
  return out;
}

function scoreTrend(c) {
  if (c.score === null || c.prevScore === null) return { arrow: '', word: '' };
  const d = c.score - c.prevScore;
  if (Math.abs(d) < SCORE_FLAT) return { arrow: '→', word: 'steady', cls: 'flat' };
  return d > 0
    ? { arrow: '▲', word: `up ${Math.round(d * 100)}`, cls: 'up' }
    : { arrow: '▼', word: `down ${Math.round(-d * 100)}`, cls: 'down' };
}

// ---- rendering ------------------------------------------------------------------------------

function scheduleRender() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(render);
}

function render() {
  frameRequested = false;
  const tbody = document.getElementById('calls-body');
  for (const id of dirty) {
    const c = calls.get(id);
    if (c) renderRow(c);
  }
  if (orderDirty) {
    orderDirty = false;
    const sorted = sortCalls([...calls.values()]);
    // appendChild moves existing nodes; only touch the DOM where the order changed.
    let prev = null;
    for (const c of sorted) {
      const expected = prev ? prev.nextSibling : tbody.firstChild;
      if (expected !== c.row) tbody.insertBefore(c.row, expected);
      prev = c.row;
    }
    const live = sorted.filter((c) => !c.ended).length;
    document.getElementById('call-count').textContent = `(${live})`;
    document.getElementById('empty').hidden = calls.size > 0;
  }
  if (selected && dirty.has(selected)) renderDetail(calls.get(selected));
  dirty.clear();
  lag.rendered();
}

function sortCalls(list) {
  const by = document.getElementById('sort').value;
  const cmp = {
    alerts: (a, b) => (a.ended - b.ended) || (alertsOf(b).length - alertsOf(a).length)
      || (a.startedAt - b.startedAt),
    started: (a, b) => (a.ended - b.ended) || (a.startedAt - b.startedAt),
    score: (a, b) => (a.ended - b.ended) || ((b.score ?? -1) - (a.score ?? -1)),
    agent: (a, b) => (a.ended - b.ended)
      || String(a.summary.agent_id).localeCompare(String(b.summary.agent_id)),
  }[by] || (() => 0);
  return list.sort(cmp);
}

/// Sets an element's text only when it changed: writing the same text still costs a layout.
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/// Rebuilds an element's children only when what they show (`key`) changed, so the many events
/// that change nothing visible in a row (talk figures, sentiment of the agent) cost no layout.
function patch(el, key, build) {
  if (el.__key === key) return;
  el.__key = key;
  const out = build();
  el.replaceChildren(...(Array.isArray(out) ? out : [out]));
}

function renderRow(c) {
  if (!c.row) {
    const open = () => openCall(c.id);
    c.row = h('tr', { 'data-call': c.id, onclick: open });
    c.cells = {
      agent: h('td', {}),
      lead: h('td', {}),
      dur: h('td', { class: 'num mono' }),
      sent: h('td', {}),
      score: h('td', { class: 'num' }),
      hint: h('td', { class: 'hintcell col-hint' }),
      alerts: h('td', {}),
    };
    c.openBtn = h('button', { type: 'button', class: 'linkish', onclick: (e) => { e.stopPropagation(); open(); } });
    c.cells.agent.append(c.openBtn);
    c.row.append(...Object.values(c.cells));
  }
  const s = c.summary;
  const alerts = alertsOf(c);
  c.row.classList.toggle('ended', c.ended);
  c.row.classList.toggle('alerting', alerts.some((a) => a.level === 'bad' || a.level === 'warn'));
  c.row.classList.toggle('selected', selected === c.id);
  patch(c.cells.agent, `${s.agent_id}|${s.lead_id}`, () => {
    c.openBtn.textContent = s.agent_id || '(unknown agent)';
    c.openBtn.setAttribute('aria-label', `Open call of ${s.agent_id}, lead ${s.lead_id || 'unknown'}`);
    return c.openBtn;
  });
  setText(c.cells.lead, s.lead_id || '–');
  c.cells.lead.title = s.team ? `team ${s.team}` : '';
  setText(c.cells.dur, durationText(c));

  const sent = currentSentiment(c);
  patch(c.cells.sent, Number.isFinite(sent) ? sent.toFixed(2) : '', () => sentimentChip(sent));

  const t = scoreTrend(c);
  patch(c.cells.score, `${c.score}|${t.word}`, () => [
    c.score === null ? '–' : h('span', { class: 'score' }, String(Math.round(c.score * 100))),
    t.arrow ? h('span', { class: `trend ${t.cls}`, title: t.word, 'aria-label': t.word }, ` ${t.arrow}`) : '',
  ]);

  const last = c.hints[c.hints.length - 1];
  patch(c.cells.hint, last ? last.id : `summary|${s.last_hint}`, () => (last
    ? h('span', { class: `prio prio-${last.priority}`, title: last.reason || '' }, last.title)
    : s.last_hint ? h('span', { class: 'prio' }, s.last_hint) : h('span', { class: 'muted' }, '–')));

  const ranked = [...alerts].sort((a, b) => ALERT_RANK[a.level] - ALERT_RANK[b.level]);
  const shown = ranked.slice(0, ROW_ALERTS);
  const rest = ranked.slice(ROW_ALERTS);
  const alertKey = c.ended ? `ended|${c.endedReason}` : ranked.map((a) => a.detail || a.text).join('|');
  patch(c.cells.alerts, alertKey, () => (c.ended
    ? [h('span', { class: 'badge muted' }, c.endedReason || 'ended')]
    : shown.map((a) => h('span', { class: `badge ${a.level}`, title: a.detail || '' }, a.text))
      .concat(rest.length ? [h('span', {
        class: 'badge muted', title: rest.map((a) => a.detail || a.text).join(', '),
        'aria-label': `and ${rest.map((a) => a.text).join(', ')}`,
      }, `+${rest.length}`)] : [])));
}

function durationText(c) {
  const end = c.ended ? c.endedAt : Date.now();
  return fmtDuration(end - c.startedAt);
}

function sentimentChip(v) {
  if (!Number.isFinite(v)) return h('span', { class: 'muted' }, '–');
  const word = sentimentWord(v);
  return h('span', { class: `chip sent-${word.replace(' ', '-')}`, title: `customer trend ${fmtSigned(v)}` },
    `${word} ${fmtSigned(v, 2)}`);
}

// Ticks durations once a second and drops ended calls after they have lingered.
function tick() {
  const now = Date.now();
  ticks += 1;
  if (document.getElementById('sort').value !== 'started' && ticks % RESORT_EVERY_TICKS === 0) orderDirty = true;
  for (const c of [...calls.values()]) {
    if (c.ended && now - c.endedAt > ENDED_LINGER_MS && c.id !== selected) {
      if (c.row) c.row.remove();
      calls.delete(c.id);
      orderDirty = true;
      continue;
    }
    if (c.cells && !c.ended) setText(c.cells.dur, durationText(c));
    // A checklist deadline passes, or a backlog alert runs out, without any event: re-evaluate
    // the alerts of calls that have one.
    if (!c.ended && (c.warnings.has('backlog') || c.checklist.some((i) => !i.done && Number.isFinite(i.due_ms)))) {
      dirty.add(c.id);
      scheduleRender();
    }
  }
  if (orderDirty) scheduleRender();
  if (selected && calls.has(selected)) {
    setText(document.getElementById('detail-sub'), detailSub(calls.get(selected)));
  }
  const st = lag.stats();
  document.getElementById('lag').textContent = st.count
    ? `paint lag p95 ${st.p95.toFixed(0)} ms over ${st.count} updates` : '';
}

// ---- detail panel ---------------------------------------------------------------------------

function openCall(id) {
  const c = calls.get(id);
  if (!c) return;
  const prev = selected && calls.get(selected);
  selected = id;
  if (prev) { prev.trNodes = new Map(); dirty.add(prev.id); }
  for (const u of c.utterances.values()) u.changed = true;
  c.trNodes = new Map();
  shownDetail = { id: null };
  document.getElementById('transcript').replaceChildren();
  document.getElementById('whisper-status').textContent = '';
  document.getElementById('detail').hidden = false;
  renderDetail(c);
  renderRow(c);
  document.getElementById('detail-title').focus?.();
  refreshDetail(true);
  clearInterval(detailTimer);
  detailTimer = setInterval(() => refreshDetail(false), DETAIL_REFRESH_MS);
}

function closeCall() {
  const c = selected && calls.get(selected);
  selected = null;
  clearInterval(detailTimer);
  document.getElementById('detail').hidden = true;
  if (c) { renderRow(c); c.openBtn.focus(); }
}

function detailSub(c) {
  const s = c.summary;
  const parts = [`lead ${s.lead_id || '–'}`];
  if (s.team) parts.push(`team ${s.team}`);
  parts.push(c.ended ? `ended after ${durationText(c)}` : `live ${durationText(c)}`);
  parts.push(`call ${c.id}`);
  return parts.join(' · ');
}

// Which versions of the open call's sections are on screen (see `v` in newCall).
let shownDetail = { id: null };

function renderDetail(c) {
  if (!c) return;
  if (shownDetail.id !== c.id) shownDetail = { id: c.id };
  setText(document.getElementById('detail-title'), c.summary.agent_id || 'Agent');
  document.getElementById('detail-title').setAttribute('tabindex', '-1');
  setText(document.getElementById('detail-sub'), detailSub(c));
  const alerts = alertsOf(c);
  patch(document.getElementById('detail-alerts'), alerts.map((a) => a.detail || a.text).join('|'),
    () => alerts.map((a) => h('span', { class: `badge ${a.level}` }, a.detail || a.text)));
  const fresh = (part) => {
    if (shownDetail[part] === c.v[part]) return false;
    shownDetail[part] = c.v[part];
    return true;
  };
  if (fresh('score')) renderScore(c);
  if (fresh('talk')) renderTalk(document.getElementById('talk-box'), c.talk);
  if (fresh('sentiment')) renderSparks(c);
  renderTranscript(c);
  if (fresh('hints')) renderHints(document.getElementById('hints'), c.hints, c.feedback);
  const wf = document.getElementById('whisper-send');
  wf.disabled = c.ended;
  document.getElementById('whisper-text').disabled = c.ended;
}

function renderScore(c) {
  const box = document.getElementById('score-box');
  if (c.score === null) {
    box.replaceChildren(h('p', { class: 'muted' }, 'No score yet.'));
    document.getElementById('contribs').replaceChildren();
    return;
  }
  const t = scoreTrend(c);
  box.replaceChildren(
    h('span', { class: 'big' }, String(Math.round(c.score * 100))),
    h('span', { class: 'of' }, '/100'),
    t.arrow ? h('span', { class: `trend ${t.cls}` }, ` ${t.arrow} ${t.word}`) : '',
    c.stage ? h('span', { class: 'stage' }, c.stage) : '',
  );
  const top = [...c.contributions]
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, TOP_CONTRIBUTIONS);
  const maxAbs = Math.max(0.01, ...top.map((x) => Math.abs(x.contribution)));
  document.getElementById('contribs').replaceChildren(...top.map((x) => {
    const w = (Math.abs(x.contribution) / maxAbs) * 50;
    const pos = x.contribution >= 0;
    return h('li', {},
      h('span', { class: 'feat' }, x.feature.replace(/_/g, ' ')),
      h('span', { class: 'cbar', 'aria-hidden': 'true' },
        h('span', { class: pos ? 'pos' : 'neg', style: `width:${w}%;${pos ? 'left:50%' : `left:${50 - w}%`}` })),
      h('span', { class: `cval ${pos ? 'up' : 'down'}` }, fmtSigned(x.contribution)));
  }));
}

function renderTalk(box, t) {
  if (!t) {
    box.replaceChildren(h('p', { class: 'muted' }, 'Nobody has spoken yet.'));
    return;
  }
  const a = Math.max(0, Math.min(1, t.agent_share));
  box.replaceChildren(
    h('div', {
      class: 'ratio', role: 'img',
      'aria-label': `Agent ${fmtPct(a)} of talk time, customer ${fmtPct(1 - a)}`,
    },
    h('span', { class: 'agent', style: `width:${a * 100}%` }),
    h('span', { class: 'customer', style: `width:${(1 - a) * 100}%` })),
    h('p', { class: 'legend' },
      h('span', { class: 'key agent' }), ` Agent ${fmtPct(a)} `,
      h('span', { class: 'key customer' }), ` Customer ${fmtPct(1 - a)}`),
    h('p', { class: 'small muted' },
      `longest monologue ${fmtDuration(t.longest_agent_monologue_ms)} · overlap ${fmtDuration(t.overlap_ms)}`
      + ` · silence ${fmtDuration(t.silence_ms)}`
      + (Number.isFinite(t.agent_wpm) ? ` · ${Math.round(t.agent_wpm)} wpm` : '')),
  );
}

const SPARK_W = 220;
const SPARK_H = 44;

function sparkline(points, label) {
  const n = points.length;
  const y = (v) => ((1 - (Math.max(-1, Math.min(1, v)) + 1) / 2) * (SPARK_H - 4) + 2).toFixed(1);
  const x = (i) => (n <= 1 ? SPARK_W : (i / (n - 1)) * SPARK_W).toFixed(1);
  const last = n ? points[n - 1].trend : null;
  const word = sentimentWord(last);
  const el = svg('svg', {
    viewBox: `0 0 ${SPARK_W} ${SPARK_H}`, width: SPARK_W, height: SPARK_H, class: 'spark', role: 'img',
    'aria-label': `${label} sentiment ${n ? `${word}, trend ${fmtSigned(last)}` : 'no data'}`,
  },
  svg('line', { x1: 0, x2: SPARK_W, y1: y(0), y2: y(0), class: 'zero' }));
  if (n) {
    el.append(svg('polyline', { points: points.map((p, i) => `${x(i)},${y(p.compound)}`).join(' '), class: 'raw' }));
    el.append(svg('polyline', { points: points.map((p, i) => `${x(i)},${y(p.trend)}`).join(' '), class: 'trendline' }));
    el.append(svg('circle', { cx: x(n - 1), cy: y(last), r: 3, class: 'dot' }));
  }
  return el;
}

function renderSparks(c) {
  const rows = [];
  for (const track of ['agent', 'customer', 'mixed']) {
    const pts = c.sentiment[track];
    if (track === 'mixed' && !pts.length) continue;
    const last = pts.length ? pts[pts.length - 1].trend : null;
    rows.push(h('div', { class: 'spark-row' },
      h('span', { class: 'spk' }, SPEAKERS[track]),
      sparkline(pts, SPEAKERS[track]),
      h('span', { class: 'val' }, pts.length ? fmtSigned(last) : '–')));
  }
  document.getElementById('spark-box').replaceChildren(...rows);
}

function transcriptLine(u) {
  return h('li', { class: `line ${u.track} ${u.final ? 'final' : 'partial'}`, 'data-utt': u.id },
    h('span', { class: 'at mono' }, fmtDuration(u.start_ms)),
    h('span', { class: 'who' }, SPEAKERS[u.track] || u.track),
    h('span', { class: 'text' }, u.text || '…'));
}

function renderTranscript(c) {
  const list = document.getElementById('transcript');
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const changed = [...c.utterances.values()].filter((u) => u.changed || !c.trNodes.has(u.id));
  changed.sort((a, b) => (a.start_ms - b.start_ms) || (a.id - b.id));
  for (const u of changed) {
    u.changed = false;
    const node = transcriptLine(u);
    node.setAttribute('aria-label', `${SPEAKERS[u.track] || u.track}${u.final ? '' : ' (still speaking)'}: ${u.text}`);
    const old = c.trNodes.get(u.id);
    if (old) { old.replaceWith(node); c.trNodes.set(u.id, node); continue; }
    c.trNodes.set(u.id, node);
    // Lines usually arrive in order; walk back from the end for the rare out-of-order one.
    let after = list.lastElementChild;
    while (after) {
      const au = c.utterances.get(Number(after.dataset.utt));
      if (!au || au.start_ms < u.start_ms || (au.start_ms === u.start_ms && au.id < u.id)) break;
      after = after.previousElementSibling;
    }
    if (after) after.after(node); else list.prepend(node);
  }
  if (stick) list.scrollTop = list.scrollHeight;
}

function renderHints(list, hints, feedback) {
  if (!hints.length) {
    list.replaceChildren(h('li', { class: 'muted' }, 'No hints yet.'));
    return;
  }
  list.replaceChildren(...[...hints].reverse().map((hn) => {
    const fb = feedback.has(hn.id) ? feedback.get(hn.id) : hn.feedback;
    const fbText = fb === true ? 'useful' : fb === false ? 'dismissed' : 'no feedback';
    return h('li', { class: `hint prio-${hn.priority}` },
      h('div', { class: 'hint-top' },
        h('span', { class: 'at mono' }, fmtDuration(hn.at_ms)),
        h('strong', {}, hn.kind === 'whisper' ? `Whisper: “${hn.body}”` : hn.title),
        h('span', { class: `badge prio-${hn.priority}` }, PRIORITY_WORD[hn.priority] || hn.priority),
        h('span', { class: `fb fb-${fbText.replace(' ', '-')}` }, fbText)),
      hn.reason && hn.kind !== 'whisper' ? h('p', { class: 'reason' }, hn.reason) : '');
  }));
}

/// Reads the call's REST record for hint feedback, when some hint is still without it.
async function refreshDetail(force) {
  const id = selected;
  const open = id && calls.get(id);
  if (!open) return;
  if (!force && !open.hints.some((hn) => !open.feedback.has(hn.id))) return;
  const res = await api(`/v1/calls/${encodeURIComponent(id)}`);
  const c = calls.get(id);
  if (!c || !res.ok) return;
  for (const hn of res.body.hints || []) {
    const useful = feedbackOf(hn);
    if (useful !== undefined && c.feedback.get(String(hn.id)) !== useful) {
      c.feedback.set(String(hn.id), useful);
      c.v.hints += 1;
    }
  }
  dirty.add(id);
  scheduleRender();
}

/// A stored hint's feedback: true (useful), false (dismissed), undefined (none yet).
function feedbackOf(hn) {
  return typeof hn.useful === 'boolean' ? hn.useful : undefined;
}

async function sendWhisper(ev) {
  ev.preventDefault();
  const input = document.getElementById('whisper-text');
  const status = document.getElementById('whisper-status');
  const text = input.value.trim();
  if (!selected || !text) return;
  status.textContent = 'Sending…';
  const res = await api(`/v1/calls/${encodeURIComponent(selected)}/whisper`, {
    method: 'POST', body: JSON.stringify({ text }),
  });
  if (res.ok) {
    status.textContent = `Sent: “${text}”`;
    input.value = '';
  } else {
    status.textContent = res.status === 403 ? 'Your role cannot whisper to this agent.'
      : res.status === 404 ? 'This call is no longer live.'
        : `Not sent: ${res.message}`;
  }
}

// ---- REST -----------------------------------------------------------------------------------

/// fetch() with the bearer token; never throws. `{ok, status, body, message}`.
async function api(path, init = {}) {
  try {
    const r = await fetch(path, {
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers || {}) },
    });
    let body = null;
    const text = await r.text();
    try { body = text ? JSON.parse(text) : null; } catch { body = null; }
    const err = body && (body.error || body);
    const message = (err && (err.message || err.code)) || r.statusText || `HTTP ${r.status}`;
    if (r.status === 401) onUnauthorized();
    return { ok: r.ok, status: r.status, body: body || {}, message };
  } catch (e) {
    return { ok: false, status: 0, body: {}, message: 'server unreachable' };
  }
}

function onUnauthorized() {
  showLogin('The server did not accept this token (expired or invalid). Paste a new one.');
}

// ---- history --------------------------------------------------------------------------------

function denied(res, what) {
  if (res.status === 403) return `Your role (${claims?.role || 'unknown'}) cannot see ${what}.`;
  if (res.status === 404) return `No such ${what}.`;
  return `Could not load ${what}: ${res.message}.`;
}

let historyRows = [];

/// `GET /v1/calls` (newest first, paged by `before`), or a lead's calls when the lead filter is
/// set; the agent filter narrows the page in the browser (the API pages by time only).
async function loadHistory(more = false) {
  const form = document.getElementById('history-filter');
  const agent = form.elements.agent_id.value.trim();
  const lead = form.elements.lead_id.value.trim();
  const q = new URLSearchParams({ limit: String(HISTORY_PAGE) });
  if (more && historyRows.length) q.set('before', historyRows[historyRows.length - 1].started_at);
  const path = lead ? `/v1/leads/${encodeURIComponent(lead)}/calls?${q}` : `/v1/calls?${q}`;
  const notice = document.getElementById('history-notice');
  const res = await api(path);
  const body = document.getElementById('history-body');
  if (!res.ok) {
    notice.textContent = denied(res, lead ? `the calls of lead ${lead}` : 'the call history');
    notice.hidden = false;
    body.replaceChildren();
    return;
  }
  notice.hidden = true;
  const page = Array.isArray(res.body) ? res.body : [];
  historyRows = more ? historyRows.concat(page) : page;
  document.getElementById('history-more').hidden = page.length < HISTORY_PAGE;
  const rows = agent ? historyRows.filter((r) => r.agent_id === agent) : historyRows;
  body.replaceChildren(...rows.map((r) => {
    const started = Date.parse(r.started_at);
    const ended = Date.parse(r.ended_at);
    const link = h('a', { href: `#/history/${encodeURIComponent(r.id)}` },
      Number.isFinite(started) ? new Date(started).toLocaleString() : r.id);
    return h('tr', { 'data-call': r.id },
      h('td', {}, link),
      h('td', {}, r.agent_id || '–'),
      h('td', {}, r.lead_id || '–'),
      h('td', { class: 'num mono' }, Number.isFinite(ended) ? fmtDuration(ended - started) : 'live'),
      h('td', {}, r.end_reason || (r.ended_at ? 'ended' : 'in progress')));
  }));
  if (!rows.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No calls match.')));
}

let historyCallWanted = null; // the call the history page shows; older answers are dropped

async function loadHistoryCall(id) {
  historyCallWanted = id;
  const box = document.getElementById('history-detail');
  const notice = document.getElementById('history-call-notice');
  const res = await api(`/v1/calls/${encodeURIComponent(id)}`);
  if (historyCallWanted !== id) return;
  if (!res.ok) {
    notice.textContent = denied(res, 'this call');
    notice.hidden = false;
    box.hidden = true;
    return;
  }
  notice.hidden = true;
  const { call, utterances = [], hints = [] } = res.body;
  if (!call) return;
  document.getElementById('hd-title').textContent = call.agent_id;
  const started = Date.parse(call.started_at);
  const ended = Date.parse(call.ended_at);
  const talk = call.talk_stats;
  document.getElementById('hd-sub').textContent = [
    `lead ${call.lead_id || '–'}`,
    Number.isFinite(started) ? new Date(started).toLocaleString() : '',
    Number.isFinite(ended) ? `${fmtDuration(ended - started)} (${call.end_reason || 'ended'})` : 'in progress',
    talk && Number.isFinite(talk.agent_share) ? `agent talk ${fmtPct(talk.agent_share)}` : '',
    `call ${call.id}`,
  ].filter(Boolean).join(' · ');

  document.getElementById('hd-transcript').replaceChildren(...(utterances.length
    ? utterances.map((u) => transcriptLine({ ...u, id: u.seq, final: true }))
    : [h('li', { class: 'muted' }, 'No transcript stored.')]));

  renderHints(document.getElementById('hd-hints'), hints.map((hn) => ({ ...hn, feedback: feedbackOf(hn) })), new Map());

  // The score timeline is the lead's score history, narrowed to this call.
  const scoreBox = document.getElementById('hd-score');
  if (!call.lead_id) {
    scoreBox.replaceChildren(h('p', { class: 'muted' }, 'This call has no lead, so no score.'));
  } else {
    const sres = await api(`/v1/leads/${encodeURIComponent(call.lead_id)}/scores?limit=200`);
    if (historyCallWanted !== id) return;
    if (!sres.ok) {
      scoreBox.replaceChildren(h('p', { class: 'muted' }, denied(sres, 'the score history')));
    } else {
      const events = (Array.isArray(sres.body) ? sres.body : [])
        .filter((e) => e.call_id === call.id)
        .reverse(); // the API answers newest first
      scoreBox.replaceChildren(scoreChart(events));
    }
  }
  box.hidden = false;
}

function scoreChart(all) {
  // Stage changes from outcomes carry no score; the chart plots scored updates only.
  const points = all.filter((p) => p && Number.isFinite(p.score));
  if (!points.length) return h('p', { class: 'muted' }, 'No score updates stored.');
  const W = 420; const H = 120; const P = 30;
  const ts = points.map((p, i) => {
    const t = Date.parse(p.created_at);
    return Number.isFinite(t) ? t : i;
  });
  const t0 = Math.min(...ts); const t1 = Math.max(...ts, t0 + 1);
  const x = (t) => P + ((t - t0) / (t1 - t0)) * (W - 2 * P);
  const y = (s) => H - P / 2 - s * (H - P);
  const line = points.map((p, i) => `${x(ts[i]).toFixed(1)},${y(p.score).toFixed(1)}`).join(' ');
  const last = points[points.length - 1];
  return svg('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img',
    'aria-label': `Score over the call: ${points.length} updates, from ${Math.round(points[0].score * 100)} to ${Math.round(last.score * 100)}`,
  },
  svg('line', { x1: P, x2: W - P, y1: y(0.5), y2: y(0.5), class: 'zero' }),
  svg('text', { x: 2, y: y(1) + 4, class: 'axis' }, document.createTextNode('100')),
  svg('text', { x: 2, y: y(0.5) + 4, class: 'axis' }, document.createTextNode('50')),
  svg('text', { x: 2, y: y(0) + 4, class: 'axis' }, document.createTextNode('0')),
  svg('polyline', { points: line, class: 'trendline' }),
  ...points.map((p, i) => svg('circle', { cx: x(ts[i]), cy: y(p.score), r: 2.5, class: 'dot' })));
}

// ---- routing, login, connection -------------------------------------------------------------

function route() {
  const hash = window.location.hash || '#/';
  const hist = hash.startsWith('#/history');
  document.getElementById('live').hidden = hist || !token;
  document.getElementById('history').hidden = !hist || !token;
  document.getElementById('nav-live').toggleAttribute('aria-current', !hist);
  document.getElementById('nav-history').toggleAttribute('aria-current', hist);
  if (hist) document.getElementById('nav-history').setAttribute('aria-current', 'page');
  else document.getElementById('nav-live').setAttribute('aria-current', 'page');
  if (!token) return;
  if (hist) {
    const id = decodeURIComponent(hash.slice('#/history/'.length));
    loadHistory();
    if (hash.startsWith('#/history/') && id) loadHistoryCall(id);
    else {
      historyCallWanted = null;
      document.getElementById('history-detail').hidden = true;
      document.getElementById('history-call-notice').hidden = true;
    }
  }
}

function setConn(state, detail) {
  const el = document.getElementById('conn');
  el.className = `conn ${state}`;
  const notice = document.getElementById('live-notice');
  if (state === 'open') {
    el.textContent = 'live';
    everOpened = true;
    failedBeforeOpen = 0;
    notice.hidden = true;
  } else if (state === 'retrying') {
    el.textContent = `reconnecting in ${Math.ceil(detail.delay / 1000)} s`;
    if (!everOpened) {
      failedBeforeOpen += 1;
      if (failedBeforeOpen === 1) diagnoseRefusal();
    }
  } else if (state === 'connecting') {
    el.textContent = 'connecting…';
  } else {
    el.textContent = 'offline';
  }
}

/// The live socket failed before ever opening: find out whether the token was refused.
async function diagnoseRefusal() {
  const tok = token;
  const status = await refusalStatus('/v1/live', tok);
  if (tok !== token) return; // signed out or changed token meanwhile
  const notice = document.getElementById('live-notice');
  if (status === 401) {
    showLogin('The server did not accept this token (expired or invalid). Paste a new one.');
  } else if (status === 403) {
    if (socket) socket.close();
    setConn('offline');
    notice.textContent = `This token (role ${claims?.role || 'unknown'}) may not watch live calls.`
      + (claims?.role === 'agent' ? ' Agents use the overlay at /overlay.' : '');
    notice.hidden = false;
  } else if (status === 0) {
    notice.textContent = 'Cannot reach the server; retrying.';
    notice.hidden = false;
  }
}

function showLogin(message) {
  if (socket) socket.close();
  socket = null;
  token = null;
  forgetToken();
  document.getElementById('login').hidden = false;
  document.getElementById('live').hidden = true;
  document.getElementById('history').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('whoami').textContent = '';
  document.getElementById('login-error').textContent = message || '';
  setConn('offline');
  document.getElementById('token-input').focus();
}

function start(tok) {
  token = tok;
  claims = claimsOf(tok);
  if (isExpired(claims)) {
    showLogin('That token has expired. Paste a new one.');
    return;
  }
  document.getElementById('login').hidden = true;
  document.getElementById('logout').hidden = false;
  const who = claims ? [claims.sub || claims.user_id, claims.role, claims.team && `team ${claims.team}`].filter(Boolean).join(' · ') : '';
  document.getElementById('whoami').textContent = who;
  everOpened = false;
  failedBeforeOpen = 0;
  socket = new LiveSocket(() => wsUrl('/v1/live', { token }), {
    onMessage,
    onStatus: setConn,
  }).start();
  route();
}

function init() {
  document.getElementById('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = document.getElementById('token-input').value.trim();
    if (!v) return;
    if (v.split('.').length !== 3) {
      document.getElementById('login-error').textContent = 'That does not look like a token (three dot-separated parts).';
      return;
    }
    storeToken(v);
    document.getElementById('token-input').value = '';
    start(v);
  });
  document.getElementById('logout').addEventListener('click', () => showLogin(''));
  document.getElementById('detail-close').addEventListener('click', closeCall);
  document.getElementById('whisper-form').addEventListener('submit', sendWhisper);
  document.getElementById('sort').addEventListener('change', () => { orderDirty = true; scheduleRender(); });
  document.getElementById('history-filter').addEventListener('submit', (e) => { e.preventDefault(); loadHistory(); });
  document.getElementById('history-more').addEventListener('click', () => loadHistory(true));
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && selected && !document.getElementById('detail').hidden) closeCall();
  });
  window.addEventListener('hashchange', route);
  setInterval(tick, 1000);

  const tok = takeToken();
  if (tok) start(tok);
  else showLogin('');
}

init();
