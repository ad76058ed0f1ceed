// End-to-end in a real browser: the real server, a generated two-speaker call replayed in real
// time over the native protocol, the supervisor dashboard and the agent overlay in headless
// Chromium. Screenshots and the measured event-to-paint lag go to target/browser-test/.
//
//   cargo build && (cd tests/browser && npm ci && npm test)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  OUT, startServer, mintToken, renderCall, startReplay, launchBrowser, waitFor, getJson, p95, sleep,
} from './harness.mjs';

const TENANT = 'acme';
const TEAM = 'east';
const AGENT = 'agent-jordan';
const OTHER_AGENT = 'agent-casey';
const LEAD = 'lead-dana';
const WHISPER = 'Ask who else joins the demo on Thursday';

// The replayed call lasts about two and a half minutes; setup may import the Whisper model.
const SUITE_TIMEOUT_MS = 15 * 60 * 1000;

let server;
let browser;
let dash; // supervisor's dashboard page
let overlay; // agent's overlay page
let replay;
let tokens;
const callId = crypto.randomUUID();
const figures = {};
const pageErrors = [];
let dashLag = null; // lag samples of the dashboard, taken when the call has ended

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

/// Raw lag samples (ms) the page's LagProbe collected.
function lagSamples(page) {
  return page.evaluate(() => {
    const lag = window.__callcoach.lag;
    return Array.from(lag.samples.subarray(0, Math.min(lag.count, lag.samples.length)));
  });
}

