// Agent coaching overlay: one agent's live call, glanceable. Hint cards with useful / dismiss
// feedback, checklist ticks, talk-ratio and pace meters, and a banner while transcripts are
// paused. Fed by `GET /v1/agents/{agent_id}/hints` (WebSocket) and reconnects by itself.
//
// It only ever subscribes to the agent the token names (an agent token cannot be pointed at a
// colleague by editing `?agent=`; the server refuses that too), and it drops any event that
// arrives while no call is attached.

import {
  takeToken, storeToken, forgetToken, claimsOf, isExpired, wsUrl, LiveSocket, LagProbe, fmtDuration, h,
  refusalStatus,
} from '/shared/live.js';

// Cards on screen at once: an agent mid-sentence reads one or two; four keeps the overlay short
// enough to sit beside a softphone without scrolling.
const MAX_CARDS = 4;
// Hints below `high` fade after two minutes: by then the moment they were about has passed.
const STALE_HINT_MS = 120000;
// A card marked useful stays briefly so the agent sees the click registered.
const USEFUL_LINGER_MS = 1200;
// Meter limits, mirroring the playbook (assets/playbook.toml): `talk_ratio_high` coaches above
// 65 % agent talk share and `pace_fast` above 180 words per minute, so the meters turn amber at
// the same points. The pace scale ends at 240 wpm, well past anything intelligible on a phone.
const TALK_SHARE_LIMIT = 0.65;
const PACE_HIGH_WPM = 180;
const PACE_SCALE_WPM = 240;
// The pipeline re-sends `backlog` each time transcription falls behind and says nothing when it
// catches up, so the banner shows for this long after the latest one.
const BACKLOG_BANNER_MS = 15000;
// Feedback clicked while disconnected waits for the socket (at most this many answers).
const FEEDBACK_QUEUE = 50;
// The server answers feedback for a hint it has not stored yet (its store writes in batches)
// with `not_found`; feedback sent within this window is re-sent, up to FEEDBACK_RETRIES times,
// FEEDBACK_RETRY_MS apart. Re-sending is harmless: the server records the latest answer.
const FEEDBACK_RETRY_WINDOW_MS = 5000;
const FEEDBACK_RETRY_MS = 1000;
const FEEDBACK_RETRIES = 3;

const KIND_LABEL = {
  objection: 'Objection', buying_signal: 'Buying signal', sentiment_drop: 'Mood dropping',
  talk_ratio: 'Talk ratio', monologue: 'Monologue', interruption: 'Interruption',
  dead_air: 'Dead air', pace: 'Pace', question_unanswered: 'Question', checklist: 'Checklist',
  whisper: 'Supervisor',
};

let token = null;
let agentId = null;
let socket = null;
let callId = null;
let clockMs = 0; // call time (ms since the call started) last seen on an event ...
let clockWall = 0; // ... and the Date.now() when it was seen
let recentFeedback = []; // {msg, sentAt, tries}
let transcriptsPaused = false;
let backlogAt = 0; // Date.now() of the latest backlog warning
let shuttingDown = false;
let cards = []; // {hint, el, shownAt}
const handled = new Set(); // hint ids the agent already answered: never show them again
let pendingFeedback = [];
const lag = new LagProbe();
window.__callcoach = { lag };

const $ = (id) => document.getElementById(id);

// ---- messages -------------------------------------------------------------------------------

function onMessage(msg, at) {
  switch (msg.type) {
    case 'attached':
      if (msg.call_id !== callId) resetCall();
      callId = msg.call_id;
      if (!clockWall) { clockMs = 0; clockWall = Date.now(); }
      $('idle').hidden = true;
      break;
    case 'detached':
      resetCall();
      break;
    case 'hint':
      if (!callId) return;
      seeCallTime(msg.at_ms);
      showHint(msg);
      break;
    case 'talk':
      if (!callId) return;
      renderMeters(msg);
      break;
    case 'checklist':
      if (!callId) return;
      renderChecklist(Array.isArray(msg.items) ? msg.items : []);
      break;
    case 'warning':
      // The pipeline says "resumed" with the same code for now; a dedicated code is accepted too.
      if (msg.code === 'transcription_resumed'
        || (msg.code === 'transcription_unavailable' && /resumed/i.test(msg.message || ''))) {
        transcriptsPaused = false;
      } else if (msg.code === 'transcription_unavailable') {
        transcriptsPaused = true;
      } else if (msg.code === 'backlog') {
        backlogAt = Date.now();
      } else if (msg.code === 'shutting_down') {
        shuttingDown = true;
      }
      renderBanner();
      break;
    case 'final':
      // A transcript arrived, so transcription is back.
      seeCallTime(msg.end_ms);
      transcriptsPaused = false;
      renderBanner();
      break;
    case 'partial':
      seeCallTime(msg.end_ms);
      return; // the overlay shows no transcript
    case 'ended':
      resetCall();
      break;
    case 'error':
      if (msg.code === 'unauthorized' || msg.code === 'forbidden') notice(msg.message || msg.code);
      else if (msg.code === 'not_found') retryFeedback();
      break;
    default:
      return;
  }
  lag.arrived(at);
  requestAnimationFrame(() => lag.rendered());
}

