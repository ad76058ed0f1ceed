// Code shared by the supervisor dashboard and the agent overlay: the session token, a
// WebSocket that reconnects by itself, the event-to-paint lag probe and a few formatters.
// Plain ES module, no dependencies, so the pages work offline and need no build step.

const TOKEN_KEY = 'callcoach.token';

/// Reads the token from `?token=` (development convenience) or sessionStorage. A token found in
/// the URL is moved into sessionStorage and removed from the address bar so it does not end up
/// in screenshots, history or a pasted link.
export function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl.trim());
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/// The token's claims, decoded for display only (the server verifies the signature and enforces
/// every permission). Returns null for anything that is not a readable JWT.
export function claimsOf(token) {
  if (!token) return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/// Whether the token's `exp` claim (seconds since the epoch) has passed.
export function isExpired(claims) {
  return !!claims && typeof claims.exp === 'number' && claims.exp * 1000 < Date.now();
}

/// `ws://` or `wss://` URL for a path on this server.
export function wsUrl(path, params) {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = new URL(`${proto}//${window.location.host}${path}`);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  return url.toString();
}

/// Why a WebSocket was refused: browsers hide the handshake's HTTP status, so ask the same URL
/// over plain HTTP with the token as a bearer header. The server authenticates before it looks
/// for an upgrade, so 401/403 mean the token was refused; anything else (400: not a WebSocket
/// request) means the token is fine and the failure was elsewhere. Returns the status, or 0
/// when the server is unreachable.
export async function refusalStatus(path, token) {
  try {
    const r = await fetch(path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    return r.status;
  } catch {
    return 0;
  }
}

// Reconnect backoff: first retry after 500 ms, doubling to at most 15 s, with ±20 % jitter so a
// server restart is not met by every open page at the same instant. 15 s keeps an agent's
// overlay from staying dark for long after a deploy.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;

/// A WebSocket that parses JSON messages and reconnects with backoff until `close()` is called.
/// `onMessage(msg, receivedAt)` gets each parsed message and the `performance.now()` at which it
/// arrived; `onStatus(state, detail)` is told 'connecting' | 'open' | 'retrying' | 'closed'.
export class LiveSocket {
  constructor(urlFn, { onMessage, onStatus, onOpen } = {}) {
    this.urlFn = urlFn;
    this.onMessage = onMessage || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onOpen = onOpen || (() => {});
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
    this.stopped = false;
    this.openedAt = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  connect() {
    clearTimeout(this.timer);
    this.onStatus('connecting', { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.urlFn());
    } catch (err) {
      this.retry(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.openedAt = performance.now();
      this.onStatus('open', {});
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      const at = performance.now();
      if (typeof ev.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; // not ours to interpret; the server only sends JSON text
      }
      if (msg && typeof msg === 'object') this.onMessage(msg, at);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // A connection that stayed up for a while resets the backoff.
      if (this.openedAt && performance.now() - this.openedAt > 10000) this.attempt = 0;
      this.openedAt = 0;
      if (this.stopped) {
        this.onStatus('closed', { code: ev.code, reason: ev.reason });
        return;
      }
      this.retry(ev.reason || `closed (${ev.code})`, ev.code);
    };
  }

  retry(reason, code) {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt += 1;
    this.onStatus('retrying', { reason, code, delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(obj));
      return true;
    }
    return false;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'page closed');
  }
}

// Lag samples kept for the p95: the last 20 000 messages, a few minutes of 50 busy calls, small
// enough (160 KB) to keep in a page that stays open all day.
const LAG_SAMPLES = 20000;

/// Measures event-to-paint lag: the time from a WebSocket message's arrival to the animation
/// frame after the one in which the page rendered it (by then the render has been painted).
export class LagProbe {
  constructor() {
    this.samples = new Float64Array(LAG_SAMPLES);
    this.count = 0;
    this.pending = [];
  }

  /// Note a message that arrived at `at` (performance.now()) and awaits rendering.
  arrived(at) {
    this.pending.push(at);
  }

  /// Call at the end of a render pass: the pending arrivals are painted in the next frame.
  rendered() {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    requestAnimationFrame(() => {
      const now = performance.now();
      for (const at of batch) {
        this.samples[this.count % LAG_SAMPLES] = now - at;
        this.count += 1;
      }
    });
  }

  stats() {
    const n = Math.min(this.count, LAG_SAMPLES);
    if (n === 0) return { count: 0, p50: null, p95: null, max: null };
    const sorted = Array.from(this.samples.subarray(0, n)).sort((a, b) => a - b);
    const q = (p) => sorted[Math.min(n - 1, Math.floor(p * n))];
    return { count: this.count, p50: q(0.5), p95: q(0.95), max: sorted[n - 1] };
  }

  reset() {
    this.count = 0;
    this.pending = [];
  }
}

/// "m:ss" or "h:mm:ss".
export function fmtDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function fmtPct(x) {
  return Number.isFinite(x) ? `${Math.round(x * 100)}%` : '–';
}

export function fmtSigned(x, digits = 2) {
  if (!Number.isFinite(x)) return '–';
  return (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(digits);
}

/// A word for a compound sentiment score, so meaning is not carried by colour alone.
export function sentimentWord(c) {
  if (!Number.isFinite(c)) return 'no data';
  if (c <= -0.35) return 'negative';
  if (c < -0.05) return 'cooling';
  if (c < 0.05) return 'neutral';
  if (c < 0.35) return 'warm';
  return 'positive';
}

/// Create an element: h('div', {class: 'x', onclick: f}, child, 'text', ...).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children) if (c) el.append(c);
  return el;
}
