// Browser tests of client/token-manager.js in headless Debian Chromium.
//
//   node --test                                      # starts ./mock-server.mjs
//   TJS_BASE_URL=http://127.0.0.1:3000 node --test   # against a running server
//   TJS_SERVER_BIN=target/debug/examples/server ./run.sh   # run.sh starts the real server
//
// A real server must run with short lifetimes for the timing tests, e.g.
//   JWT_ACCESS_TOKEN_EXPIRY=4s JWT_AUTO_REFRESH_THRESHOLD=2s JWT_LEEWAY=0s RATE_LIMIT_MAX_REQUESTS=100000
// Tests that need a longer or shorter lifetime than they can wait for are skipped with a note.
//
// Against a real server the client files (`/`, /client/*.js, *.css) are served from
// this checkout's client/ directory through request interception, keeping the
// server's response headers: the server compiles its copies in, so they can be
// older than the files under test. TJS_CLIENT_FROM_DISK=0 tests the server's copies.
//
// Everything server-agnostic is observed through Playwright (request counts,
// simulated downtime through request interception). The mock's /__stats and
// /__down hooks are used in addition when the mock is the server.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_DIR = path.resolve(here, '..', '..', 'client');
const CLIENT_FROM_DISK = process.env.TJS_CLIENT_FROM_DISK !== '0';
const STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const CLIENT_MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.ts': 'text/plain; charset=utf-8' };
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync'];
const TEST_PAGE = '/__tjs_test__.html';
const TEST_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>TokenManager test page</title></head><body>
<script type="module">
import TokenManagerDefault, { TokenManager, getToken } from '/client/token-manager.js';
window.TokenManager = TokenManager;
window.defaultExportOk = TokenManagerDefault === TokenManager;
window.legacyGetToken = getToken;
window.events = [];
window.make = (opts) => {
  if (window.tm) window.tm.destroy();
  const { jitter, ...rest } = opts; // jitter: fixed value of the random source, for deterministic backoff
  // Most tests were written for the refresh token in the body; 'default' leaves the client's
  // own default (the cookie), which the tests of that default ask for.
  if (rest.refreshTokenDelivery === 'default') delete rest.refreshTokenDelivery;
  else if (rest.refreshTokenDelivery === undefined && rest.cookieMode === undefined) rest.refreshTokenDelivery = 'body';
  window.tm = new TokenManager(jitter == null ? rest : { ...rest, random: () => jitter });
  window.tm.onChange((e) => window.events.push({ type: e.type, reason: e.reason ?? null, delayMs: e.delayMs ?? null, at: Date.now() }));
  return true;
};
// localStorage seen through a delay: a change made by another tab stays invisible
// for lagMs after this tab first notices it (own writes are seen at once).
window.laggyStorage = (lagMs) => {
  const seen = new Map(); // key -> { value, since }
  return {
    getItem(k) {
      const real = localStorage.getItem(k);
      const s = seen.get(k);
      if (!s) { seen.set(k, { value: real, since: 0, pending: null }); return real; }
      if (real === s.value) { s.pending = null; return real; }
      if (!s.pending || s.pending.value !== real) s.pending = { value: real, at: Date.now() };
      if (Date.now() - s.pending.at < lagMs) return s.value;
      seen.set(k, { value: real, pending: null });
      return real;
    },
    setItem(k, v) { localStorage.setItem(k, v); seen.set(k, { value: String(v), pending: null }); },
    removeItem(k) { localStorage.removeItem(k); seen.set(k, { value: null, pending: null }); },
  };
};
window.makeLaggy = (opts, lagMs) => {
  if (window.tm) window.tm.destroy();
  window.tm = new TokenManager({ ...opts, storage: window.laggyStorage(lagMs) });
  window.tm.onChange((e) => window.events.push({ type: e.type, reason: e.reason ?? null, at: Date.now() }));
  return true;
};
// The DPoP key this origin keeps in IndexedDB, as the page can read it.
window.storedDpopKey = () => new Promise((resolve, reject) => {
  const open = indexedDB.open('tower-jwt-session');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains('dpop-keys')) { db.close(); resolve(null); return; }
    const get = db.transaction('dpop-keys').objectStore('dpop-keys').get('tjs.dpop');
    get.onsuccess = () => { db.close(); resolve(get.result || null); };
    get.onerror = () => { db.close(); reject(get.error); };
  };
});
window.ready = true;
</script></body></html>`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let base;
let mock = null; // child process
let browser;
const isMock = () => mock !== null;

async function startMock() {
  const child = spawn(process.execPath, [path.join(here, 'mock-server.mjs')], {
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('mock server did not start')), 10000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /listening (http:\/\/\S+)/.exec(buf);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => reject(new Error(`mock server exited with ${code}`)));
  });
  return { child, url };
}

before(async () => {
  if (process.env.TJS_BASE_URL) {
    base = process.env.TJS_BASE_URL.replace(/\/+$/, '');
  } else {
    mock = await startMock();
    base = mock.url;
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  if (browser) await browser.close();
  if (mock) mock.child.kill('SIGTERM');
});

async function mockStats() {
  if (!isMock()) return null;
  const r = await fetch(`${base}/__stats`);
  return r.json();
}

/** The file under client/ that a URL of the server stands for, or null. */
function clientFileOf(u) {
  const url = new URL(u);
  if (url.origin !== new URL(base).origin) return null;
  const p = url.pathname;
  const file = p === '/' || p === '/index.html' ? 'index.html'
    : p.startsWith('/client/') && !p.slice(8).includes('/') ? p.slice(8) : null;
  return file && CLIENT_MIME[path.extname(file)] && fs.existsSync(path.join(CLIENT_DIR, file)) ? file : null;
}

/** Serves the checkout's copy of a client file, with the server's own response headers (CSP, …). */
async function serveClientFromDisk(route) {
  const file = clientFileOf(route.request().url());
  const headers = {};
  try {
    const upstream = await route.fetch();
    for (const [k, v] of Object.entries(upstream.headers())) {
      if (!['content-length', 'content-encoding', 'transfer-encoding', 'etag', 'last-modified'].includes(k)) headers[k] = v;
    }
  } catch { /* server unreachable: serve the file anyway */ }
  headers['content-type'] = CLIENT_MIME[path.extname(file)];
  // The demo page must run under a strict CSP; impose one where the server sends none.
  if (file === 'index.html' && !headers['content-security-policy']) headers['content-security-policy'] = STRICT_CSP;
  await route.fulfill({ status: 200, headers, body: fs.readFileSync(path.join(CLIENT_DIR, file)) });
}

// Screenshots of every tab, taken when a test closes its context, kept as CI artifacts.
const ARTIFACTS = process.env.TJS_ARTIFACTS || path.resolve(here, '..', '..', 'target', 'browser-artifacts');
let currentTest = 'test';
beforeEach((t) => { currentTest = t.name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').slice(0, 80); });

async function screenshotAll(context) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const pages = context.pages();
  for (const [i, page] of pages.entries()) {
    try {
      await page.screenshot({ path: path.join(ARTIFACTS, `${currentTest}-tab${i + 1}.png`), fullPage: true, timeout: 5000 });
    } catch { /* a page that already closed or crashed: nothing to keep */ }
  }
}

/** A fresh browser context (= one profile: shared localStorage, locks, BroadcastChannel). */
async function newContext(opts = {}) {
  const context = await browser.newContext(opts);
  const close = context.close.bind(context);
  context.close = async (...args) => { await screenshotAll(context); return close(...args); };
  await context.route(`${base}${TEST_PAGE}`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: TEST_HTML }));
  if (!isMock() && CLIENT_FROM_DISK) await context.route((u) => clientFileOf(u) !== null, serveClientFromDisk);
  const refreshRequests = [];
  context.on('request', (req) => {
    if (new URL(req.url()).pathname.endsWith('/token/refresh')) {
      refreshRequests.push({ at: Date.now(), headers: req.headers(), body: req.postData() });
    }
  });
  return { context, refreshRequests };
}

/** A tab on the test page with a TokenManager made from `opts`. */
async function openTab(context, opts) {
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('[pageerror]', err.message));
  await page.goto(`${base}${TEST_PAGE}`);
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate((o) => window.make(o), { ...FAST, ...opts });
  return page;
}

const FAST = { checkIntervalMs: 500, refreshThresholdMs: 2000, backoffBaseMs: 200, backoffMaxMs: 1000, maxRetries: 4 };

async function login(page, user = 'alice') {
  return page.evaluate((u) => window.tm.login(u, `${u}-password`).then((r) => ({ ...r })), user);
}

/** Expiry of a fresh access token as seen by the client (ms). */
async function lifetime(page) {
  return page.evaluate(() => window.tm.getTokenInfo().timeUntilExpiry);
}

function skipUnlessShortLived(t, ms, max = 15000) {
  if (ms == null || ms > max || ms < 2500) {
    t.skip(`access token lifetime ${ms} ms: start the server with JWT_ACCESS_TOKEN_EXPIRY=4s JWT_AUTO_REFRESH_THRESHOLD=2s`);
    return true;
  }
  return false;
}

/** Makes every /api/ request fail for `ms`: the mock's /__down, or request interception for any server. */
async function takeDown(context, ms) {
  if (isMock()) {
    await fetch(`${base}/__down?ms=${ms}`, { method: 'POST' });
    return;
  }
  const matcher = (u) => new URL(u).pathname.startsWith('/api/');
  const handler = (route) => route.abort('connectionreset');
  await context.route(matcher, handler);
  setTimeout(() => { context.unroute(matcher, handler).catch(() => {}); }, ms);
}

test('login, then background refresh before expiry; no authenticated request fails', async (t) => {
  const { context, refreshRequests } = await newContext();
  try {
    const page = await openTab(context, {});
    const { userId } = await login(page);
    const life = await lifetime(page);
    if (skipUnlessShortLived(t, life)) return;
    const first = await page.evaluate(() => window.tm.getAccessToken());

    // Idle: no request is made by the app, the timers alone must keep the token fresh.
    const idle = await page.evaluate(async (ms) => {
      let minLeft = Infinity;
      let expiredSeen = false;
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const info = window.tm.getTokenInfo();
        if (info.isExpired || !info.isAuthenticated) expiredSeen = true;
        minLeft = Math.min(minLeft, info.timeUntilExpiry);
        await new Promise((r) => setTimeout(r, 50));
      }
      return { minLeft, expiredSeen };
    }, life + 1500);
    assert.equal(idle.expiredSeen, false, 'the access token expired while idle');
    assert.ok(idle.minLeft > 0);
    const second = await page.evaluate(() => window.tm.getAccessToken());
    assert.notEqual(second, first, 'token was not refreshed in the background');
    assert.ok(refreshRequests.length >= 1);

    // Busy: requests every 150 ms across more than one lifetime all succeed without a 401.
    const me401 = [];
    page.on('response', (r) => { if (r.url().endsWith('/api/me') && r.status() === 401) me401.push(r.url()); });
    const statuses = await page.evaluate(async ([ms, uid]) => {
      const out = [];
      const end = Date.now() + ms;
      while (Date.now() < end) {
        try {
          const r = await window.tm.makeAuthenticatedRequest('/api/me');
          const body = await r.json();
          out.push(r.status === 200 && body.data.userId === uid ? 200 : r.status);
        } catch (e) {
          out.push(`error:${e.code || e.message}`);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
      return out;
    }, [life + 1000, userId]);
    assert.ok(statuses.length >= 10);
    assert.deepEqual(statuses.filter((s) => s !== 200), []);
    assert.deepEqual(me401, [], 'no request should have needed the 401 retry');
    const events = await page.evaluate(() => window.events.map((e) => e.type));
    assert.ok(!events.includes('logout'));
    assert.ok(events.includes('refresh'));
  } finally {
    await context.close();
  }
});

async function raceTwoTabs(t, tabOpts) {
  const { context, refreshRequests } = await newContext();
  try {
    const a = await openTab(context, { autoRefresh: false, ...tabOpts });
    const b = await openTab(context, { autoRefresh: false, ...tabOpts });
    await login(a);
    await b.waitForFunction(() => window.tm.isAuthenticated(), null, { timeout: 3000 });
    const life = await lifetime(a);
    if (skipUnlessShortLived(t, life)) return;
    const t0 = await a.evaluate(() => window.tm.getAccessToken());
    assert.equal(await b.evaluate(() => window.tm.getAccessToken()), t0, 'second tab picked up the login');

    await sleep(life + 300);
    assert.equal(await a.evaluate(() => window.tm.getTokenInfo().isExpired), true);
    assert.equal(await b.evaluate(() => window.tm.getTokenInfo().isExpired), true);
    const statsBefore = await mockStats();
    assert.equal(refreshRequests.length, 0);

    const at = Date.now() + 400; // both tabs fire at the same wall-clock instant
    const fire = (page) => page.evaluate(async (when) => {
      await new Promise((r) => setTimeout(r, when - Date.now()));
      return window.tm.getFreshAccessToken();
    }, at);
    const [ta, tb] = await Promise.all([fire(a), fire(b)]);
    assert.ok(ta && tb);
    assert.notEqual(ta, t0);
    assert.equal(ta, tb, 'both tabs end with the same token');
    assert.equal(refreshRequests.length, 1, 'exactly one refresh request');
    const statsAfter = await mockStats();
    if (statsAfter) {
      assert.equal(statsAfter.refresh - statsBefore.refresh, 1, 'exactly one refresh reached the server');
      assert.equal(statsAfter.reuseDetected, statsBefore.reuseDetected);
    }
    for (const page of [a, b]) {
      assert.equal(await page.evaluate(() => window.tm.isAuthenticated()), true);
      const events = await page.evaluate(() => window.events.map((e) => e.type));
      assert.ok(!events.includes('logout'), `no logout, got ${events}`);
      const status = await page.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then((r) => r.status));
      assert.equal(status, 200);
    }
    assert.equal(refreshRequests.length, 1);
  } finally {
    await context.close();
  }
}

test('two tabs racing past expiry: one refresh request, same new token, nobody logged out (Web Locks)', async (t) => {
  await raceTwoTabs(t, {});
});

test('two tabs racing past expiry without Web Locks (storage lease fallback)', async (t) => {
  await raceTwoTabs(t, { useWebLocks: false });
});

test('a Web Lock grant that overtakes the sibling\'s storage write still makes one refresh', async () => {
  // Chromium delivers lock grants and storage updates on different channels; the
  // tab refreshing second may read storage before the first tab's write arrives.
  const { context, refreshRequests } = await newContext();
  try {
    const a = await openTab(context, { autoRefresh: false });
    const b = await openTab(context, { autoRefresh: false });
    await login(a);
    await b.waitForFunction(() => window.tm.isAuthenticated(), null, { timeout: 3000 });
    for (const page of [a, b]) await page.evaluate((o) => window.makeLaggy(o, 400), { ...FAST, autoRefresh: false });
    const at = Date.now() + 300;
    const fire = (page) => page.evaluate(async (when) => {
      await new Promise((r) => setTimeout(r, when - Date.now()));
      const ok = await window.tm.refreshAccessToken();
      return { ok, token: window.tm.getAccessToken() };
    }, at);
    const [ra, rb] = await Promise.all([fire(a), fire(b)]);
    assert.equal(ra.ok && rb.ok, true);
    assert.equal(ra.token, rb.token, 'both tabs end with the same token');
    assert.equal(refreshRequests.length, 1, 'exactly one refresh request');
  } finally {
    await context.close();
  }
});

test('getTokenInfo() exposes the custom claims of the access token (the tenant), and none after logout', async () => {
  const { context } = await newContext();
  try {
    const page = await openTab(context, {});
    assert.deepEqual(await page.evaluate(() => window.tm.getTokenInfo().claims), {});
    await login(page, 'admin');
    const info = await page.evaluate(() => window.tm.getTokenInfo());
    assert.deepEqual(info.claims, { tenant: 'ops' });
    assert.deepEqual(info.roles, ['user', 'admin']);
    const me = await page.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then((r) => r.json()));
    assert.equal(me.data.tenant, 'ops');
    await page.evaluate(() => window.tm.logout());
    assert.deepEqual(await page.evaluate(() => window.tm.getTokenInfo().claims), {});
  } finally {
    await context.close();
  }
});

test('logout in one tab logs out the other', async () => {
  const { context } = await newContext();
  try {
    const a = await openTab(context, {});
    const b = await openTab(context, {});
    await login(a);
    await b.waitForFunction(() => window.tm.isAuthenticated(), null, { timeout: 3000 });
    const token = await b.evaluate(() => window.tm.getAccessToken());
    assert.equal(await a.evaluate(() => window.tm.logout()), true);
    await b.waitForFunction(() => !window.tm.isAuthenticated(), null, { timeout: 2000 });
    const bEvents = await b.evaluate(() => window.events.map((e) => e.type));
    assert.ok(bEvents.includes('logout'));
    const code = await b.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then(() => 'sent', (e) => e.code));
    assert.equal(code, 'not_authenticated');
    const stored = await b.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tjs.')));
    assert.deepEqual(stored, []);
    // The server ended the session: the old token is refused.
    const status = await b.evaluate((tk) => fetch('/api/me', { headers: { Authorization: `Bearer ${tk}` } }).then((r) => r.status), token);
    assert.equal(status, 401);
  } finally {
    await context.close();
  }
});

test('server down for a while: bounded backoff, session survives', async (t) => {
  const { context, refreshRequests } = await newContext();
  try {
    // Fixed jitter (0.6 of the cap): delays 180, 360, 600, 600, … ms, 5.3 s over 10 retries.
    const opts = { autoRefresh: false, maxRetries: 10, backoffBaseMs: 300, backoffMaxMs: 1000, jitter: 0.6 };
    const page = await openTab(context, opts);
    await login(page);
    const life = await lifetime(page);
    if (skipUnlessShortLived(t, life)) return;
    await sleep(Math.max(0, life - 2000) + 200); // refresh is due now

    // 1) Outage of 3 s; one refresh call rides it out.
    const downMs = 3000;
    await takeDown(context, downMs);
    const t0 = Date.now();
    const ok = await page.evaluate(() => window.tm.refreshAccessToken());
    const elapsed = Date.now() - t0;
    const attempts = refreshRequests.length;
    assert.equal(ok, true, 'refresh succeeded once the server came back');
    assert.ok(elapsed >= downMs - 300, `returned after ${elapsed} ms, before the server was back`);
    assert.ok(attempts >= 2 && attempts <= 11, `attempts ${attempts} within [2, maxRetries + 1]`);
    const delays = await page.evaluate(() => window.events.filter((e) => e.type === 'retry').map((e) => e.delayMs));
    assert.equal(delays.length, attempts - 1);
    assert.deepEqual(delays.slice(0, 4), [180, 360, 600, 600], 'exponential backoff, capped');
    // Backoff: the attempts are spread out, not hammering.
    const gaps = refreshRequests.slice(1).map((r, i) => r.at - refreshRequests[i].at);
    assert.ok(gaps.reduce((s, g) => s + g, 0) >= downMs - 500);
    assert.equal(await page.evaluate(() => window.tm.isAuthenticated()), true);

    // 2) Outage longer than the retry budget: the refresh gives up, the session is kept.
    await page.evaluate((o) => window.make(o), { ...FAST, autoRefresh: false, maxRetries: 2, backoffBaseMs: 100, backoffMaxMs: 200, jitter: 0.5 });
    await sleep(Math.max(0, life - 2000) + 200);
    const before = refreshRequests.length;
    await takeDown(context, 2500);
    const t1 = Date.now();
    const gaveUp = await page.evaluate(() => window.tm.refreshAccessToken());
    assert.equal(gaveUp, false);
    assert.equal(refreshRequests.length - before, 3, 'maxRetries 2 = 3 attempts');
    assert.ok(Date.now() - t1 < 2000);
    const state = await page.evaluate(() => ({
      auth: window.tm.isAuthenticated(),
      stored: localStorage.getItem('tjs.session') !== null,
      events: window.events.map((e) => e.type),
      lastError: window.tm.getTokenInfo().lastError,
    }));
    assert.equal(state.auth, true);
    assert.equal(state.stored, true);
    assert.ok(!state.events.includes('logout'));
    assert.ok(state.events.includes('refresh-error'));
    assert.equal(state.lastError.code, 'network_error');
    await sleep(2700 - (Date.now() - t1));
    const status = await page.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then((r) => r.status));
    assert.equal(status, 200, 'session works once the server is back');
    if (isMock()) assert.ok((await mockStats()).failedWhileDown >= attempts - 1);
  } finally {
    await context.close();
  }
});

test('Retry-After longer than backoffMaxMs is honoured, not cut to the cap', async () => {
  const { context, refreshRequests } = await newContext();
  try {
    const page = await openTab(context, { autoRefresh: false, maxRetries: 3, backoffBaseMs: 100, backoffMaxMs: 1000, jitter: 0.5 });
    await login(page);
    const matcher = (u) => new URL(u).pathname.endsWith('/token/refresh');
    await context.route(matcher, (route) => route.fulfill({
      status: 429,
      contentType: 'application/json',
      headers: { 'Retry-After': '900' },
      body: JSON.stringify({ success: false, message: 'Too many requests', error: 'rate_limited' }),
    }));
    const before = refreshRequests.length;
    page.evaluate(() => { window.tm.refreshAccessToken(); }).catch(() => {});
    await page.waitForFunction(() => window.events.some((e) => e.type === 'retry'));
    const delay = await page.evaluate(() => window.events.find((e) => e.type === 'retry').delayMs);
    assert.equal(delay, 900000, 'the retry waits the 900 s the server asked for');
    await sleep(2500); // longer than backoffMaxMs: the old client retried here
    assert.equal(refreshRequests.length - before, 1, 'no second request before Retry-After');
  } finally {
    await context.close();
  }
});

test('a 401 on a request triggers one refresh and one retry', async () => {
  const { context, refreshRequests } = await newContext();
  try {
    const page = await openTab(context, { autoRefresh: false });
    const { userId } = await login(page);
    const seen = [];
    let mode = 'once';
    await context.route((u) => new URL(u).pathname === '/api/me', (route) => {
      seen.push(route.request().headers().authorization);
      if (mode === 'always' || (mode === 'once' && seen.length === 1)) {
        return route.fulfill({ status: 401, contentType: 'application/json',
          headers: { 'WWW-Authenticate': 'Bearer realm="test", error="invalid_token"' },
          body: JSON.stringify({ success: false, message: 'Invalid token', error: 'invalid_token' }) });
      }
      return route.continue();
    });
    const first = await page.evaluate(async () => {
      const r = await window.tm.makeAuthenticatedRequest('/api/me', { headers: { 'X-Custom': 'kept' } });
      return { status: r.status, body: await r.json() };
    });
    assert.equal(first.status, 200);
    assert.equal(first.body.data.userId, userId);
    assert.equal(seen.length, 2, 'one retry');
    assert.notEqual(seen[0], seen[1], 'retried with the refreshed token');
    assert.equal(refreshRequests.length, 1, 'one refresh');

    // A 401 that persists: still exactly one refresh and one retry, then the 401 is returned.
    mode = 'always';
    const second = await page.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then((r) => r.status));
    assert.equal(second, 401);
    assert.equal(seen.length, 4);
    assert.equal(refreshRequests.length, 2);
    assert.equal(await page.evaluate(() => window.tm.isAuthenticated()), true);
  } finally {
    await context.close();
  }
});

test('getAccessToken() is synchronous and starts a due refresh in the background; getFreshAccessToken() awaits it', async (t) => {
  const { context, refreshRequests } = await newContext();
  try {
    const page = await openTab(context, { autoRefresh: false });
    await login(page);
    const life = await lifetime(page);
    if (skipUnlessShortLived(t, life)) return;
    const r0 = await page.evaluate(() => {
      const token = window.tm.getAccessToken();
      return { token, type: typeof token, refreshing: window.tm.getTokenInfo().refreshing };
    });
    assert.equal(r0.type, 'string');
    assert.equal(r0.refreshing, false, 'no refresh while the token is fresh');
    await sleep(life - 1000); // past the refresh point (at most half the life left), not yet expired
    const r1 = await page.evaluate(async () => {
      const token = window.tm.getAccessToken();
      const type = typeof token;
      const refreshing = window.tm.getTokenInfo().refreshing;
      const fresh = await window.tm.getFreshAccessToken();
      return { token, type, refreshing, fresh, now: window.tm.getAccessToken() };
    });
    assert.equal(r1.type, 'string', 'getAccessToken() returns the token itself, not a promise');
    assert.equal(r1.token, r0.token, 'the current (due) token is returned at once');
    assert.equal(r1.refreshing, true, 'a background refresh was started');
    assert.ok(r1.fresh && r1.fresh !== r0.token, 'getFreshAccessToken() resolved to the refreshed token');
    assert.equal(r1.now, r1.fresh);
    assert.equal(refreshRequests.length, 1, 'one refresh for both calls');
  } finally {
    await context.close();
  }
});

test('X-Token-Refresh: true on a response starts a refresh', async (t) => {
  const { context, refreshRequests } = await newContext();
  try {
    // Client threshold far below the server's, so only the server's hint can trigger the refresh.
    const page = await openTab(context, { autoRefresh: false, refreshThresholdMs: 300 });
    await login(page);
    const life = await lifetime(page);
    if (skipUnlessShortLived(t, life)) return;
    const hinted = [];
    page.on('response', (r) => { if (r.url().endsWith('/api/me') && r.headers()['x-token-refresh'] === 'true') hinted.push(1); });
    await sleep(Math.max(0, life - 2000) + 400);
    const status = await page.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then((r) => r.status));
    assert.equal(status, 200);
    if (hinted.length === 0) { t.skip('server sent no X-Token-Refresh (threshold not configured, or header not exposed)'); return; }
    await page.waitForFunction(() => window.events.some((e) => e.type === 'refresh'), null, { timeout: 3000 });
    assert.equal(refreshRequests.length, 1);
  } finally {
    await context.close();
  }
});

test('cookie mode: refresh token never in JS-visible storage; refresh via cookie + X-Requested-With', async () => {
  const { context, refreshRequests } = await newContext();
  try {
    const page = await openTab(context, { cookieMode: true, autoRefresh: false });
    const loginResponse = page.waitForResponse((r) => r.url().endsWith('/api/auth/login'));
    await login(page);
    // Cookie-only delivery (SPEC §5): the login body has no refresh token, the HttpOnly cookie does.
    const loginBody = await (await loginResponse).json();
    assert.equal(loginBody.data.refreshToken, undefined, 'no refresh token in the login body');
    assert.ok(loginBody.data.accessToken, 'an access token in the login body');
    const rt0 = (await context.cookies()).find((c) => c.httpOnly)?.value;
    assert.ok(rt0, 'login set a refresh token');

    const visible = () => page.evaluate(() => {
      const dump = (s) => Object.keys(s).map((k) => `${k}=${s.getItem(k)}`).join('\n');
      return [dump(localStorage), dump(sessionStorage), document.cookie, JSON.stringify(window.tm.getTokenInfo())].join('\n');
    });
    assert.ok(!(await visible()).includes(rt0), 'refresh token visible to JS after login');
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('tjs.session')).refreshToken), undefined);
    const cookie = (await context.cookies()).find((c) => c.value === rt0);
    assert.ok(cookie && cookie.httpOnly, 'refresh token sits in an HttpOnly cookie');

    const before = await page.evaluate(() => window.tm.getAccessToken());
    assert.equal(await page.evaluate(() => window.tm.refreshAccessToken()), true);
    assert.equal(refreshRequests.length, 1);
    const req = refreshRequests[0];
    assert.equal(req.headers['x-requested-with'], 'XMLHttpRequest');
    assert.ok(!req.body || !req.body.includes('refreshToken'), 'no token in the refresh body');
    const after = await page.evaluate(() => window.tm.getAccessToken());
    assert.notEqual(after, before);
    const rotated = (await context.cookies()).find((c) => c.httpOnly && c.name === cookie.name);
    assert.ok(rotated && rotated.value !== rt0, 'cookie rotated');
    assert.ok(!(await visible()).includes(rotated.value), 'rotated refresh token visible to JS');
    if (isMock()) {
      const log = (await mockStats()).refreshLog.at(-1);
      assert.equal(log.via, 'cookie');
      assert.equal(log.status, 200);
    }
    assert.equal(await page.evaluate(() => window.tm.makeAuthenticatedRequest('/api/me').then((r) => r.status)), 200);
    // The cookie alone, without X-Requested-With, is refused (CSRF).
    const csrf = await page.evaluate(() => fetch('/api/token/refresh', { method: 'POST', credentials: 'include' }).then((r) => r.status));
    assert.equal(csrf, 403);
  } finally {
    await context.close();
  }
});

test('a refresh answered 401 (reuse detected) logs out every tab', async () => {
  const { context } = await newContext();
  try {
    const a = await openTab(context, { autoRefresh: false });
    const b = await openTab(context, { autoRefresh: false });
    await login(a);
    await b.waitForFunction(() => window.tm.isAuthenticated(), null, { timeout: 3000 });
    const stolen = await a.evaluate(() => JSON.parse(localStorage.getItem('tjs.session')).refreshToken);
    assert.equal(await a.evaluate(() => window.tm.refreshAccessToken()), true);
    assert.equal(await a.evaluate(() => window.tm.refreshAccessToken()), true);
    // The attacker presents a grandparent token: theft, the session is revoked.
    const r = await fetch(`${base}/api/token/refresh`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: stolen }) });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error, 'refresh_token_reused');
    assert.equal(await b.evaluate(() => window.tm.refreshAccessToken()), false);
    await a.waitForFunction(() => !window.tm.isAuthenticated(), null, { timeout: 2000 });
    assert.equal(await b.evaluate(() => window.tm.isAuthenticated()), false);
    const reasons = await a.evaluate(() => window.events.filter((e) => e.type === 'logout').map((e) => e.reason));
    assert.equal(reasons.length, 1);
  } finally {
    await context.close();
  }
});

test('install(): window.tokenManager, legacy getToken(), default export', async () => {
  const { context } = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${base}${TEST_PAGE}`);
    await page.waitForFunction(() => window.ready === true);
    const r = await page.evaluate(async () => {
      const before = { tm: 'tokenManager' in window, getToken: typeof window.getToken };
      const tm = window.TokenManager.install({ autoRefresh: false });
      const same = window.TokenManager.install() === tm && window.tokenManager === tm;
      const { userId } = await tm.login('bob', 'bob-password');
      const sync = window.getToken();
      const direct = window.tokenManager.getAccessToken(); // the guide's synchronous call
      const apiShape = { direct: typeof direct === 'string' && direct === sync,
        peekAlias: tm.peekAccessToken() === direct, freshIsPromise: tm.getFreshAccessToken() instanceof Promise };
      const viaAsync = await window.tokenManager.getFreshAccessToken();
      const info = window.tokenManager.getTokenInfo();
      const stats = await tm.getSessionStats();
      const revoked = await tm.logoutEverywhere();
      return { userId, before, same, apiShape, syncIsString: typeof sync === 'string', equal: sync === viaAsync, info, stats,
        revoked, after: window.getToken(), defaultExportOk: window.defaultExportOk,
        infoLeaks: JSON.stringify(info).includes(viaAsync) };
    });
    assert.deepEqual(r.before, { tm: false, getToken: 'undefined' });
    assert.equal(r.same, true);
    assert.equal(r.syncIsString, true);
    assert.deepEqual(r.apiShape, { direct: true, peekAlias: true, freshIsPromise: true });
    assert.equal(r.equal, true);
    assert.ok(r.userId);
    assert.equal(r.info.userId, r.userId);
    assert.equal(r.info.isAuthenticated, true);
    assert.equal(r.infoLeaks, false);
    assert.equal(r.stats.userId, r.userId);
    assert.ok(r.stats.sessions.some((s) => s.current));
    assert.ok(r.revoked >= 1);
    assert.equal(r.after, null);
    assert.equal(r.defaultExportOk, true);
    if (isMock() || CLIENT_FROM_DISK) {
      const served = await page.evaluate(() => fetch('/client/token-manager.js').then((x) => x.text()));
      assert.equal(served, fs.readFileSync(path.join(CLIENT_DIR, 'token-manager.js'), 'utf8'), 'the page runs this checkout\'s token-manager.js');
    }
  } finally {
    await context.close();
  }
});