function resetCall() {
  callId = null;
  clockMs = 0;
  clockWall = 0;
  for (const c of cards) c.el.remove();
  cards = [];
  renderMeters(null);
  renderChecklist([]);
  transcriptsPaused = false;
  backlogAt = 0;
  renderBanner();
  $('idle').hidden = false;
  $('clock').textContent = '';
}

/// Call time now: the latest time an event carried, carried forward by the wall clock.
function callNowMs() {
  return clockWall ? clockMs + (Date.now() - clockWall) : 0;
}

function seeCallTime(t) {
  if (!Number.isFinite(t)) return;
  if (!clockWall || t > callNowMs()) {
    clockMs = t;
    clockWall = Date.now();
  }
}

// ---- hint cards -----------------------------------------------------------------------------

function showHint(hint) {
  if (!hint.id || handled.has(hint.id) || cards.some((c) => c.hint.id === hint.id)) return;
  const prio = hint.priority || 'normal';
  const el = h('li', { class: `card prio-${prio} kind-${hint.kind}`, 'data-hint': hint.id },
    h('div', { class: 'card-top' },
      h('span', { class: 'kind' }, KIND_LABEL[hint.kind] || hint.kind),
      h('span', { class: 'prio' }, prio === 'normal' ? '' : prio)),
    h('p', { class: 'title' }, hint.title),
    hint.body ? h('p', { class: 'body' }, hint.body) : '',
    hint.reason ? h('p', { class: 'reason', title: hint.reason }, hint.reason) : '',
    h('div', { class: 'actions' },
      h('button', {
        type: 'button', class: 'useful', 'aria-label': `Useful: ${hint.title}`,
        onclick: () => answer(hint.id, true),
      }, 'Useful'),
      h('button', {
        type: 'button', class: 'dismiss', 'aria-label': `Dismiss: ${hint.title}`,
        onclick: () => answer(hint.id, false),
      }, 'Dismiss')));
  const list = $('cards');
  list.prepend(el);
  cards.unshift({ hint, el, shownAt: Date.now() });
  while (cards.length > MAX_CARDS) {
    // Drop the least important, oldest card, never the one just shown.
    const victim = cards.slice(1).reduce((worst, c) => (rank(c) < rank(worst) ? c : worst));
    victim.el.remove();
    cards = cards.filter((c) => c !== victim);
  }
}

const PRIO_RANK = { low: 0, normal: 1, high: 2, urgent: 3 };
function rank(c) {
  return (PRIO_RANK[c.hint.priority] ?? 1) * 1e13 + c.shownAt;
}

function answer(hintId, useful) {
  handled.add(hintId);
  sendFeedback({ type: 'feedback', hint_id: hintId, useful }, 0);
  const card = cards.find((c) => c.hint.id === hintId);
  if (!card) return;
  const next = card.el.nextElementSibling || card.el.previousElementSibling;
  const removeCard = () => {
    card.el.remove();
    cards = cards.filter((c) => c !== card);
    if (document.activeElement === document.body && next && next.isConnected) {
      next.querySelector('button')?.focus();
    }
  };
  if (useful) {
    card.el.classList.add('answered');
    for (const b of card.el.querySelectorAll('button')) b.disabled = true;
    card.el.querySelector('.useful').textContent = 'Thanks';
    setTimeout(removeCard, USEFUL_LINGER_MS);
  } else {
    removeCard();
  }
}

