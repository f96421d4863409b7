#!/usr/bin/env node
// Mock of the tower-jwt-session HTTP contract (SPEC §5) for the browser tests.
// No dependencies. Run alone:  node mock-server.mjs   (PORT, default 3000; 0 = any)
//
// Faithful where the client can tell: HS256 access JWTs with `exp`, opaque
// rotating refresh tokens with a reuse grace window and reuse detection, the
// HttpOnly refresh cookie with the X-Requested-With CSRF check, the success /
// error bodies, `X-Token-Refresh` hints, `WWW-Authenticate` on 401.
// DPoP (RFC 9449), as the crate's server will do it: a login with a valid `DPoP` proof binds
// the session to the proof's key (`cnf.jkt` in its access tokens); a bound token needs
// `Authorization: DPoP` and a proof by that key with `ath` (as Bearer, or without a proof, it
// is refused); refreshing a bound session needs a proof by the same key. With `dpopNonce: 1`
// (POST /__config) every proof must carry the mock's current nonce (`use_dpop_nonce`).
//
// Test hooks (not part of the contract):
//   GET  /__stats                request counters and a log of refresh requests
//   POST /__reset                zero the counters
//   POST /__down?ms=3000&mode=drop|503   every non-/__ route fails for that long
//   POST /__config {accessTtlMs, thresholdMs, refreshTtlMs, sessionTtlMs, reuseGraceMs, maxSessions, dpopNonce}
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_DIR = path.resolve(here, '..', '..', 'client');

const USERS = {
  alice: { password: 'alice-password', userId: 'alice', roles: ['user'], tenant: 'acme' },
  bob: { password: 'bob-password', userId: 'bob', roles: ['user'], tenant: 'acme' },
  admin: { password: 'admin-password', userId: 'admin', roles: ['user', 'admin'], tenant: 'ops' },
};

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
};

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