test('demo page works under a strict CSP', async (t) => {
  const { context } = await newContext();
  try {
    const page = await context.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    const nav = await page.goto(`${base}/`);
    const csp = (await nav.allHeaders())['content-security-policy'];
    if (csp) assert.match(csp, /script-src 'self'/);
    else t.diagnostic('the server sent no Content-Security-Policy; the page ran without one');
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-password');
    await page.click('#login-button');
    await page.waitForSelector('#session-panel:not([hidden])', { timeout: 5000 });
    await page.click('#whoami-button');
    await page.waitForFunction(() => /^200\n[^]*"userId"/.test(document.querySelector('#whoami-output').textContent));
    await page.click('#sessions-button');
    await page.waitForSelector('#sessions-table tbody tr');
    await page.waitForFunction(() => /\d/.test(document.querySelector('#countdown').textContent));
    if (process.env.TJS_SCREENSHOT) await page.screenshot({ path: process.env.TJS_SCREENSHOT, fullPage: true });
    await page.click('#logout-button');
    await page.waitForSelector('#login-panel:not([hidden])', { timeout: 5000 });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

test('cookie mode: logout with an expired access token and a refresh in flight ends the session; the cookie refreshes no more', async (t) => {
  const { context } = await newContext();
  try {
    const page = await openTab(context, { cookieMode: true, autoRefresh: false });
    await login(page);
    const life = await lifetime(page);
    if (skipUnlessShortLived(t, life)) return;
    await sleep(life + 300);
    assert.equal(await page.evaluate(() => window.tm.getTokenInfo().isExpired), true);
    const expired = await page.evaluate(() => window.tm.getAccessToken());
    // The refresh reaches the server (the session rotates) but its answer is held back, so
    // that it is in flight when logout() runs.
    const matcher = (u) => new URL(u).pathname.endsWith('/token/refresh');
    const handler = async (route) => {
      const response = await route.fetch();
      await sleep(800);
      await route.fulfill({ response }).catch(() => {});
    };
    await context.route(matcher, handler);
    const logoutRequest = page.waitForRequest((req) => req.url().endsWith('/api/token/logout'));
    const r = await page.evaluate(async () => {
      const refresh = window.tm.refreshAccessToken();
      await new Promise((res) => setTimeout(res, 150));
      const inflight = window.tm.getTokenInfo().refreshing;
      const loggedOut = await window.tm.logout();
      await refresh;
      return { inflight, loggedOut, auth: window.tm.isAuthenticated(),
        errors: window.events.filter((e) => e.type === 'logout-error').length };
    });
    await context.unroute(matcher, handler);
    assert.equal(r.inflight, true, 'a refresh was in flight when logout() was called');
    // logout() waited for the refresh and sent its new access token.
    const bearer = (await logoutRequest).headers().authorization;
    assert.ok(bearer && bearer.startsWith('Bearer ') && bearer !== `Bearer ${expired}`, `logout sent ${bearer ? 'the expired token' : 'no token'}`);
    assert.equal(r.loggedOut, true, 'the server confirmed the logout');
    assert.equal(r.errors, 0);
    assert.equal(r.auth, false);
    // Whatever refresh cookie the browser still holds, it refreshes no more.
    const status = await page.evaluate(() => fetch('/api/token/refresh', {
      method: 'POST', credentials: 'include', headers: { 'X-Requested-With': 'XMLHttpRequest' },
    }).then((res) => res.status));
    assert.notEqual(status, 200, 'the refresh cookie still refreshes after logout');
  } finally {
    await context.close();
  }
});

test('cookie mode: logout with an expired access token and no refresh possible still ends the session through the cookie', async (t) => {
  const { context } = await newContext();
  try {
    const page = await openTab(context, { cookieMode: true, autoRefresh: false, maxRetries: 0 });
    await login(page);
    const life = await lifetime(page);
    if (skipUnlessShortLived(t, life)) return;
    await sleep(life + 300);
    // The refresh that logout() tries first fails (503): the logout goes out without a bearer token.
    const matcher = (u) => new URL(u).pathname.endsWith('/token/refresh');
    const handler = (route) => route.fulfill({ status: 503, contentType: 'application/json',
      body: JSON.stringify({ success: false, message: 'Store unavailable', error: 'unavailable' }) });
    await context.route(matcher, handler);
    const logoutRequest = page.waitForRequest((req) => req.url().endsWith('/api/token/logout'));
    assert.equal(await page.evaluate(() => window.tm.logout()), true, 'the server ended the session the cookie names');
    assert.equal((await logoutRequest).headers().authorization, undefined);
    await context.unroute(matcher, handler);
    const status = await page.evaluate(() => fetch('/api/token/refresh', {
      method: 'POST', credentials: 'include', headers: { 'X-Requested-With': 'XMLHttpRequest' },
    }).then((res) => res.status));
    assert.notEqual(status, 200);
  } finally {
    await context.close();
  }
});

test('a logout the server does not confirm is reported: logout() false, a logout-error event, the demo page says so', async () => {
  const { context } = await newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${base}/`);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-password');
    await page.click('#login-button');
    await page.waitForSelector('#session-panel:not([hidden])', { timeout: 5000 });
    await page.evaluate(() => {
      window.logoutErrors = [];
      window.tokenManager.on('logout-error', (e) => window.logoutErrors.push({ reason: e.reason, status: e.status }));
    });
    const matcher = (u) => new URL(u).pathname === '/api/token/logout';
    await context.route(matcher, (route) => route.fulfill({ status: 503, contentType: 'application/json',
      headers: { 'Retry-After': '1' },
      body: JSON.stringify({ success: false, message: 'Store unavailable', error: 'unavailable' }) }));
    await page.click('#logout-button');
    await page.waitForSelector('#login-panel:not([hidden])', { timeout: 5000 });
    await page.waitForSelector('#status:not([hidden])', { timeout: 3000 });
    const text = await page.textContent('#status');
    assert.match(text, /not confirm/i, `status: ${text}`);
    assert.deepEqual(await page.evaluate(() => window.logoutErrors), [{ reason: 'unavailable', status: 503 }]);
    assert.deepEqual(await page.evaluate(() => window.tokenManager.getTokenInfo().lastError?.code), 'unavailable');
  } finally {
    await context.close();
  }
});

test('without Web Locks, two tabs keep to the Retry-After of a 503: wake-ups do not cut the backoff short', async () => {
  const { context, refreshRequests } = await newContext();
  try {
    // What plain-http origins get: no navigator.locks, so the storage lease fallback.
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
    });
    const opts = { autoRefresh: false, maxRetries: 5, backoffBaseMs: 100, backoffMaxMs: 500, jitter: 0.5 };
    const a = await openTab(context, opts);
    const b = await openTab(context, opts);
    assert.equal(await a.evaluate(() => navigator.locks === undefined), true);
    await login(a);
    await b.waitForFunction(() => window.tm.isAuthenticated(), null, { timeout: 3000 });
    const matcher = (u) => new URL(u).pathname.endsWith('/token/refresh');
    await context.route(matcher, (route) => route.fulfill({ status: 503, contentType: 'application/json',
      headers: { 'Retry-After': '2' },
      body: JSON.stringify({ success: false, message: 'Store unavailable', error: 'unavailable' }) }));
    const before = refreshRequests.length;
    for (const page of [a, b]) page.evaluate(() => { window.tm.refreshAccessToken(); }).catch(() => {});
    await sleep(4500);
    const seen = refreshRequests.slice(before).map((x) => x.at);
    const gaps = seen.slice(1).map((at, i) => at - seen[i]);
    // Retry-After: 2 → one request at about 0, 2 and 4 s, whichever tab sends it.
    assert.ok(seen.length >= 2 && seen.length <= 3, `${seen.length} refresh requests in 4.5 s (gaps ${gaps} ms)`);
    assert.ok(gaps.every((g) => g >= 1800), `a request came before Retry-After: gaps ${gaps} ms`);
    for (const page of [a, b]) assert.equal(await page.evaluate(() => window.tm.isAuthenticated()), true);
  } finally {
    await context.close();
  }
});

test('devices list: one browser signs the other out; that browser logs out on its next request and says why', async (t) => {
  if (isMock()) {
    t.skip('needs the real server (device metadata, DELETE sessions/:id, logout-others)');
    return;
  }
  // Two profiles = two devices logged in as the same user; the second one is a phone.
  const { context: laptop } = await newContext();
  const { context: phone } = await newContext({
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  });
  const demoLogin = async (page) => {
    await page.goto(`${base}/`);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-password');
    await page.click('#login-button');
    await page.waitForSelector('#session-panel:not([hidden])', { timeout: 5000 });
    await page.evaluate(() => {
      window.logoutReasons = [];
      window.tokenManager.on('logout', (e) => window.logoutReasons.push(e.reason));
    });
    return page.evaluate(() => window.tokenManager.getTokenInfo().sessionId);
  };
  const rowOf = (sid) => `#sessions-table tbody tr[data-session-id="${sid}"]`;
  try {
    const a = await laptop.newPage();
    const b = await phone.newPage();
    const problems = [];
    for (const page of [a, b]) page.on('pageerror', (e) => problems.push(e.message));
    const sidA = await demoLogin(a);
    // Other tests leave alice signed in elsewhere: start from this one session.
    await a.click('#logout-others-button');
    await a.waitForFunction(() => /Signed out \d+ other/.test(document.querySelector('#status').textContent));
    const sidB = await demoLogin(b);
    assert.notEqual(sidA, sidB);

    await a.click('#sessions-button');
    await a.waitForSelector(rowOf(sidB));
    assert.equal(await a.locator('#sessions-table tbody tr').count(), 2);
    const own = a.locator(rowOf(sidA));
    assert.equal(await own.getAttribute('class'), 'current');
    assert.match(await own.textContent(), /Chrome on Linux this tab/);
    assert.match(await own.textContent(), /127\.0\.0\.0\/24/);
    const other = a.locator(rowOf(sidB));
    assert.equal(await other.getAttribute('class'), null);
    assert.match(await other.textContent(), /Safari on iOS/);
    assert.doesNotMatch(await other.textContent(), /this tab/);
    const shot = path.join(ARTIFACTS, 'devices-list.png');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await a.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`devices list screenshot: ${shot}`);

    // The laptop signs the phone out from its row.
    await other.locator('button.end-session').click();
    await a.waitForSelector(rowOf(sidB), { state: 'detached', timeout: 5000 });
    assert.equal(await a.locator('#sessions-table tbody tr').count(), 1);

    // The phone learns it on its next request: logged out, with the reason, and the page says why.
    await b.click('#whoami-button');
    await b.waitForSelector('#login-panel:not([hidden])', { timeout: 5000 });
    assert.deepEqual(await b.evaluate(() => window.logoutReasons), ['token_revoked']);
    assert.match(await b.textContent('#status'), /ended elsewhere/);
    // The laptop is still signed in.
    await a.click('#whoami-button');
    await a.waitForFunction(() => /^200\n/.test(document.querySelector('#whoami-output').textContent));

    // "Sign out all other devices": the phone signs in again and is ended on its next refresh.
    const sidB2 = await demoLogin(b);
    await a.click('#logout-others-button');
    await a.waitForFunction(() => /Signed out 1 other device/.test(document.querySelector('#status').textContent));
    await a.waitForSelector(rowOf(sidB2), { state: 'detached', timeout: 5000 });
    assert.equal(await b.evaluate(() => window.tokenManager.refreshAccessToken()), false);
    assert.deepEqual(await b.evaluate(() => window.logoutReasons), ['token_revoked']);
    await b.waitForSelector('#login-panel:not([hidden])', { timeout: 5000 });
    assert.deepEqual(await a.evaluate(() => window.tokenManager.listSessions().then((l) => l.map((s) => [s.sessionId, s.current]))),
      [[sidA, true]]);
    assert.deepEqual(problems, []);
  } finally {
    await laptop.close();
    await phone.close();
  }
});

test('recent activity under the devices list: each sign-in with its device, then the session ended from the other device, newest first', async (t) => {
  if (isMock()) {
    t.skip('needs the real server (GET /api/token/activity)');
    return;
  }
  const { context: laptop } = await newContext();
  const { context: phone } = await newContext({
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  });
  const demoLogin = async (page) => {
    await page.goto(`${base}/`);
    await page.fill('#username', 'bob');
    await page.fill('#password', 'bob-password');
    await page.click('#login-button');
    await page.waitForSelector('#session-panel:not([hidden])', { timeout: 5000 });
    return page.evaluate(() => window.tokenManager.getTokenInfo().sessionId);
  };
  // Events are written in the background: ask again until the newest ones are there.
  const activityUntil = async (page, ok) => {
    let items = [];
    for (let i = 0; i < 25; i += 1) {
      await page.click('#sessions-button');
      await page.waitForSelector('#activity-list li, #activity-list:not(:empty)', { timeout: 5000 });
      items = await page.$$eval('#activity-list li', (lis) => lis.map((li) => li.textContent));
      if (ok(items)) return items;
      await page.waitForTimeout(200);
    }
    assert.fail(`the activity list never showed what was expected: ${JSON.stringify(items)}`);
  };
  try {
    const a = await laptop.newPage();
    const b = await phone.newPage();
    const problems = [];
    for (const page of [a, b]) page.on('pageerror', (e) => problems.push(e.message));
    await demoLogin(a);
    const sidB = await demoLogin(b);
    const signIns = await activityUntil(a, (items) => items.length >= 2 && /Signed in from Safari on iOS/.test(items[0]));
    assert.match(signIns[1], /Signed in from Chrome on Linux/);
    assert.match(signIns[0], /127\.0\.0\.0\/24/);

    // The laptop ends the phone's session from its row: the newest entry says so.
    await a.locator(`#sessions-table tbody tr[data-session-id="${sidB}"] button.end-session`).click();
    await a.waitForSelector(`#sessions-table tbody tr[data-session-id="${sidB}"]`, { state: 'detached', timeout: 5000 });
    const ended = await activityUntil(a, (items) => /Session ended \(other device\)/.test(items[0] || ''));
    assert.match(ended[1], /Signed in from Safari on iOS/);
    assert.ok(ended.every((item) => !/alice/.test(item)));
    assert.deepEqual(problems, []);
  } finally {
    await laptop.close();
    await phone.close();
  }
});

test('step-up: a stale password check opens the confirm dialog; a wrong password is said, the right one re-authenticates the same session and the action goes through', async (t) => {
  if (isMock()) {
    t.skip('needs the real server (require_recent_auth, POST /api/auth/reauthenticate)');
    return;
  }
  const { context } = await newContext();
  try {
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(`${base}/`);
    await page.fill('#username', 'alice');
    await page.fill('#password', 'alice-password');
    await page.click('#login-button');
    await page.waitForSelector('#session-panel:not([hidden])', { timeout: 5000 });
    const info = () => page.evaluate(() => {
      const i = window.tokenManager.getTokenInfo();
      return { sessionId: i.sessionId };
    });
    const before = await info();
    const authTime = () => page.evaluate(() => {
      const payload = window.tokenManager.getAccessToken().split('.')[1];
      return JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))).auth_time;
    });
    const loginAuthTime = await authTime();
    assert.equal(typeof loginAuthTime, 'number');

    // Just logged in: the security page answers without a question.
    await page.click('#security-button');
    await page.waitForFunction(() => /^200\n/.test(document.querySelector('#security-output').textContent));

    // Past SESSION_STEP_UP_MAX_AGE (run.sh: 3 s) the server asks for a fresh password check.
    await page.waitForTimeout(3500);
    await page.click('#security-button');
    await page.waitForSelector('#stepup-dialog[open]', { timeout: 5000 });
    assert.match(await page.textContent('#stepup-reason'), /password check within the last 1 minute/);

    // A wrong password: said in the dialog, which stays open; the session is untouched.
    await page.fill('#stepup-password', 'not-the-password');
    await page.click('#stepup-confirm');
    await page.waitForSelector('#stepup-error:not([hidden])', { timeout: 5000 });
    assert.ok(await page.isVisible('#stepup-dialog[open]'));
    assert.equal(await authTime(), loginAuthTime);

    // The right one: the dialog closes, the same session has a new auth_time, the action went through.
    await page.fill('#stepup-password', 'alice-password');
    await page.click('#stepup-confirm');
    await page.waitForSelector('#stepup-dialog:not([open])', { state: 'attached', timeout: 5000 });
    await page.waitForFunction(() => /^200\n/.test(document.querySelector('#security-output').textContent));
    assert.deepEqual(await info(), before);
    assert.ok((await authTime()) > loginAuthTime);
    assert.ok(await page.isVisible('#session-panel'));
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// ---- The refresh token out of script's reach by default; DPoP (issue 29)

test('by default the refresh token is delivered as the HttpOnly cookie and never reaches script', async () => {
  const { context } = await newContext();
  try {
    const page = await openTab(context, { refreshTokenDelivery: 'default', autoRefresh: false });
    const loginBodies = [];
    page.on('response', async (r) => {
      if (r.url().endsWith('/api/auth/login')) loginBodies.push(await r.text().catch(() => ''));
    });
    await login(page);
    const seen = await page.evaluate(() => ({
      info: window.tm.getTokenInfo(),
      storage: Object.keys(localStorage).map((k) => localStorage.getItem(k)).join('\n'),
      cookie: document.cookie,
    }));
    assert.equal(seen.info.refreshTokenDelivery, 'cookie');
    assert.equal(seen.info.hasRefreshToken, null);
    assert.ok(!/refreshToken/.test(seen.storage), 'no refresh token in localStorage');
    assert.equal(seen.cookie, '', 'the refresh cookie is HttpOnly');
    assert.equal(loginBodies.length, 1);
    assert.equal(JSON.parse(loginBodies[0]).data.refreshToken, undefined, 'not in the login body either');
    // And the session refreshes through the cookie.
    assert.equal(await page.evaluate(() => window.tm.refreshAccessToken()), true);
  } finally {
    await context.close();
  }
});

test('dpop: login with a non-extractable key, every request carries a proof; a copied token is refused, tm.fetch works', async () => {
  if (isMock()) await fetch(`${base}/__reset`, { method: 'POST' });
  const { context } = await newContext();
  try {
    const page = await openTab(context, { refreshTokenDelivery: 'default', dpop: true, autoRefresh: false });
    const proofs = [];
    page.on('request', (req) => {
      const h = req.headers();
      if (new URL(req.url()).pathname.startsWith('/api/')) proofs.push({ path: new URL(req.url()).pathname, dpop: h.dpop || null, authorization: h.authorization || null });
    });
    await login(page);
    const result = await page.evaluate(async () => {
      const stored = await window.storedDpopKey();
      let exportError = null;
      try { await crypto.subtle.exportKey('jwk', stored.privateKey); } catch (e) { exportError = e.name; }
      let pkcs8Error = null;
      try { await crypto.subtle.exportKey('pkcs8', stored.privateKey); } catch (e) { pkcs8Error = e.name; }
      const me = await window.tm.fetch('/api/me');
      return {
        alg: stored.alg,
        extractable: stored.privateKey.extractable,
        exportError,
        pkcs8Error,
        jwkHasD: 'd' in stored.jwk,
        me: me.status,
        jkt: await window.tm.getDpopThumbprint(),
        info: window.tm.getTokenInfo(),
        token: window.tm.getAccessToken(),
      };
    });
    assert.equal(result.extractable, false);
    assert.equal(result.exportError, 'InvalidAccessError', 'exportKey on the stored private key fails');
    assert.equal(result.pkcs8Error, 'InvalidAccessError');
    assert.equal(result.jwkHasD, false);
    assert.equal(result.me, 200);
    const login_ = proofs.find((p) => p.path === '/api/auth/login');
    const me = proofs.find((p) => p.path === '/api/me');
    assert.ok(login_ && login_.dpop, 'the login carries a proof');
    assert.ok(me && me.dpop, 'the request carries a proof');
    const claims = JSON.parse(Buffer.from(me.dpop.split('.')[1], 'base64url'));
    assert.equal(claims.htm, 'GET');
    assert.equal(claims.htu, `${base}/api/me`);
    assert.ok(claims.ath, 'with ath');
    if (isMock()) {
      const stats = await mockStats();
      assert.ok(stats.dpop.every((d) => d.jkt === result.jkt), 'every proof by the stored key');
    } else {
      // The server bound the session to the stored key (run.sh starts it with SESSION_DPOP=optional).
      const cnf = JSON.parse(Buffer.from(result.token.split('.')[1], 'base64url')).cnf;
      assert.equal(cnf && cnf.jkt, result.jkt, 'the access token carries cnf.jkt of the stored key');
    }
    assert.equal(result.info.tokenType, 'DPoP');
    assert.match(me.authorization, /^DPoP /);
    // The token copied into a plain fetch: as Bearer, or as DPoP without a proof, refused.
    const copied = await page.evaluate(async (token) => {
      const bearer = await fetch('/api/me', { headers: { Authorization: `Bearer ${token}` } });
      const noProof = await fetch('/api/me', { headers: { Authorization: `DPoP ${token}` } });
      const again = await window.tm.fetch('/api/me');
      return { bearer: bearer.status, noProof: noProof.status, again: again.status };
    }, result.token);
    assert.deepEqual(copied, { bearer: 401, noProof: 401, again: 200 });
    // And the session refreshes with a proof by the same key.
    assert.equal(await page.evaluate(() => window.tm.refreshAccessToken()), true);
  } finally {
    await context.close();
  }
});

test('dpop: two tabs use one key, made once, kept across a reload', async () => {
  if (isMock()) await fetch(`${base}/__reset`, { method: 'POST' });
  const { context } = await newContext();
  try {
    // Both tabs start at once: both may make a key; the first one stored wins for both.
    const [a, b] = await Promise.all([
      openTab(context, { refreshTokenDelivery: 'default', dpop: true, autoRefresh: false }),
      openTab(context, { refreshTokenDelivery: 'default', dpop: true, autoRefresh: false }),
    ]);
    const [ja, jb] = await Promise.all([a.evaluate(() => window.tm.getDpopThumbprint()), b.evaluate(() => window.tm.getDpopThumbprint())]);
    assert.ok(ja && ja.length === 43);
    assert.equal(ja, jb, 'one key for the origin');
    await login(a);
    await b.waitForFunction(() => window.tm.isAuthenticated());
    assert.equal(await b.evaluate(async () => (await window.tm.fetch('/api/me')).status), 200, 'the other tab works with the bound token');
    await b.reload();
    await b.waitForFunction(() => window.ready === true);
    await b.evaluate((o) => window.make(o), { ...FAST, refreshTokenDelivery: 'default', dpop: true, autoRefresh: false });
    assert.equal(await b.evaluate(() => window.tm.getDpopThumbprint()), ja, 'the same key after a reload');
    assert.equal(await b.evaluate(async () => (await window.tm.fetch('/api/me')).status), 200);
    if (isMock()) {
      const stats = await mockStats();
      assert.ok(stats.dpop.length >= 3 && stats.dpop.every((d) => d.jkt === ja));
    }
  } finally {
    await context.close();
  }
});

test('dpop: a server that requires a nonce answers use_dpop_nonce; the client retries once with it', async (t) => {
  // The mock asks for nonces when told; run.sh starts the server with SESSION_DPOP_NONCE_KEY.
  if (isMock()) await fetch(`${base}/__config`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ dpopNonce: 1 }) });
  const { context } = await newContext();
  try {
    const page = await openTab(context, { refreshTokenDelivery: 'default', dpop: true, autoRefresh: false });
    const logins = [];
    page.on('request', (req) => { if (req.url().endsWith('/api/auth/login')) logins.push(req.headers().dpop); });
    await login(page);
    assert.equal(logins.length, 2, 'without the nonce, then with it');
    const nonce = JSON.parse(Buffer.from(logins[1].split('.')[1], 'base64url')).nonce;
    if (isMock()) assert.equal(nonce, 'mock-nonce-1');
    else assert.ok(typeof nonce === 'string' && nonce.length > 20, 'the server nonce');
    assert.equal(JSON.parse(Buffer.from(logins[0].split('.')[1], 'base64url')).nonce, undefined);
    assert.equal(await page.evaluate(async () => (await window.tm.fetch('/api/me')).status), 200);
  } finally {
    if (isMock()) await fetch(`${base}/__config`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ dpopNonce: 0 }) });
    await context.close();
  }
});