function sendFeedback(msg, tries) {
  if (socket && socket.send(msg)) {
    recentFeedback = recentFeedback.filter((r) => r.msg.hint_id !== msg.hint_id);
    recentFeedback.push({ msg, sentAt: Date.now(), tries });
  } else {
    pendingFeedback.push(msg);
    if (pendingFeedback.length > FEEDBACK_QUEUE) pendingFeedback.shift();
  }
}

function flushFeedback() {
  const queued = pendingFeedback;
  pendingFeedback = [];
  for (const m of queued) sendFeedback(m, 0);
}

// Errors do not say which message they answer, so every recent answer is re-sent.
function retryFeedback() {
  const now = Date.now();
  const due = recentFeedback.filter((r) => now - r.sentAt < FEEDBACK_RETRY_WINDOW_MS && r.tries < FEEDBACK_RETRIES);
  recentFeedback = [];
  if (!due.length) return;
  setTimeout(() => { for (const r of due) sendFeedback(r.msg, r.tries + 1); }, FEEDBACK_RETRY_MS);
}

function expireCards() {
  const now = Date.now();
  for (const c of [...cards]) {
    const important = (PRIO_RANK[c.hint.priority] ?? 1) >= PRIO_RANK.high;
    if (!important && now - c.shownAt > STALE_HINT_MS) {
      c.el.remove();
      cards = cards.filter((x) => x !== c);
    }
  }
  if (callId) $('clock').textContent = fmtDuration(callNowMs());
  renderBanner();
  if (callId && checklist.some((i) => !i.done && Number.isFinite(i.due_ms))) renderChecklist(checklist);
}

// ---- meters and checklist -------------------------------------------------------------------

function renderMeters(t) {
  const share = t && Number.isFinite(t.agent_share) && (t.agent_ms + t.customer_ms) > 0 ? t.agent_share : null;
  $('talk-val').textContent = share === null ? '–' : `${Math.round(share * 100)}%`;
  $('talk-fill').style.width = share === null ? '0' : `${share * 100}%`;
  $('talk-limit').style.left = `${TALK_SHARE_LIMIT * 100}%`;
  $('talk-meter').classList.toggle('over', share !== null && share > TALK_SHARE_LIMIT);
  $('talk-bar').setAttribute('aria-valuenow', share === null ? 0 : Math.round(share * 100));
  $('talk-bar').setAttribute('aria-valuetext', share === null ? 'no speech yet'
    : `${Math.round(share * 100)} percent${share > TALK_SHARE_LIMIT ? ', too much' : ''}`);

  const wpm = t && Number.isFinite(t.agent_wpm) ? t.agent_wpm : null;
  $('pace-val').textContent = wpm === null ? '–' : `${Math.round(wpm)} wpm`;
  $('pace-fill').style.width = wpm === null ? '0' : `${Math.min(1, wpm / PACE_SCALE_WPM) * 100}%`;
  $('pace-limit').style.left = `${(PACE_HIGH_WPM / PACE_SCALE_WPM) * 100}%`;
  const off = wpm !== null && wpm > PACE_HIGH_WPM;
  $('pace-meter').classList.toggle('over', off);
  $('pace-bar').setAttribute('aria-valuenow', wpm === null ? 0 : Math.round(wpm));
  $('pace-bar').setAttribute('aria-valuetext', wpm === null ? 'not known yet'
    : `${Math.round(wpm)} words per minute${off ? ', too fast' : ''}`);
}

let checklist = [];

function renderChecklist(items) {
  checklist = items;
  const now = callNowMs();
  const list = $('checklist');
  if (!items.length) {
    list.replaceChildren(h('li', { class: 'none' }, callId ? 'Nothing to check on this call.' : ''));
    return;
  }
  list.replaceChildren(...items.map((i) => {
    const overdue = !i.done && Number.isFinite(i.due_ms) && now > i.due_ms;
    const state = i.done ? 'done' : overdue ? 'overdue' : 'open';
    const word = { done: 'done', overdue: 'overdue', open: 'to do' }[state];
    return h('li', { class: state },
      h('span', { class: 'tick', 'aria-hidden': 'true' }, i.done ? '✓' : overdue ? '!' : ''),
      h('span', { class: 'label' }, i.label || i.id),
      h('span', { class: 'sr' }, `, ${word}`),
      !i.done && Number.isFinite(i.due_ms) ? h('span', { class: 'due mono' }, `by ${fmtDuration(i.due_ms)}`) : '');
  }));
}

