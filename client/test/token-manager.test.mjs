// What of client/token-manager.js needs no browser, under node's own test runner and
// WebCrypto:  node --test client/test/
//
// DPoP proofs (made here, checked with WebCrypto against RFC 9449 §4.2), the cookie default,
// the nonce retry, and the fallbacks when localStorage or IndexedDB are missing. Requests go
// to a fake fetch that records them; the Chromium suite (tests/browser/) covers the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  TokenManager,
  createDpopProof,
  dpopThumbprint,
  generateDpopKey,
  stepUpChallenge,
} from '../token-manager.js';

const BASE = 'https://app.example.com';
const subtle = globalThis.crypto.subtle;

const b64urlJson = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString());
const sha256b64url = async (text) => Buffer.from(await subtle.digest('SHA-256', new TextEncoder().encode(text))).toString('base64url');

/** An (unsigned) access token with these claims: the client only reads them. */
function accessToken(claims = {}) {
  const now = Math.floor(Date.now() / 1000);
  return `${b64urlJson({ alg: 'HS256', typ: 'at+jwt' })}.${b64urlJson({ sub: 'alice', sid: 's1', exp: now + 3600, ...claims })}.c2ln`;
}

/** Checks a proof as a server would (signature with WebCrypto, claims); returns its parts. */
async function checkProof(proof, { htm, htu, accessToken: token, nonce } = {}) {
  const [h, c, s] = proof.split('.');
  const header = decode(h);
  const claims = decode(c);
  assert.equal(header.typ, 'dpop+jwt');
  assert.ok(['ES256', 'EdDSA'].includes(header.alg), header.alg);
  for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) assert.ok(!(member in header.jwk), `private member ${member}`);
  const algo = header.alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'Ed25519' };
  const key = await subtle.importKey('jwk', header.jwk, algo, false, ['verify']);
  const params = header.alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'Ed25519' };
  const ok = await subtle.verify(params, key, Buffer.from(s, 'base64url'), new TextEncoder().encode(`${h}.${c}`));
  assert.ok(ok, 'the signature verifies with the jwk');
  assert.equal(typeof claims.jti, 'string');
  assert.ok(claims.jti.length >= 22, 'jti of 128 bits');
  assert.ok(Number.isInteger(claims.iat));
  assert.ok(Math.abs(claims.iat - Date.now() / 1000) < 5);
  if (htm) assert.equal(claims.htm, htm);
  if (htu) assert.equal(claims.htu, htu);
  if (token) assert.equal(claims.ath, await sha256b64url(token));
  else assert.ok(!('ath' in claims), 'no ath without an access token');
  assert.equal(claims.nonce, nonce);
  return { header, claims };
}

/** A fake fetch: `handler(call)` answers; every call is kept with its headers. */
function fakeServer(handler) {
  const calls = [];
  const fetch = async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input.url;
    const headers = new Headers(init.headers || (typeof input === 'string' ? undefined : input.headers));
    const call = { url, method: init.method || (typeof input === 'string' ? 'GET' : input.method), headers,
      body: init.body ? JSON.parse(init.body) : null, credentials: init.credentials };
    calls.push(call);
    return handler(call, calls.length);
  };
  return { fetch, calls };
}

const json = (status, body, headers = {}) => new Response(JSON.stringify(body), {
  status, headers: { 'Content-Type': 'application/json', ...headers },
});

const loginOk = (token, extra = {}) => json(200, { success: true, message: 'ok',
  data: { accessToken: token, expiresIn: 3600000, sessionId: 's1', userId: 'alice', ...extra } });

function manager(fetch, options = {}) {
  return new TokenManager({ baseUrl: BASE, autoRefresh: false, fetch, ...options });
}

// ---- proofs

