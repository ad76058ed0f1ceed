// The supervisor dashboard under load: `callcoach loadgen` drives 50 simultaneous real-time calls
// (the generated sales call, both tracks) into a real server while the dashboard shows all of
// them with one call's detail panel open. Measures event-to-paint lag in the browser over the
// steady part of the run and prints its p95. Figures go to target/browser-test/load-figures.json.
//
//   CALLCOACH_LOAD_CALLS   simultaneous calls (default 50)
//   CALLCOACH_LOAD_AUDIO_MS audio streamed per call (default 90000)
//   CALLCOACH_LOAD_ASR=0   run the server without transcription (voice-only events)

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  OUT, binary, startServer, mintToken, renderCall, launchBrowser, waitFor, p95, sleep,
} from './harness.mjs';

const CALLS = Number(process.env.CALLCOACH_LOAD_CALLS || 50);
const AUDIO_MS = Number(process.env.CALLCOACH_LOAD_AUDIO_MS || 90000);
const ASR = process.env.CALLCOACH_LOAD_ASR !== '0';
// Calls start 200 ms apart: 50 calls are all live 10 s in, well inside the streamed audio.
const STAGGER_MS = 200;
const TEAM = 'east';
const TENANT = 'acme';

let server;
let browser;
let dash;
let loadgen;
let loadgenExit;
const figures = { calls: CALLS, audio_ms: AUDIO_MS, transcription: ASR };

describe('dashboard with many live calls', { timeout: 10 * 60 * 1000 }, () => {
  before(async () => {
    fs.mkdirSync(OUT, { recursive: true });
    renderCall();
    server = await startServer({
      name: 'load-server',
      extraEnv: ASR ? {} : { CALLCOACH_WHISPER_ENABLED: 'false' },
    });
    // loadgen streams every call with one token for 50 different agents: a tenant admin's (an
    // agent may only stream as itself, and supervisors do not ingest). Its calls declare no
    // team, so the dashboard watches them with a tenant-wide (admin) token too.
    const admin = mintToken(server, { role: 'admin', sub: 'admin-load', team: TEAM, tenant: TENANT });
    browser = await launchBrowser();
    const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    dash = await ctx.newPage();
    await dash.goto(`${server.base}/?token=${admin}`);
    await waitFor(() => dash.locator('#conn.open').count(), { what: 'dashboard live socket' });

    const args = ['loadgen', '--url', server.ws, '--calls', String(CALLS), '--stagger-ms', String(STAGGER_MS),
      '--max-ms', String(AUDIO_MS), '--token', admin, '--json', path.join(OUT, 'loadgen.json')];
    if (!ASR) args.push('--ingest-only');
    const log = fs.openSync(path.join(OUT, 'loadgen.stderr.log'), 'w');
    loadgen = spawn(binary(), args, { env: server.env, stdio: ['ignore', 'ignore', log] });
    loadgenExit = new Promise((resolve) => loadgen.on('exit', (code) => resolve(code)));
  });

  after(async () => {
    if (loadgen && loadgen.exitCode === null) loadgen.kill('SIGTERM');
    fs.writeFileSync(path.join(OUT, 'load-figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
    if (browser) await browser.close();
    if (server) await server.stop();
  });

  it(`shows all ${CALLS} calls and keeps painting their updates`, async () => {
    await waitFor(async () => (await dash.locator('#calls-body tr:not(.ended)').count()) >= CALLS,
      { timeout: 60000 + CALLS * STAGGER_MS, what: `${CALLS} live rows` });
    // Watch one call closely, as a supervisor would: the detail panel renders its transcript.
    await dash.locator('#calls-body tr button').first().click();
    await dash.locator('#detail:not([hidden])').waitFor();
    // Measure the steady state: every call live, none ending yet.
    await dash.evaluate(() => window.__callcoach.lag.reset());
    const window_ms = Math.max(10000, AUDIO_MS - CALLS * STAGGER_MS - 20000);
    await sleep(window_ms);
    const samples = await dash.evaluate(() => {
      const lag = window.__callcoach.lag;
      return Array.from(lag.samples.subarray(0, Math.min(lag.count, lag.samples.length)));
    });
    await dash.screenshot({ path: path.join(OUT, `load-${CALLS}-calls.png`) });
    assert.ok(samples.length > CALLS, `dashboard painted ${samples.length} updates in ${window_ms} ms`);
    const sorted = [...samples].sort((a, b) => a - b);
    figures.window_ms = window_ms;
    figures.messages = samples.length;
    figures.messages_per_sec = Math.round((samples.length / window_ms) * 1000);
    figures.lag_ms = {
      p50: sorted[Math.floor((sorted.length - 1) / 2)],
      p95: p95(samples),
      max: sorted[sorted.length - 1],
    };
    console.log(`dashboard with ${CALLS} live calls: ${samples.length} messages in ${window_ms} ms, `
      + `event-to-paint lag p50 ${figures.lag_ms.p50.toFixed(1)} ms, p95 ${figures.lag_ms.p95.toFixed(1)} ms, `
      + `max ${figures.lag_ms.max.toFixed(1)} ms`);
  });

  it('lets every call end cleanly', async () => {
    const code = await loadgenExit;
    assert.equal(code, 0, 'loadgen exit status (see loadgen.stderr.log)');
    const summary = JSON.parse(fs.readFileSync(path.join(OUT, 'loadgen.json'), 'utf8'));
    figures.loadgen = {
      final_latency_ms: summary.final_latency_ms,
      hint_latency_ms: summary.hint_latency_ms,
      counts: summary.counts,
      warnings: summary.warnings,
    };
    assert.deepEqual(summary.connect_errors, {}, 'every call connected');
    assert.equal(summary.counts.bad_ends, 0, 'every call ended cleanly');
    await waitFor(async () => (await dash.locator('#calls-body tr:not(.ended)').count()) === 0,
      { timeout: 30000, what: 'every row marked ended' });
  });
});