// ---- banners, connection --------------------------------------------------------------------

function renderBanner() {
  let text = '';
  if (shuttingDown) text = 'Server restarting — reconnecting…';
  else if (transcriptsPaused) text = 'Transcripts paused — talk-time coaching continues.';
  else if (backlogAt && Date.now() - backlogAt < BACKLOG_BANNER_MS) text = 'Transcripts running behind — hints may come late.';
  if ($('banner').textContent !== text) $('banner').textContent = text;
  $('banner').hidden = !text;
}

function notice(text) {
  $('notice').textContent = text;
  $('notice').hidden = !text;
}

let everOpened = false;
let failures = 0;
let connProblem = false; // the notice shows a connection problem, to clear once connected

function setConn(state, detail) {
  document.body.dataset.conn = state;
  const el = $('conn');
  if (state === 'open') {
    el.textContent = 'live';
    everOpened = true;
    failures = 0;
    if (connProblem) notice('');
    connProblem = false;
    shuttingDown = false;
    renderBanner();
  } else if (state === 'retrying') {
    el.textContent = `reconnecting in ${Math.ceil(detail.delay / 1000)} s`;
    failures += 1;
    if (!everOpened && failures === 1) diagnoseRefusal();
  } else if (state === 'connecting') {
    el.textContent = 'connecting…';
  } else {
    el.textContent = 'offline';
  }
}

/// The socket failed before ever opening: say whether the token was refused, and stop retrying
/// a refusal that retrying cannot fix.
async function diagnoseRefusal() {
  const status = await refusalStatus(`/v1/agents/${encodeURIComponent(agentId)}/hints`, token);
  connProblem = true;
  if (status === 401) {
    socket.close();
    forgetToken();
    notice('The server did not accept this token (expired or invalid). Paste a new one.');
    $('main').hidden = true;
    $('login').hidden = false;
  } else if (status === 403) {
    socket.close();
    notice(`This token may not open the overlay of ${agentId}.`);
  } else if (status === 0) {
    notice('Cannot reach the server; retrying.');
  }
}

function start(tok) {
  token = tok;
  const claims = claimsOf(tok);
  if (isExpired(claims)) {
    notice('This token has expired. Paste a new one.');
    $('login').hidden = false;
    return;
  }
  const asked = new URL(window.location.href).searchParams.get('agent');
  // An agent's token names the agent; that wins over `?agent=`. Supervisors may open any agent
  // in their team; the server checks.
  const own = claims && claims.role === 'agent' ? (claims.agent_id || claims.sub) : null;
  agentId = own || asked;
  if (!agentId) {
    notice('Open this page as /overlay?agent=<your agent id>.');
    return;
  }
  everOpened = false;
  failures = 0;
  connProblem = false;
  notice(own && asked && asked !== own ? `This overlay shows your own calls (${own}), not ${asked}.` : '');
  $('login').hidden = true;
  $('main').hidden = false;
  $('agent').textContent = agentId;
  document.title = `coach · ${agentId}`;
  socket = new LiveSocket(
    () => wsUrl(`/v1/agents/${encodeURIComponent(agentId)}/hints`, { token }),
    {
      onMessage,
      onStatus: setConn,
      onOpen: flushFeedback,
    },
  ).start();
}

function init() {
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const v = $('token-input').value.trim();
    if (!v) return;
    storeToken(v);
    start(v);
  });
  // Keyboard: U marks the newest hint useful, D (or Escape) dismisses it, without reaching
  // for the mouse mid-call.
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLTextAreaElement || e.ctrlKey || e.metaKey || e.altKey) return;
    const top = cards.find((c) => !c.el.classList.contains('answered'));
    if (!top) return;
    if (e.key === 'u' || e.key === 'U') answer(top.hint.id, true);
    else if (e.key === 'd' || e.key === 'D' || e.key === 'Escape') answer(top.hint.id, false);
  });
  renderMeters(null);
  renderChecklist([]);
  setInterval(expireCards, 1000);
  const tok = takeToken();
  if (tok) start(tok);
  else {
    $('login').hidden = false;
    setConn('offline');
  }
}

init();