for (const algorithm of ['ES256', 'Ed25519']) {
  test(`${algorithm}: a proof has the claims of RFC 9449 §4.2 and verifies with its public jwk`, async () => {
    const key = await generateDpopKey(algorithm);
    assert.equal(key.alg, algorithm === 'ES256' ? 'ES256' : 'EdDSA');
    const token = accessToken();
    const proof = await createDpopProof(key, {
      htm: 'get', htu: 'HTTPS://API.Example.com:443/api/me?page=2#top', accessToken: token, nonce: 'n-1',
    });
    await checkProof(proof, { htm: 'GET', htu: 'https://api.example.com/api/me', accessToken: token, nonce: 'n-1' });
    const again = await createDpopProof(key, { htm: 'GET', htu: 'https://api.example.com/api/me' });
    assert.notEqual(decode(again.split('.')[1]).jti, decode(proof.split('.')[1]).jti, 'a fresh jti each time');
  });

  test(`${algorithm}: the private key cannot be exported`, async () => {
    const key = await generateDpopKey(algorithm);
    assert.equal(key.privateKey.extractable, false);
    await assert.rejects(subtle.exportKey('pkcs8', key.privateKey));
    await assert.rejects(subtle.exportKey('jwk', key.privateKey));
  });
}

test('the thumbprint is RFC 7638\'s: the jkt RFC 9449 publishes for its example key', async () => {
  const jwk = { kty: 'EC', crv: 'P-256', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs',
    y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA' };
  assert.equal(await dpopThumbprint(jwk), '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
  assert.equal(await dpopThumbprint({ ...jwk, ext: true, key_ops: ['verify'] }), '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
});

test('an unknown dpopAlgorithm or refreshTokenDelivery is refused at construction', () => {
  assert.throws(() => new TokenManager({ autoRefresh: false, dpopAlgorithm: 'RS256' }), TypeError);
  assert.throws(() => new TokenManager({ autoRefresh: false, refreshTokenDelivery: 'localStorage' }), TypeError);
});

// ---- the refresh token stays out of script's reach by default

test('by default login asks for cookie delivery and keeps no refresh token in storage', async () => {
  const stored = new Map();
  const storage = { getItem: (k) => stored.get(k) ?? null, setItem: (k, v) => stored.set(k, v), removeItem: (k) => stored.delete(k) };
  const server = fakeServer(() => loginOk(accessToken(), { refreshToken: 'leaked-if-kept' }));
  const tm = manager(server.fetch, { storage });
  await tm.login('alice', 'alice-password');
  const [call] = server.calls;
  assert.equal(call.body.refreshTokenDelivery, 'cookie');
  assert.equal(call.credentials, 'include');
  assert.ok(![...stored.values()].some((v) => v.includes('leaked-if-kept')), 'no refresh token in storage');
  const info = tm.getTokenInfo();
  assert.equal(info.refreshTokenDelivery, 'cookie');
  assert.equal(info.hasRefreshToken, null);
  assert.equal(info.cookieMode, true);
  tm.destroy();
});

test('the body mode is kept only when asked for: refreshTokenDelivery "body", or cookieMode false', async () => {
  for (const options of [{ refreshTokenDelivery: 'body' }, { cookieMode: false }]) {
    const server = fakeServer(() => loginOk(accessToken(), { refreshToken: 'rt-1' }));
    const tm = manager(server.fetch, options);
    await tm.login('alice', 'alice-password');
    assert.equal(server.calls[0].body.refreshTokenDelivery, undefined);
    assert.equal(tm.getTokenInfo().hasRefreshToken, true);
    assert.equal(tm.getTokenInfo().refreshTokenDelivery, 'body');
    tm.destroy();
  }
  // Cookie mode refreshes through the cookie, with the CSRF header and no token in the body.
  const server = fakeServer((call) => (call.url.endsWith('/refresh')
    ? loginOk(accessToken({ jti: 'second' })) : loginOk(accessToken())));
  const tm = manager(server.fetch);
  await tm.login('alice', 'alice-password');
  assert.equal(await tm.refreshAccessToken(), true);
  const refresh = server.calls[1];
  assert.deepEqual(refresh.body, {});
  assert.equal(refresh.headers.get('X-Requested-With'), 'XMLHttpRequest');
  tm.destroy();
});

// ---- DPoP through the manager

test('dpop: login and refresh carry a proof without ath; requests carry one with ath and the DPoP scheme for a bound token', async () => {
  const key = await generateDpopKey('ES256');
  const jkt = await dpopThumbprint(key.jwk);
  let bound = accessToken({ cnf: { jkt } });
  const server = fakeServer((call) => {
    if (call.url.endsWith('/api/auth/login') || call.url.endsWith('/refresh')) {
      bound = accessToken({ cnf: { jkt }, jti: String(Math.random()) });
      return loginOk(bound);
    }
    return json(200, { success: true, data: {} });
  });
  const tm = manager(server.fetch, { dpop: true, dpopAlgorithm: 'ES256' });
  await tm.login('alice', 'alice-password');
  const login = server.calls[0];
  const { header } = await checkProof(login.headers.get('DPoP'), { htm: 'POST', htu: `${BASE}/api/auth/login` });
  assert.equal(login.headers.get('Authorization'), null);
  const myJkt = await tm.getDpopThumbprint();
  assert.equal(await dpopThumbprint(header.jwk), myJkt);
  assert.equal(tm.getTokenInfo().tokenType, 'DPoP');

  await tm.fetch('/api/me?x=1');
  const me = server.calls[1];
  assert.equal(me.headers.get('Authorization'), `DPoP ${bound}`);
  await checkProof(me.headers.get('DPoP'), { htm: 'GET', htu: `${BASE}/api/me`, accessToken: bound });

  await tm.makeAuthenticatedRequest(`${BASE}/api/items`, { method: 'DELETE' });
  await checkProof(server.calls[2].headers.get('DPoP'), { htm: 'DELETE', htu: `${BASE}/api/items`, accessToken: bound });

  await tm.refreshAccessToken();
  const refresh = server.calls[3];
  await checkProof(refresh.headers.get('DPoP'), { htm: 'POST', htu: `${BASE}/api/token/refresh` });

  // Every proof is signed by the same key.
  const jkts = await Promise.all(server.calls.map((c) => dpopThumbprint(decode(c.headers.get('DPoP').split('.')[0]).jwk)));
  assert.deepEqual(new Set(jkts), new Set([myJkt]));

  await tm.logout();
  const logout = server.calls.at(-1);
  assert.ok(logout.url.endsWith('/api/token/logout'));
  assert.match(logout.headers.get('Authorization'), /^DPoP /);
  await checkProof(logout.headers.get('DPoP'), { htm: 'POST', htu: `${BASE}/api/token/logout`, accessToken: bound });
  tm.destroy();
});

test('dpop: a token the server did not bind goes as Bearer, still with a proof', async () => {
  const token = accessToken();
  const server = fakeServer(() => loginOk(token));
  const tm = manager(server.fetch, { dpop: true });
  await tm.login('alice', 'alice-password');
  await tm.fetch('/api/me');
  assert.equal(server.calls[1].headers.get('Authorization'), `Bearer ${token}`);
  await checkProof(server.calls[1].headers.get('DPoP'), { htm: 'GET', htu: `${BASE}/api/me`, accessToken: token });
  assert.equal(tm.getTokenInfo().tokenType, 'Bearer');
  tm.destroy();
});

test('without dpop no DPoP header is ever sent', async () => {
  const server = fakeServer(() => loginOk(accessToken()));
  const tm = manager(server.fetch);
  await tm.login('alice', 'alice-password');
  await tm.fetch('/api/me');
  assert.ok(server.calls.every((c) => c.headers.get('DPoP') === null));
  assert.equal(await tm.getDpopThumbprint(), null);
  tm.destroy();
});

test('dpop: use_dpop_nonce (401 WWW-Authenticate, or a 400 body at login) is answered once with the nonce', async () => {
  let nonce = 'nonce-1';
  const server = fakeServer((call) => {
    const proof = decode(call.headers.get('DPoP').split('.')[1]);
    if (proof.nonce !== nonce) {
      if (call.url.endsWith('/api/auth/login')) {
        return json(400, { success: false, error: 'use_dpop_nonce', message: 'nonce' }, { 'DPoP-Nonce': nonce });
      }
      return json(401, { success: false, error: 'use_dpop_nonce', message: 'nonce' }, {
        'WWW-Authenticate': 'DPoP error="use_dpop_nonce", error_description="nonce required"', 'DPoP-Nonce': nonce });
    }
    if (call.url.endsWith('/api/auth/login')) return loginOk(accessToken());
    return json(200, { success: true, data: {} }, { 'DPoP-Nonce': nonce });
  });
  const tm = manager(server.fetch, { dpop: true });
  await tm.login('alice', 'alice-password');
  assert.equal(server.calls.length, 2, 'login sent twice: without, then with the nonce');
  assert.equal(decode(server.calls[1].headers.get('DPoP').split('.')[1]).nonce, 'nonce-1');
  const res = await tm.fetch('/api/me');
  assert.equal(res.status, 200);
  assert.equal(server.calls.length, 3, 'the nonce is remembered');
  // The server moves to a new nonce: one retry with it.
  nonce = 'nonce-2';
  assert.equal((await tm.fetch('/api/me')).status, 200);
  assert.equal(server.calls.length, 5);
  assert.equal(decode(server.calls[4].headers.get('DPoP').split('.')[1]).nonce, 'nonce-2');
  tm.destroy();
});

test('dpop: a server that keeps asking for a nonce it does not change gets one retry, not a loop', async () => {
  const server = fakeServer((call) => (call.url.endsWith('/api/auth/login')
    ? loginOk(accessToken())
    : json(401, { success: false, error: 'use_dpop_nonce' }, {
      'WWW-Authenticate': 'DPoP error="use_dpop_nonce"', 'DPoP-Nonce': 'always-the-same' })));
  const tm = manager(server.fetch, { dpop: true, maxRetries: 0 });
  await tm.login('alice', 'alice-password');
  const res = await tm.fetch('/api/me');
  assert.equal(res.status, 401);
  const meCalls = server.calls.filter((c) => c.url.endsWith('/api/me'));
  assert.ok(meCalls.length <= 4, `bounded: ${meCalls.length}`);
  tm.destroy();
});

test('dpop: a nonce retry of a Request resends its body', async () => {
  const bodies = [];
  const server = fakeServer(async (call, n) => {
    if (call.url.endsWith('/api/auth/login')) return loginOk(accessToken());
    bodies.push(call.body);
    return n === 2
      ? json(401, { error: 'use_dpop_nonce' }, { 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"', 'DPoP-Nonce': 'n' })
      : json(200, { success: true });
  });
  // A fetch that reads a Request's body the way the network would.
  const fetch = async (input, init) => {
    if (typeof input !== 'string') {
      const text = await input.text();
      return server.fetch(input.url, { ...init, method: input.method, body: text || undefined });
    }
    return server.fetch(input, init);
  };
  const tm = manager(fetch, { dpop: true });
  await tm.login('alice', 'alice-password');
  const req = new Request(`${BASE}/api/items`, { method: 'POST', body: JSON.stringify({ name: 'x' }) });
  assert.equal((await tm.fetch(req)).status, 200);
  assert.deepEqual(bodies, [{ name: 'x' }, { name: 'x' }]);
  tm.destroy();
});

test('dpop: iat follows the server\'s clock when ours is minutes off', async () => {
  const serverNow = Date.now() + 5 * 60 * 1000;
  const server = fakeServer(() => loginOk(accessToken(), {}));
  const fetch = async (input, init) => {
    const res = await server.fetch(input, init);
    res.headers.set('Date', new Date(serverNow).toUTCString());
    return res;
  };
  const tm = manager(fetch, { dpop: true });
  await tm.login('alice', 'alice-password');
  await tm.fetch('/api/me');
  const iat = decode(server.calls[1].headers.get('DPoP').split('.')[1]).iat;
  assert.ok(Math.abs(iat - serverNow / 1000) < 5, `iat ${iat} near the server's ${serverNow / 1000}`);
  tm.destroy();
});

// ---- fallbacks

test('without IndexedDB (node) the DPoP key lives in memory and is the same for every request', async () => {
  assert.equal(globalThis.indexedDB, undefined);
  const server = fakeServer(() => loginOk(accessToken()));
  const tm = manager(server.fetch, { dpop: true });
  await tm.login('alice', 'alice-password');
  await tm.fetch('/api/me');
  await tm.fetch('/api/me');
  const jkts = new Set(await Promise.all(server.calls.map((c) => dpopThumbprint(decode(c.headers.get('DPoP').split('.')[0]).jwk))));
  assert.equal(jkts.size, 1);
  assert.equal(tm._dpop.persistent, false);
  tm.destroy();
});

test('without localStorage, or with one that throws, the session is kept in memory', async () => {
  assert.equal(globalThis.localStorage, undefined);
  const throwing = { getItem() { throw new Error('blocked'); }, setItem() { throw new Error('quota'); }, removeItem() { throw new Error('blocked'); } };
  for (const storage of [undefined, throwing]) {
    const server = fakeServer(() => loginOk(accessToken()));
    const tm = manager(server.fetch, storage ? { storage } : {});
    await tm.login('alice', 'alice-password');
    assert.equal(tm.isAuthenticated(), true);
    assert.ok(tm.getAccessToken());
    await tm.fetch('/api/me');
    assert.match(server.calls[1].headers.get('Authorization'), /^Bearer /);
    tm.destroy();
  }
});

test('a page on http without WebCrypto gets a clear error, not a crash', async () => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'crypto');
  Object.defineProperty(globalThis, 'crypto', { value: {}, configurable: true });
  try {
    await assert.rejects(generateDpopKey('ES256'), (e) => e.code === 'dpop_unavailable');
  } finally {
    Object.defineProperty(globalThis, 'crypto', saved);
  }
});

test('the package, the module and the crate carry one version', async () => {
  const fs = await import('node:fs');
  const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  const cargo = fs.readFileSync(new URL('../../Cargo.toml', import.meta.url), 'utf8');
  const crate = /^version = "([^"]+)"/m.exec(cargo)[1];
  assert.equal(pkg.version, crate);
  assert.equal(TokenManager.version, crate);
  // What `exports` names is in `files`, so the packed package resolves.
  for (const target of [pkg.exports['.'].types, pkg.exports['.'].default]) {
    assert.ok(pkg.files.includes(target.replace(/^\.\//, '')), target);
  }
});

test('token-manager.d.ts declares what the module exports, the class\'s methods and its options', async () => {
  const fs = await import('node:fs');
  const dts = fs.readFileSync(new URL('../token-manager.d.ts', import.meta.url), 'utf8');
  const mod = await import('../token-manager.js');
  const declared = [...dts.matchAll(/^export (?:function|class) (\w+)/gm)].map((m) => m[1]);
  assert.ok(declared.length >= 7, declared.join());
  for (const name of declared) assert.equal(typeof mod[name], 'function', `export ${name}`);
  assert.equal(mod.default, mod.TokenManager);
  const klass = dts.slice(dts.indexOf('export class TokenManager {'));
  const body = klass.slice(0, klass.indexOf('\n}\n'));
  const methods = [...body.matchAll(/^ {2}(?:static )?(\w+)\(/gm)].map((m) => m[1]).filter((m) => m !== 'constructor');
  for (const name of methods) {
    const where = name === 'install' ? mod.TokenManager : mod.TokenManager.prototype;
    assert.equal(typeof where[name], 'function', `TokenManager.${name}`);
  }
  const optionsBlock = dts.slice(dts.indexOf('export interface TokenManagerOptions'), dts.indexOf('export interface TokenInfo'));
  const options = [...optionsBlock.matchAll(/^ {2}(\w+)\?:/gm)].map((m) => m[1]);
  const tm = new mod.TokenManager({ autoRefresh: false });
  for (const name of options) assert.ok(name in tm.options, `option ${name}`);
  for (const name of Object.keys(tm.options)) assert.ok(options.includes(name), `undeclared option ${name}`);
  const infoBlock = dts.slice(dts.indexOf('export interface TokenInfo'), dts.indexOf('export interface SessionSummary'));
  const infoFields = [...infoBlock.matchAll(/^ {2}(\w+):/gm)].map((m) => m[1]).sort();
  assert.deepEqual(Object.keys(tm.getTokenInfo()).sort(), infoFields);
  tm.destroy();
});

// ---- step-up (RFC 9470): the challenge is an event, answered by re-authentication

test('a step-up challenge is read as RFC 9470 writes it, and nothing else is', () => {
  const challenge = (value, status = 401) => new Response('{}', { status, headers: { 'WWW-Authenticate': value } });
  assert.deepEqual(stepUpChallenge(challenge(
    'Bearer realm="api", error="insufficient_user_authentication", error_description="a more recent authentication is required", max_age=300',
  )), { maxAge: 300, acrValues: [] });
  assert.deepEqual(stepUpChallenge(challenge(
    'Bearer error="insufficient_user_authentication", acr_values="urn:example:aal2 urn:example:aal3"',
  )), { maxAge: null, acrValues: ['urn:example:aal2', 'urn:example:aal3'] });
  assert.equal(stepUpChallenge(challenge('Bearer realm="api", error="invalid_token"')), null);
  assert.equal(stepUpChallenge(challenge('Bearer error="insufficient_user_authentication", max_age=1', 403)), null);
});

test('a step-up challenge emits stepup without a refresh; reauthenticate swaps tokens in place', async () => {
  const first = accessToken({ auth_time: 1 });
  const second = accessToken({ auth_time: 2, jti: 'after-step-up' });
  let stepped = false;
  const server = fakeServer((call) => {
    if (call.url.endsWith('/api/auth/login')) return loginOk(first);
    if (call.url.endsWith('/api/auth/reauthenticate')) {
      if (call.body.password !== 'alice-password') {
        return json(401, { success: false, message: 'wrong user name or password', error: 'invalid_credentials' });
      }
      stepped = true;
      return json(200, { success: true, message: 'Re-authentication successful',
        data: { accessToken: second, expiresIn: 3600000, sessionId: 's1', userId: 'alice' } });
    }
    if (call.url.endsWith('/api/account/security')) {
      if (call.headers.get('authorization') === `Bearer ${second}`) return json(200, { success: true, data: {} });
      return json(401, { success: false, message: 'a more recent authentication is required', error: 'insufficient_user_authentication' }, {
        'WWW-Authenticate': 'Bearer realm="api", error="insufficient_user_authentication", error_description="a more recent authentication is required", max_age=300',
      });
    }
    return json(404, { success: false, error: 'not_found' });
  });
  const tm = manager(server.fetch);
  const events = [];
  tm.on('*', (e) => events.push(e));
  await tm.login('alice', 'alice-password');

  const refused = await tm.makeAuthenticatedRequest('/api/account/security');
  assert.equal(refused.status, 401);
  const stepup = events.find((e) => e.type === 'stepup');
  assert.ok(stepup, 'a stepup event');
  assert.equal(stepup.maxAge, 300);
  assert.deepEqual(stepup.acrValues, []);
  assert.equal(stepup.url, '/api/account/security');
  assert.ok(!server.calls.some((c) => c.url.includes('/api/token/refresh')), 'no refresh for a step-up challenge');
  assert.ok(tm.isAuthenticated(), 'not logged out');

  // A wrong password: rejected, the session kept as it was.
  await assert.rejects(tm.reauthenticate({ username: 'alice', password: 'guess' }), (err) => err.code === 'invalid_credentials');
  assert.equal(tm.getAccessToken(), first);

  const result = await tm.reauthenticate({ username: 'alice', password: 'alice-password' });
  assert.equal(result.sessionId, 's1');
  const call = server.calls.find((c) => c.url === `${BASE}/api/auth/reauthenticate` && c.body.password === 'alice-password');
  assert.equal(call.method, 'POST');
  assert.equal(call.headers.get('authorization'), `Bearer ${first}`);
  assert.equal(call.headers.get('content-type'), 'application/json');
  assert.equal(call.body.refreshTokenDelivery, 'cookie', 'cookie delivery, as at login');
  assert.ok(stepped);
  assert.equal(tm.getAccessToken(), second);
  assert.ok(events.some((e) => e.type === 'reauthenticate'));
  assert.ok(!events.some((e) => e.type === 'logout'), 'never a logout');

  const retried = await tm.makeAuthenticatedRequest('/api/account/security');
  assert.equal(retried.status, 200);
});

test('getTokenInfo() shows auth_time, amr and acr apart from the app\'s own claims', async () => {
  const token = accessToken({ auth_time: 1_800_000_000, amr: ['pwd', 'otp'], acr: 'urn:example:mfa', tenant: 'acme' });
  const server = fakeServer(() => loginOk(token));
  const tm = manager(server.fetch);
  const empty = tm.getTokenInfo();
  assert.deepEqual([empty.authTime, empty.amr, empty.acr, empty.claims], [null, [], null, {}]);
  await tm.login('alice', 'alice-password');
  const info = tm.getTokenInfo();
  assert.equal(info.authTime, '2027-01-15T08:00:00.000Z');
  assert.deepEqual(info.amr, ['pwd', 'otp']);
  assert.equal(info.acr, 'urn:example:mfa');
  assert.deepEqual(info.claims, { tenant: 'acme' });
});

test('reauthenticate without a session is refused before any request', async () => {
  const server = fakeServer(() => json(500, {}));
  const tm = manager(server.fetch);
  await assert.rejects(tm.reauthenticate({ username: 'alice', password: 'x' }), (err) => err.code === 'not_authenticated');
  assert.equal(server.calls.length, 0);
});

// ---- security activity

test('activity() reads GET {tokenPrefix}/activity with the access token and answers the events', async () => {
  const token = accessToken();
  const events = [
    { type: 'session_ended', reason: 'logout', at: '2026-01-01T00:00:01.000Z', sessionId: 's0', device: 'Firefox on Linux', ip: '203.0.113.0/24' },
    { type: 'login', at: '2026-01-01T00:00:00.000Z', sessionId: 's1', device: 'Firefox on Linux', ip: null },
  ];
  const server = fakeServer((call) => (call.url.endsWith('/activity')
    ? json(200, { success: true, message: 'Security activity', data: { events } })
    : loginOk(token)));
  const tm = manager(server.fetch);
  await assert.rejects(tm.activity(), (e) => e.code === 'not_authenticated');
  assert.equal(server.calls.length, 0, 'no request without a session');
  await tm.login('alice', 'alice-password');
  assert.deepEqual(await tm.activity(), events);
  const call = server.calls.at(-1);
  assert.equal(call.method, 'GET');
  assert.equal(call.url, `${BASE}/api/token/activity`);
  assert.equal(call.headers.get('Authorization'), `Bearer ${token}`);
  tm.destroy();
});

test('activity() rejects with the server\'s error code', async () => {
  const server = fakeServer((call) => (call.url.endsWith('/activity')
    ? json(503, { success: false, error: 'unavailable', message: 'store down' })
    : loginOk(accessToken())));
  const tm = manager(server.fetch);
  await tm.login('alice', 'alice-password');
  await assert.rejects(tm.activity(), (e) => e.code === 'unavailable');
  tm.destroy();
});