describe('live call in the browser', { timeout: SUITE_TIMEOUT_MS }, () => {
  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    const wav = renderCall();
    server = await startServer();
    tokens = {
      supervisor: mintToken(server, { role: 'supervisor', sub: 'sup-riley', team: TEAM, tenant: TENANT }),
      agent: mintToken(server, { role: 'agent', sub: AGENT, team: TEAM, tenant: TENANT }),
      other: mintToken(server, { role: 'agent', sub: OTHER_AGENT, team: TEAM, tenant: TENANT }),
    };
    browser = await launchBrowser();
    // Separate contexts: the supervisor and the agent share no storage, as on two machines.
    const supCtx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const agentCtx = await browser.newContext({ viewport: { width: 400, height: 760 } });
    dash = await supCtx.newPage();
    overlay = await agentCtx.newPage();
    for (const [name, page] of [['dashboard', dash], ['overlay', overlay]]) {
      page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
      page.on('console', (m) => { if (m.type() === 'error') console.error(`${name} console: ${m.text()}`); });
    }
    await dash.goto(`${server.base}/?token=${tokens.supervisor}`);
    await overlay.goto(`${server.base}/overlay?token=${tokens.agent}&agent=${AGENT}`);
    await waitFor(() => dash.locator('#conn.open').count(), { what: 'dashboard live socket' });
    await waitFor(() => overlay.locator('body[data-conn="open"]').count(), { what: 'overlay socket' });
    assert.equal(new URL(dash.url()).searchParams.get('token'), null, 'token is removed from the address bar');
    replay = startReplay(server, {
      file: wav, token: tokens.agent, agentId: AGENT, leadId: LEAD, callId,
    });
  });

  after(async () => {
    if (replay && replay.proc.exitCode === null) replay.proc.kill('SIGTERM');
    fs.writeFileSync(path.join(OUT, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  it('shows the call on the supervisor dashboard', async () => {
    const row = dash.locator(`tr[data-call="${callId}"]`);
    await row.waitFor({ timeout: 20000 });
    assert.match(await row.innerText(), new RegExp(AGENT));
    assert.match(await row.innerText(), new RegExp(LEAD));
    await shot(dash, '01-dashboard-call-started');
  });

  it('grows the transcript in the call detail panel', async () => {
    // Keyboard only: the agent cell is a button; Escape closes the panel and gives focus back.
    const open = dash.locator(`tr[data-call="${callId}"] button`);
    await open.focus();
    await dash.keyboard.press('Enter');
    await dash.locator('#detail:not([hidden])').waitFor();
    await dash.keyboard.press('Escape');
    await dash.locator('#detail[hidden]').waitFor({ state: 'attached' });
    assert.equal(await open.evaluate((el) => el === document.activeElement), true, 'focus returns to the row');
    await dash.keyboard.press('Enter');
    await dash.locator('#detail:not([hidden])').waitFor();
    const lines = dash.locator('#transcript li.line.final');
    await waitFor(async () => (await lines.count()) >= 1, { timeout: 60000, what: 'first final line' });
    const first = await lines.count();
    await waitFor(async () => (await lines.count()) >= first + 3, { timeout: 90000, what: 'transcript to grow by 3 finals' });
    const text = (await dash.locator('#transcript').innerText()).toLowerCase();
    // The agent's opening line carries the recording disclosure; Whisper tiny hears "recorded".
    assert.match(text, /record/, 'opening line is in the transcript');
    assert.ok(await dash.locator('#transcript li.agent').count() > 0, 'agent lines are labelled');
    assert.ok(await dash.locator('#transcript li.customer').count() > 0, 'customer lines are labelled');
    figures.transcript_finals_seen = await lines.count();
    await shot(dash, '02-dashboard-transcript');
  });

  it('delivers a whisper typed on the dashboard to the agent overlay', async () => {
    await dash.fill('#whisper-text', WHISPER);
    await dash.press('#whisper-text', 'Enter');
    await waitFor(async () => /Sent/.test(await dash.locator('#whisper-status').innerText()),
      { timeout: 10000, what: 'whisper POST accepted' });
    const card = overlay.locator('li.card.kind-whisper', { hasText: WHISPER });
    await card.waitFor({ timeout: 10000 });
    await shot(overlay, '03-overlay-whisper');
  });

  it('shows a coach hint on the overlay and stores the agent\'s feedback', async () => {
    const card = overlay.locator('li.card:not(.kind-whisper)').first();
    await card.waitFor({ timeout: 150000 });
    const hintId = await card.getAttribute('data-hint');
    const title = await card.locator('.title').innerText();
    assert.ok(hintId && title, 'hint card has an id and a title');
    await shot(overlay, '04-overlay-hint');
    await card.locator('button.useful').click();
    // The server stores feedback through REST-visible hint rows.
    const stored = await waitFor(async () => {
      const r = await getJson(server, `/v1/calls/${callId}`, tokens.supervisor);
      if (r.status !== 200) return null;
      const hint = (r.body.hints || []).find((h) => String(h.id) === hintId);
      return hint && hint.useful === true ? hint : null;
    }, { timeout: 20000, what: `feedback on hint ${hintId} in GET /v1/calls/${callId}` });
    assert.equal(stored.useful, true);
    // And straight from the database file, when the sqlite3 CLI is installed.
    try {
      const v = execFileSync('sqlite3', [server.dbPath, `SELECT useful FROM hints WHERE id = '${hintId}'`], { encoding: 'utf8' }).trim();
      assert.equal(v, '1', 'hints.useful is 1 in SQLite');
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    // The dashboard's detail panel picks the feedback up from the same record.
    await waitFor(async () => (await dash.locator('#hints .fb-useful').count()) > 0,
      { timeout: 15000, what: 'feedback shown on the dashboard' });
    await shot(dash, '05-dashboard-hint-feedback');
  });

  it('does not let an agent token open another agent\'s call', async () => {
    // REST: the call's record.
    const rest = await getJson(server, `/v1/calls/${callId}`, tokens.other);
    assert.ok(rest.status === 403 || rest.status === 404, `GET another agent's call answered ${rest.status}`);
    // WebSocket: the other agent's overlay feed.
    const ctx = await browser.newContext({ viewport: { width: 400, height: 760 } });
    const page = await ctx.newPage();
    await page.goto(`${server.base}/overlay?token=${tokens.other}&agent=${AGENT}`);
    const opened = await page.evaluate(({ agent, token }) => new Promise((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/v1/agents/${agent}/hints?token=${token}`);
      ws.onopen = () => { resolve('open'); ws.close(); };
      ws.onerror = () => resolve('refused');
    }), { agent: AGENT, token: tokens.other });
    assert.equal(opened, 'refused', 'overlay socket for another agent is refused');
    // The overlay page itself follows the token's own agent, so it shows nothing of this call.
    assert.match(await page.locator('#agent').innerText(), new RegExp(OTHER_AGENT));
    await sleep(3000);
    assert.equal(await page.locator('li.card').count(), 0, 'no hints of another agent');
    // The dashboard's history page says so instead of breaking.
    await page.goto(`${server.base}/#/history/${callId}`);
    await page.locator('#history-call-notice:not([hidden])').waitFor({ timeout: 10000 });
    assert.match(await page.locator('#history-call-notice').innerText(), /cannot see|No such/);
    assert.equal(await page.locator('#hd-transcript li').count(), 0);
    await shot(page, '06-other-agent-denied');
    await ctx.close();
  });

  it('ends the call and shows it in the history with its transcript and hints', async () => {
    const code = await replay.done;
    assert.equal(code, 0, 'replay ended cleanly');
    await dash.locator(`tr[data-call="${callId}"].ended`).waitFor({ timeout: 20000 });
    await shot(dash, '07-dashboard-call-ended');
    dashLag = await lagSamples(dash);
    await dash.goto(`${server.base}/#/history`);
    const link = dash.locator(`#history-body a[href="#/history/${callId}"]`);
    await link.waitFor({ timeout: 10000 });
    await link.click();
    await dash.locator('#history-detail:not([hidden])').waitFor();
    await waitFor(async () => (await dash.locator('#hd-transcript li.line').count()) >= 5,
      { timeout: 10000, what: 'stored transcript' });
    assert.ok(await dash.locator('#hd-hints li.hint').count() >= 1, 'stored hints are listed');
    await shot(dash, '08-history-call');
  });

  it('raised no script errors in either page', () => {
    assert.deepEqual(pageErrors, []);
  });

  it('measures first paint of both pages', async () => {
    // A fresh context per page (no cache); the second load of each is the warm figure.
    figures.first_contentful_paint_ms = {};
    for (const [name, url] of [['dashboard', '/'], ['overlay', `/overlay?agent=${AGENT}`]]) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      const fcp = [];
      for (let i = 0; i < 2; i += 1) {
        await page.goto(`${server.base}${url}`);
        fcp.push(await page.evaluate(() => new Promise((resolve) => {
          const read = () => performance.getEntriesByName('first-contentful-paint')[0]?.startTime;
          const v = read();
          if (v !== undefined) { resolve(v); return; }
          new PerformanceObserver(() => resolve(read())).observe({ type: 'paint', buffered: true });
        })));
      }
      await ctx.close();
      figures.first_contentful_paint_ms[name] = { cold: fcp[0], warm: fcp[1] };
      console.log(`${name} first contentful paint: ${fcp[0].toFixed(0)} ms cold, ${fcp[1].toFixed(0)} ms warm`);
      assert.ok(fcp.every((v) => Number.isFinite(v) && v > 0), `${name} painted`);
    }
  });

  it('measures event-to-paint lag in the dashboard', async () => {
    assert.ok(dashLag, 'lag samples were taken when the call ended');
    const overlayLag = await lagSamples(overlay);
    assert.ok(dashLag.length > 20, `dashboard painted ${dashLag.length} live updates`);
    figures.dashboard_lag_ms = { count: dashLag.length, p50: p50(dashLag), p95: p95(dashLag), max: Math.max(...dashLag) };
    figures.overlay_lag_ms = overlayLag.length
      ? { count: overlayLag.length, p50: p50(overlayLag), p95: p95(overlayLag), max: Math.max(...overlayLag) }
      : null;
    console.log(`dashboard event-to-paint lag: p95 ${figures.dashboard_lag_ms.p95.toFixed(1)} ms over ${dashLag.length} messages`);
    if (figures.overlay_lag_ms) {
      console.log(`overlay event-to-paint lag: p95 ${figures.overlay_lag_ms.p95.toFixed(1)} ms over ${overlayLag.length} messages`);
    }
  });
});

function p50(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}