export function createMockServer(options = {}) {
  const cfg = {
    accessTtlMs: num(process.env.TJS_MOCK_ACCESS_TTL_MS, 4000),
    thresholdMs: num(process.env.TJS_MOCK_THRESHOLD_MS, 2000),
    refreshTtlMs: num(process.env.TJS_MOCK_REFRESH_TTL_MS, 10 * 60 * 1000),
    sessionTtlMs: num(process.env.TJS_MOCK_SESSION_TTL_MS, 60 * 60 * 1000),
    reuseGraceMs: num(process.env.TJS_MOCK_REUSE_GRACE_MS, 10000),
    maxSessions: 10,
    dpopNonce: 0,
    ...options,
  };
  const key = crypto.randomBytes(32);
  const sessions = new Map(); // sid -> session
  const refreshIndex = new Map(); // sha256(token) -> { sid, gen }
  let stats = freshStats();
  let down = { until: 0, mode: 'drop' };

  function freshStats() {
    return { requests: 0, routes: {}, refresh: 0, refreshOk: 0, refreshGrace: 0, refreshByStatus: {},
      reuseDetected: 0, unauthorized: 0, failedWhileDown: 0, refreshLog: [], dpop: [] };
  }
  const seenJti = new Map(); // jti -> expiry (ms)
  let nonceGen = 1;
  const currentNonce = () => `mock-nonce-${nonceGen}`;

  /**
   * Checks the DPoP proof of a request (RFC 9449 §4.3): one proof, typ, an asymmetric alg, a
   * public jwk, the signature, htm, htu, iat, jti, ath, nonce. Returns { jkt } or { error, message }.
   */
  async function verifyDpop(req, path, accessToken) {
    const values = req.headersDistinct?.dpop || [];
    if (values.length === 0) return { error: 'invalid_dpop_proof', message: 'No DPoP proof', missing: true };
    if (values.length > 1) return { error: 'invalid_dpop_proof', message: 'More than one DPoP proof' };
    const parts = values[0].split('.');
    if (parts.length !== 3) return { error: 'invalid_dpop_proof', message: 'Malformed proof' };
    let header; let claims;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
    } catch { return { error: 'invalid_dpop_proof', message: 'Malformed proof' }; }
    const bad = (message) => ({ error: 'invalid_dpop_proof', message });
    if (header.typ !== 'dpop+jwt') return bad('typ');
    const jwk = header.jwk;
    if (!jwk || typeof jwk !== 'object') return bad('no jwk');
    if (['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].some((m) => m in jwk)) return bad('private jwk');
    let algo; let params;
    if (header.alg === 'ES256' && jwk.kty === 'EC' && jwk.crv === 'P-256') {
      algo = { name: 'ECDSA', namedCurve: 'P-256' }; params = { name: 'ECDSA', hash: 'SHA-256' };
    } else if ((header.alg === 'EdDSA' || header.alg === 'Ed25519') && jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
      algo = { name: 'Ed25519' }; params = { name: 'Ed25519' };
    } else return bad('alg');
    try {
      const key = await crypto.webcrypto.subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, algo, false, ['verify']);
      const ok = await crypto.webcrypto.subtle.verify(params, key, Buffer.from(parts[2], 'base64url'), Buffer.from(`${parts[0]}.${parts[1]}`));
      if (!ok) return bad('signature');
    } catch { return bad('jwk'); }
    if (claims.htm !== req.method) return bad('htm');
    if (claims.htu !== `http://${req.headers.host}${path}`) return bad(`htu ${claims.htu}`);
    const now = Date.now();
    if (typeof claims.iat !== 'number' || Math.abs(claims.iat * 1000 - now) > 60000) return bad('iat');
    if (typeof claims.jti !== 'string' || !claims.jti) return bad('jti');
    for (const [jti, until] of seenJti) if (until < now) seenJti.delete(jti);
    if (seenJti.has(claims.jti)) return bad('replayed');
    if (accessToken && claims.ath !== crypto.createHash('sha256').update(accessToken).digest('base64url')) return bad('ath');
    if (cfg.dpopNonce && claims.nonce !== currentNonce()) return { error: 'use_dpop_nonce', message: 'Use the DPoP-Nonce' };
    seenJti.set(claims.jti, now + 120000);
    const members = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'];
    const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
    const jkt = crypto.createHash('sha256').update(canonical).digest('base64url');
    stats.dpop.push({ path, method: req.method, jkt, alg: header.alg, ath: !!claims.ath, nonce: claims.nonce ?? null });
    return { jkt };
  }

  /** The DPoP refusal: 401 with the DPoP challenge (resource), or 400 (login, refresh). */
  function dpopRefusal(res, v, status) {
    const headers = { 'DPoP-Nonce': currentNonce() };
    if (status === 401) headers['WWW-Authenticate'] = `DPoP algs="ES256 EdDSA", error="${v.error}", error_description="${v.message}"`;
    return fail(res, status, v.error, `DPoP proof refused: ${v.message}`, headers);
  }

  /** verifyAccess, plus DPoP: a bound token needs the DPoP scheme and a proof by its key. */
  async function authenticate(req, path) {
    const values = req.headersDistinct?.authorization || [];
    const m = values.length === 1 ? /^(bearer|dpop)\s+(\S+)$/i.exec(values[0]) : null;
    const v = verifyAccess(m ? { headers: { authorization: `Bearer ${m[2]}` } } : req);
    if (!v.claims) return v;
    const jkt = v.claims.cnf && v.claims.cnf.jkt;
    if (!jkt) {
      if (m[1].toLowerCase() === 'dpop') return { error: 'invalid_token', message: 'Token not bound to a key', presented: true };
      return v;
    }
    if (m[1].toLowerCase() !== 'dpop') return { error: 'invalid_token', message: 'A bound token must be sent with the DPoP scheme', presented: true };
    const proof = await verifyDpop(req, path, m[2]);
    if (proof.error) return { ...proof, dpop: true, presented: true };
    if (proof.jkt !== jkt) return { error: 'invalid_dpop_proof', message: 'Proof by another key', dpop: true, presented: true };
    return v;
  }
  const count = (name) => { stats.routes[name] = (stats.routes[name] || 0) + 1; };

  function signAccess(sess) {
    const now = Date.now();
    const header = { alg: 'HS256', typ: 'at+jwt', kid: 'mock' };
    const exp = Math.floor((now + cfg.accessTtlMs) / 1000); // whole seconds, as a real server does
    const payload = { sub: sess.userId, sid: sess.id, jti: crypto.randomUUID(), iat: Math.floor(now / 1000),
      exp, roles: sess.roles, tenant: sess.tenant };
    if (sess.jkt) payload.cnf = { jkt: sess.jkt };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    const sig = crypto.createHmac('sha256', key).update(input).digest();
    return { token: `${input}.${b64url(sig)}`, expiresIn: cfg.accessTtlMs };
  }

  function verifyAccess(req) {
    const values = req.headersDistinct?.authorization || (req.headers.authorization ? [req.headers.authorization] : []);
    if (values.length !== 1) return { error: 'invalid_token', message: values.length ? 'More than one Authorization header' : 'Missing bearer token', presented: values.length > 0 };
    const m = /^bearer\s+(\S+)$/i.exec(values[0]);
    if (!m) return { error: 'invalid_token', message: 'Malformed Authorization header', presented: true };
    const parts = m[1].split('.');
    if (parts.length !== 3) return { error: 'invalid_token', message: 'Malformed token', presented: true };
    const expected = crypto.createHmac('sha256', key).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== expected.length || !crypto.timingSafeEqual(got, expected)) {
      return { error: 'invalid_token', message: 'Bad signature', presented: true };
    }
    let claims;
    try { claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString()); } catch { return { error: 'invalid_token', message: 'Malformed token', presented: true }; }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= Date.now()) return { error: 'token_expired', message: 'Token expired', presented: true };
    const sess = sessions.get(claims.sid);
    if (!sess || sess.revoked) return { error: 'token_revoked', message: 'Session revoked', presented: true };
    return { claims, sess };
  }

  function issueRefresh(sess) {
    const token = b64url(crypto.randomBytes(32));
    sess.gen += 1;
    sess.currentRefresh = token;
    sess.refreshExpiresAt = Math.min(Date.now() + cfg.refreshTtlMs, sess.expiresAt);
    refreshIndex.set(sha256(token), { sid: sess.id, gen: sess.gen });
    return token;
  }

  const secure = process.env.TJS_MOCK_COOKIE_SECURE === '1' ? '; Secure' : '';
  function refreshCookie(token, maxAgeMs) {
    return `tjs_refresh=${token}; Path=/api/token; HttpOnly; SameSite=Strict${secure}; Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}`;
  }
  const clearCookie = `tjs_refresh=; Path=/api/token; HttpOnly; SameSite=Strict${secure}; Max-Age=0`;

  function createSession(user) {
    const now = Date.now();
    const mine = [...sessions.values()].filter((s) => s.userId === user.userId && !s.revoked);
    if (mine.length >= cfg.maxSessions) {
      mine.sort((a, b) => a.lastActiveAt - b.lastActiveAt);
      mine[0].revoked = true; // evict least recently active
    }
    const sess = { id: crypto.randomUUID(), userId: user.userId, roles: user.roles, tenant: user.tenant, createdAt: now, lastRefreshedAt: null,
      lastActiveAt: now, expiresAt: now + cfg.sessionTtlMs, gen: 0, currentRefresh: null, rotatedAt: 0, revoked: false };
    sessions.set(sess.id, sess);
    return sess;
  }

  function send(res, status, body, headers = {}) {
    const data = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
    res.end(data);
  }
  const ok = (res, message, data, headers) => send(res, 200, { success: true, message, data }, headers);
  const fail = (res, status, error, message, headers) => send(res, status, { success: false, message, error }, headers);
  function unauthorized(res, v) {
    if (v.dpop) return dpopRefusal(res, v, 401);
    stats.unauthorized += 1;
    const www = v.presented
      ? `Bearer realm="tjs-mock", error="invalid_token", error_description="${v.message}"`
      : 'Bearer realm="tjs-mock"';
    fail(res, 401, v.error === 'token_revoked' ? 'token_revoked' : v.error, v.message, { 'WWW-Authenticate': www });
  }
  function hintHeaders(claims) {
    const left = claims.exp * 1000 - Date.now();
    return left <= cfg.thresholdMs
      ? { 'X-Token-Refresh': 'true', 'X-Token-Expires-In': String(Math.max(0, Math.floor(left / 1000))) }
      : {};
  }

  async function readBody(req) {
    const chunks = [];
    let size = 0;
    for await (const c of req) {
      size += c.length;
      if (size > 16 * 1024) return { tooLarge: true };
      chunks.push(c);
    }
    const raw = Buffer.concat(chunks).toString();
    if (!raw) return { json: {} };
    try { return { json: JSON.parse(raw) }; } catch { return { bad: true }; }
  }

  function cookies(req) {
    const out = {};
    for (const part of (req.headers.cookie || '').split(';')) {
      const i = part.indexOf('=');
      if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
    return out;
  }

  function serveStatic(res, rel) {
    const file = path.resolve(CLIENT_DIR, rel);
    if (!file.startsWith(CLIENT_DIR + path.sep)) return fail(res, 404, 'invalid_request', 'Not found');
    fs.readFile(file, (err, data) => {
      if (err) return fail(res, 404, 'invalid_request', 'Not found');
      const type = MIME[path.extname(file)] || 'application/octet-stream';
      const headers = { 'Content-Type': type, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' };
      if (type.startsWith('text/html')) headers['Content-Security-Policy'] = CSP;
      res.writeHead(200, headers);
      res.end(data);
    });
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;

    // ---- test hooks
    if (p === '/__stats') return send(res, 200, { ...stats, config: cfg, downFor: Math.max(0, down.until - Date.now()) });
    if (p === '/__reset' && req.method === 'POST') { stats = freshStats(); return send(res, 200, { ok: true }); }
    if (p === '/__down' && req.method === 'POST') {
      const ms = num(url.searchParams.get('ms'), 3000);
      down = { until: Date.now() + ms, mode: url.searchParams.get('mode') === '503' ? '503' : 'drop' };
      return send(res, 200, { ok: true, until: down.until, mode: down.mode });
    }
    if (p === '/__config' && req.method === 'POST') {
      const b = await readBody(req);
      for (const k of Object.keys(cfg)) if (b.json && typeof b.json[k] === 'number') cfg[k] = b.json[k];
      return send(res, 200, { ok: true, config: cfg });
    }

    stats.requests += 1;
    if (p === '/api/token/refresh') {
      stats.refresh += 1;
      count('refresh');
    }
    if (Date.now() < down.until) {
      stats.failedWhileDown += 1;
      if (down.mode === 'drop') { req.socket.destroy(); return undefined; }
      return fail(res, 503, 'unavailable', 'Service unavailable');
    }

    // ---- static
    if (req.method === 'GET' && (p === '/' || p === '/index.html')) return serveStatic(res, 'index.html');
    if (req.method === 'GET' && p.startsWith('/client/')) return serveStatic(res, decodeURIComponent(p.slice('/client/'.length)));

    // ---- API
    if (p === '/api/auth/login' && req.method === 'POST') {
      count('login');
      const b = await readBody(req);
      if (b.tooLarge) return fail(res, 413, 'invalid_request', 'Body too large');
      if (b.bad || typeof b.json.username !== 'string' || typeof b.json.password !== 'string') {
        return fail(res, 400, 'invalid_request', 'username and password are required');
      }
      const user = USERS[b.json.username];
      if (!user || user.password !== b.json.password) return fail(res, 401, 'invalid_credentials', 'Invalid username or password');
      let jkt = null;
      if (req.headers.dpop) {
        const proof = await verifyDpop(req, p);
        if (proof.error) return dpopRefusal(res, proof, 400);
        jkt = proof.jkt;
      }
      const sess = createSession(user);
      sess.jkt = jkt;
      const refreshToken = issueRefresh(sess);
      const access = signAccess(sess);
      const data = { accessToken: access.token, refreshToken, expiresIn: access.expiresIn, sessionId: sess.id, userId: user.userId };
      // Cookie-only delivery, as the real login service: no refresh token in the body.
      if (b.json.refreshTokenDelivery === 'cookie') delete data.refreshToken;
      return ok(res, 'Login successful', data, { 'Set-Cookie': refreshCookie(refreshToken, sess.refreshExpiresAt - Date.now()) });
    }

    if (p === '/api/me' && req.method === 'GET') {
      count('me');
      const v = await authenticate(req, p);
      if (!v.claims) { count('me401'); return unauthorized(res, v); }
      v.sess.lastActiveAt = Date.now();
      return ok(res, 'OK', { userId: v.claims.sub, sessionId: v.claims.sid, roles: v.claims.roles, tenant: v.claims.tenant }, hintHeaders(v.claims));
    }

    if (p === '/api/token/refresh' && req.method === 'POST') {
      const b = await readBody(req);
      const log = { at: Date.now(), via: null, xRequestedWith: req.headers['x-requested-with'] || null, bodyHadToken: false, status: 0, code: null };
      stats.refreshLog.push(log);
      const reply = (status, code, message, data, headers) => {
        log.status = status; log.code = code;
        stats.refreshByStatus[status] = (stats.refreshByStatus[status] || 0) + 1;
        if (status === 200) { stats.refreshOk += 1; return ok(res, message, data, headers); }
        return fail(res, status, code, message, headers);
      };
      if (b.tooLarge) return reply(413, 'invalid_request', 'Body too large');
      if (b.bad) return reply(400, 'invalid_request', 'Malformed JSON');
      let token = typeof b.json.refreshToken === 'string' && b.json.refreshToken ? b.json.refreshToken : null;
      log.bodyHadToken = !!token;
      log.via = token ? 'body' : 'cookie';
      if (!token) {
        token = cookies(req).tjs_refresh || null;
        if (!token) return reply(400, 'invalid_request', 'No refresh token');
        if (!req.headers['x-requested-with']) return reply(403, 'forbidden', 'Cookie refresh needs X-Requested-With');
      }
      const entry = refreshIndex.get(sha256(token));
      if (!entry) return reply(401, 'invalid_token', 'Unknown refresh token', undefined, { 'Set-Cookie': clearCookie });
      const sess = sessions.get(entry.sid);
      if (!sess || sess.revoked) return reply(401, 'token_revoked', 'Session revoked', undefined, { 'Set-Cookie': clearCookie });
      if (sess.jkt) {
        const proof = await verifyDpop(req, p);
        if (proof.error || proof.jkt !== sess.jkt) {
          log.status = 400; log.code = proof.error || 'invalid_dpop_proof';
          return dpopRefusal(res, proof.error ? proof : { error: 'invalid_dpop_proof', message: 'Proof by another key' }, 400);
        }
      }
      const now = Date.now();
      if (now >= sess.expiresAt) return reply(401, 'session_expired', 'Session expired', undefined, { 'Set-Cookie': clearCookie });
      let refreshToken;
      if (entry.gen === sess.gen) {
        if (now >= sess.refreshExpiresAt) return reply(401, 'token_expired', 'Refresh token expired', undefined, { 'Set-Cookie': clearCookie });
        refreshToken = issueRefresh(sess);
        sess.rotatedAt = now;
      } else if (entry.gen === sess.gen - 1 && now - sess.rotatedAt <= cfg.reuseGraceMs) {
        stats.refreshGrace += 1;
        refreshToken = sess.currentRefresh; // lost response / racing tab: same successor
      } else {
        stats.reuseDetected += 1;
        sess.revoked = true;
        return reply(401, 'refresh_token_reused', 'Refresh token reuse detected; session revoked', undefined, { 'Set-Cookie': clearCookie });
      }
      sess.lastRefreshedAt = now;
      sess.lastActiveAt = now;
      const access = signAccess(sess);
      const data = { accessToken: access.token, refreshToken, expiresIn: access.expiresIn, sessionId: sess.id };
      if (log.via === 'cookie' || b.json.refreshTokenDelivery === 'cookie') delete data.refreshToken;
      return reply(200, null, 'Token refreshed successfully', data, { 'Set-Cookie': refreshCookie(refreshToken, sess.refreshExpiresAt - now) });
    }

    if (p === '/api/token/validate' && req.method === 'POST') {
      count('validate');
      const b = await readBody(req);
      if (b.bad || typeof b.json.accessToken !== 'string') return fail(res, 400, 'invalid_request', 'accessToken is required');
      const v = verifyAccess({ headers: { authorization: `Bearer ${b.json.accessToken}` } });
      let claims = v.claims;
      if (!claims) { try { claims = JSON.parse(Buffer.from(b.json.accessToken.split('.')[1], 'base64url').toString()); } catch { claims = null; } }
      const left = claims && typeof claims.exp === 'number' ? claims.exp * 1000 - Date.now() : 0;
      return ok(res, 'Token validated successfully', { isValid: !!v.claims, isExpired: v.error === 'token_expired',
        needsRefresh: !!v.claims && left <= cfg.thresholdMs, expiresAt: claims && claims.exp ? new Date(claims.exp * 1000).toISOString() : null,
        timeUntilExpiry: Math.max(0, left), userId: claims ? claims.sub ?? null : null });
    }

    const statsMatch = /^\/api\/token\/session-stats\/([^/]+)$/.exec(p);
    if (statsMatch && req.method === 'GET') {
      count('sessionStats');
      const v = await authenticate(req, p);
      if (!v.claims) return unauthorized(res, v);
      const userId = decodeURIComponent(statsMatch[1]);
      if (userId !== v.claims.sub && !(v.claims.roles || []).includes('admin')) return fail(res, 403, 'forbidden', 'Forbidden');
      const now = Date.now();
      const list = [...sessions.values()].filter((s) => s.userId === userId && !s.revoked && s.expiresAt > now);
      return ok(res, 'OK', { userId, activeSessions: list.length, maxSessions: cfg.maxSessions,
        sessions: list.map((s) => ({ sessionId: s.id, createdAt: iso(s.createdAt), lastRefreshedAt: s.lastRefreshedAt ? iso(s.lastRefreshedAt) : null,
          lastActiveAt: iso(s.lastActiveAt), device: '', ip: null,
          expiresAt: iso(s.expiresAt), current: s.id === v.claims.sid })) }, hintHeaders(v.claims));
    }

    if (p === '/api/token/health' && req.method === 'GET') return ok(res, 'OK', { status: 'ok', store: 'memory' });

    // The devices routes, as the real server: one session of the caller (404 for any other id),
    // or every session of the caller but this one.
    const endMatch = /^\/api\/token\/sessions\/([^/]+)$/.exec(p);
    if (endMatch && req.method === 'DELETE') {
      count('endSession');
      const v = await authenticate(req, p);
      if (!v.claims) return unauthorized(res, v);
      const sess = sessions.get(decodeURIComponent(endMatch[1]));
      const admin = (v.claims.roles || []).includes('admin');
      if (!sess || sess.revoked || (sess.userId !== v.claims.sub && !admin)) return fail(res, 404, 'not_found', 'no such session');
      sess.revoked = true;
      return ok(res, 'Session ended', {}, sess.id === v.claims.sid ? { 'Set-Cookie': clearCookie } : {});
    }
    if (p === '/api/token/logout-others' && req.method === 'POST') {
      count('logoutOthers');
      const v = await authenticate(req, p);
      if (!v.claims) return unauthorized(res, v);
      let revoked = 0;
      for (const s of sessions.values()) {
        if (!s.revoked && s.userId === v.claims.sub && s.id !== v.claims.sid) { s.revoked = true; revoked += 1; }
      }
      return ok(res, 'Logged out of all other sessions', { revoked });
    }

    if ((p === '/api/token/logout' || p === '/api/token/logout-all') && req.method === 'POST') {
      const all = p.endsWith('-all');
      count(all ? 'logoutAll' : 'logout');
      const v = await authenticate(req, p);
      if (!v.claims && !all) {
        // As the real server: without a usable bearer token, /logout ends the session the refresh
        // cookie names, under the CSRF rule of a cookie refresh.
        const token = cookies(req).tjs_refresh || null;
        if (!token) return unauthorized(res, v);
        if (!req.headers['x-requested-with']) return fail(res, 403, 'forbidden', 'Cookie logout needs X-Requested-With');
        const entry = refreshIndex.get(sha256(token));
        if (!entry) return unauthorized(res, v);
        const sess = sessions.get(entry.sid);
        const live = !!sess && !sess.revoked;
        if (live) sess.revoked = true;
        return ok(res, live ? 'Logged out' : 'Already logged out', {}, { 'Set-Cookie': clearCookie });
      }
      if (!v.claims) return unauthorized(res, v);
      let revoked = 0;
      for (const s of sessions.values()) {
        if (!s.revoked && (all ? s.userId === v.claims.sub : s.id === v.claims.sid)) { s.revoked = true; revoked += 1; }
      }
      return ok(res, all ? 'All sessions ended' : 'Logged out', all ? { revoked } : {}, { 'Set-Cookie': clearCookie });
    }

    return fail(res, 404, 'invalid_request', 'Not found');
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      try { fail(res, 500, 'unavailable', String(err && err.message)); } catch { /* ignore */ }
    });
  });
  server.keepAliveTimeout = 5000;
  return { server, cfg, stats: () => stats };
}

function iso(ms) { return new Date(ms).toISOString(); }
function num(v, d) { const n = Number(v); return v !== null && v !== undefined && v !== '' && Number.isFinite(n) ? n : d; }

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { server } = createMockServer();
  const port = num(process.env.PORT, 3000);
  server.listen(port, '127.0.0.1', () => {
    const addr = server.address();
    console.log(`mock listening http://127.0.0.1:${addr.port}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
