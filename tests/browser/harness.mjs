// What the browser tests need around the browser: the real `callcoach` binary started on
// 127.0.0.1 with a temporary SQLite database, tokens minted by `callcoach token`, the generated
// sales call rendered by scripts/make-call.sh and streamed by `callcoach replay`, and headless
// Debian Chromium driven by playwright-core.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/// Screenshots, logs and the measured figures land here.
export const OUT = path.resolve(process.env.CALLCOACH_BROWSER_OUT || path.join(ROOT, 'target/browser-test'));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/// The server binary: CALLCOACH_BIN, else the dev build. The tests do not build it (cargo's
/// lock and two cores are shared); `cargo build` first.
export function binary() {
  const bin = process.env.CALLCOACH_BIN || path.join(ROOT, 'target/debug/callcoach');
  if (!fs.existsSync(bin)) {
    throw new Error(`no callcoach binary at ${bin}: run \`cargo build\` first or set CALLCOACH_BIN`);
  }
  return bin;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Polls `fn` until it returns a truthy value; throws with `what` after `timeout` ms.
export async function waitFor(fn, { timeout = 30000, interval = 250, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(interval);
  }
}

/// Renders (or reuses) the generated two-speaker call; returns the WAV path.
export function renderCall() {
  const dir = path.join(ROOT, 'target/calls');
  execFileSync('bash', [path.join(ROOT, 'scripts/make-call.sh'), dir], { stdio: ['ignore', 'inherit', 'inherit'] });
  const wav = path.join(dir, 'sales-call.wav');
  if (!fs.existsSync(wav)) throw new Error(`make-call.sh did not produce ${wav}`);
  return wav;
}

/// Starts `callcoach serve` on a free loopback port with a fresh SQLite file and secret, and
/// waits until `/readyz` answers 200. `extraEnv` adds CALLCOACH_* settings.
export async function startServer({ name = 'server', extraEnv = {}, readyTimeout = 300000 } = {}) {
  const bin = binary();
  fs.mkdirSync(OUT, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callcoach-browser-'));
  const port = await freePort();
  const secret = crypto.randomBytes(32).toString('hex');
  const dbPath = path.join(dir, 'callcoach.sqlite');
  const env = {
    ...process.env,
    CALLCOACH_ADDR: `127.0.0.1:${port}`,
    CALLCOACH_DATABASE_URL: `sqlite://${dbPath}`,
    CALLCOACH_JWT_SECRET: secret,
    CALLCOACH_ASSETS_DIR: path.join(ROOT, 'assets'),
    CALLCOACH_LOG_FORMAT: 'json',
    ...extraEnv,
  };
  const log = fs.openSync(path.join(OUT, `${name}.log`), 'w');
  const proc = spawn(bin, ['serve'], { env, cwd: dir, stdio: ['ignore', log, log] });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const base = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}); see ${OUT}/${name}.log`);
    const r = await fetch(`${base}/readyz`).catch(() => null);
    return r && r.ok;
  }, { timeout: readyTimeout, interval: 500, what: `${base}/readyz` });
  return {
    base,
    ws: `ws://127.0.0.1:${port}`,
    port,
    dir,
    dbPath,
    secret,
    env,
    proc,
    async stop() {
      if (exited) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
      await new Promise((r) => (exited ? r() : proc.once('exit', r)));
      clearTimeout(t);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/// Mints a token with `callcoach token` against the server's secret.
export function mintToken(server, { role, sub, team, tenant }) {
  const args = ['token', '--role', role, '--sub', sub];
  if (team) args.push('--team', team);
  if (tenant) args.push('--tenant', tenant);
  return execFileSync(binary(), args, { env: server.env, encoding: 'utf8' }).trim();
}

/// Streams a recording with `callcoach replay` in real time; collects its JSON event lines.
export function startReplay(server, { file, token, agentId, leadId, callId, speed = 1, name = 'replay' }) {
  const args = ['replay', file, '--url', server.ws, '--realtime', '--speed', String(speed),
    '--token', token, '--agent-id', agentId, '--lead-id', leadId, '--call-id', callId];
  const err = fs.openSync(path.join(OUT, `${name}.stderr.log`), 'w');
  const proc = spawn(binary(), args, { env: server.env, stdio: ['ignore', 'pipe', err] });
  const events = [];
  let buf = '';
  proc.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { events.push(JSON.parse(line)); } catch { /* not an event line */ }
    }
  });
  const done = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, events, done };
}

/// Headless Debian Chromium with a fresh profile (playwright's launch uses a new temporary
/// user-data-dir each time) and no network besides what the pages ask for.
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu',
      '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/// GET a REST path with a bearer token: `{status, body}`.
export async function getJson(server, pathname, token) {
  const r = await fetch(`${server.base}${pathname}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  return { status: r.status, body };
}

/// 95th percentile (nearest rank) of a list of numbers.
export function p95(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)];
}
