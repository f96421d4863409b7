/**
 * tower-jwt-session browser TokenManager.
 *
 * Plain ES module, no build step, no dependencies. Keeps a JWT access token
 * fresh against the routes of tower-jwt-session (docs/protocol.md), one refresh at a
 * time across every tab of the origin.
 *
 *   import { TokenManager } from '/client/token-manager.js';
 *   const tm = TokenManager.install({ dpop: true }); // also window.tokenManager + getToken()
 *   await tm.login('alice', 'alice-password');
 *   const res = await tm.fetch('/api/me');
 *
 * By default the refresh token travels only in the server's HttpOnly cookie and is never
 * readable by script (`refreshTokenDelivery: 'cookie'`). `dpop: true` binds the session to a
 * key pair made with WebCrypto whose private key cannot be exported (RFC 9449): a copied
 * access or refresh token is then useless without it.
 *
 * One file on purpose (about 1,000 lines): a page serves or copies it as it is, with no
 * bundler; its parts (public API, internals: state, storage, tabs, timers) are sections below.
 *
 * Token values are never logged. The `exp` claim of the access token is read
 * only to schedule refreshes; it is never trusted for anything else.
 *
 * @module token-manager
 */

const VERSION = '0.1.0';

/** Refresh answers that end the session (in every tab). */
const SESSION_ENDING_CODES = new Set([
  'invalid_token',
  'token_expired',
  'refresh_token_reused',
  'session_expired',
  'token_revoked',
]);

/** The longest Retry-After honoured (a day); a longer one counts as a day. */
const MAX_RETRY_AFTER_MS = 24 * 60 * 60 * 1000;

const DEFAULTS = Object.freeze({
  baseUrl: '',
  loginPath: '/api/auth/login',
  reauthenticatePath: '/api/auth/reauthenticate',
  tokenPrefix: '/api/token',
  checkIntervalMs: 5 * 60 * 1000,
  refreshThresholdMs: 15 * 60 * 1000,
  cookieMode: undefined,
  refreshTokenDelivery: undefined,
  dpop: false,
  dpopAlgorithm: 'auto',
  storageKey: 'tjs.',
  maxRetries: 5,
  backoffBaseMs: 1000,
  backoffMaxMs: 30000,
  requestTimeoutMs: 15000,
  lockName: 'tjs-refresh',
  lockTimeoutMs: 30000,
  useWebLocks: true,
  autoRefresh: true,
  credentials: undefined,
  debug: undefined,
  fetch: undefined,
  storage: undefined,
  now: undefined,
  random: undefined,
});

/** Error thrown by TokenManager methods. `code` is the server's error code or a client one. */
export class TokenManagerError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, retryable?: boolean, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'TokenManagerError';
    this.code = code;
    this.status = extra.status ?? null;
    this.retryable = !!extra.retryable;
    if (extra.cause !== undefined) this.cause = extra.cause;
  }
}

/** Claim names the server writes or RFC 7519 registers: never custom claims. */
const RESERVED_CLAIMS = [
  'iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'roles', 'typ', 'auth_time', 'amr', 'acr',
];

/**
 * The app's own claims of a decoded access-token payload: every member but the reserved ones
 * (display only, unverified: the server checks them). `{}` without a token.
 * @param {Record<string, unknown> | null} payload
 * @returns {Record<string, unknown>}
 */
function customClaims(payload) {
  const out = {};
  if (!payload || typeof payload !== 'object') return out;
  for (const [name, value] of Object.entries(payload)) {
    if (!RESERVED_CLAIMS.includes(name)) out[name] = value;
  }
  return out;
}

/**
 * Decodes the payload of a JWT without verifying it. For scheduling and
 * display only. Returns null when the token is not a decodable JWT.
 * @param {string} token
 * @returns {Record<string, unknown> | null}
 */
export function decodeJwtPayload(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length < 2 || !parts[1]) return null;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload && typeof payload === 'object' ? payload : null;
  } catch {
    return null;
  }
}

/** In-memory Storage stand-in, used when localStorage is missing or broken. */
class MemoryStorage {
  constructor() { this._m = new Map(); }
  getItem(k) { return this._m.has(k) ? this._m.get(k) : null; }
  setItem(k, v) { this._m.set(k, String(v)); }
  removeItem(k) { this._m.delete(k); }
}

function defaultStorage() {
  try {
    const s = globalThis.localStorage;
    if (s) {
      const probe = '__tjs_probe__';
      s.setItem(probe, '1');
      s.removeItem(probe);
      return s;
    }
  } catch {
    /* blocked (sandboxed iframe, disabled storage): fall through */
  }
  return new MemoryStorage();
}

function randomId() {
  try {
    if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  } catch { /* not a secure context */ }
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

// ------------------------------------------------------------------ DPoP (RFC 9449)

/** IndexedDB database and object store of the DPoP key (shared by the tabs of the origin). */
const DPOP_DB = 'tower-jwt-session';
const DPOP_STORE = 'dpop-keys';
/** How long opening IndexedDB may take before the key is kept in memory instead. */
const DPOP_DB_TIMEOUT_MS = 3000;

function b64url(bytes) {
  const b = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = '';
  for (let i = 0; i < b.length; i++) bin += String.fromCharCode(b[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function utf8(text) { return new TextEncoder().encode(text); }

function subtleCrypto() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) {
    throw new TokenManagerError('dpop_unavailable',
      'DPoP needs WebCrypto, which browsers offer only in secure contexts (https or localhost)');
  }
  return s;
}

/**
 * Makes a DPoP key pair whose private key can never be exported (not even by this script):
 * Ed25519 where the browser has it (`algorithm` 'auto' or 'Ed25519'), else ECDSA P-256.
 * @param {'auto' | 'ES256' | 'Ed25519'} [algorithm]
 * @returns {Promise<import('./token-manager').DpopKey>}
 */
export async function generateDpopKey(algorithm = 'auto') {
  const subtle = subtleCrypto();
  if (algorithm === 'auto' || algorithm === 'Ed25519') {
    try {
      const pair = await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      return await dpopKeyFrom(pair, 'EdDSA');
    } catch (err) {
      if (algorithm === 'Ed25519') {
        throw new TokenManagerError('dpop_unavailable', 'This browser cannot make Ed25519 keys', { cause: err });
      }
    }
  } else if (algorithm !== 'ES256') {
    throw new TypeError(`dpopAlgorithm must be 'auto', 'ES256' or 'Ed25519', not ${String(algorithm)}`);
  }
  const pair = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
  return dpopKeyFrom(pair, 'ES256');
}

async function dpopKeyFrom(pair, alg) {
  // The public half is always exportable; only its public members go into proofs.
  const full = await subtleCrypto().exportKey('jwk', pair.publicKey);
  const jwk = alg === 'ES256'
    ? { kty: 'EC', crv: 'P-256', x: full.x, y: full.y }
    : { kty: 'OKP', crv: 'Ed25519', x: full.x };
  return { alg, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

/**
 * The RFC 7638 thumbprint of a public JWK (base64url SHA-256): the `jkt` a server binds
 * the session to.
 * @param {JsonWebKey} jwk
 * @returns {Promise<string>}
 */
export async function dpopThumbprint(jwk) {
  const members = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : jwk.kty === 'OKP' ? ['crv', 'kty', 'x'] : null;
  if (!members) throw new TypeError('only EC and OKP keys have a DPoP thumbprint here');
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return b64url(await subtleCrypto().digest('SHA-256', utf8(canonical)));
}

/** `htu`: the URL without query and fragment, scheme and host lowercased, default port dropped. */
function dpopHtu(url) {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * Signs a DPoP proof (RFC 9449 §4.2) for one request: `htm` its method, `htu` its URL (query
 * and fragment are dropped), `ath` the hash of the access token sent with it, `nonce` the
 * server's latest `DPoP-Nonce`. `jti` is 128 random bits, `iat` now unless given.
 * @param {import('./token-manager').DpopKey} key
 * @param {import('./token-manager').DpopProofParams} params
 * @returns {Promise<string>}
 */
export async function createDpopProof(key, { htm, htu, accessToken, nonce, iat, jti } = {}) {
  const subtle = subtleCrypto();
  if (typeof htm !== 'string' || typeof htu !== 'string') throw new TypeError('a DPoP proof needs htm and htu');
  const id = new Uint8Array(16);
  globalThis.crypto.getRandomValues(id);
  const claims = {
    jti: jti || b64url(id),
    htm: htm.toUpperCase(),
    htu: dpopHtu(htu),
    iat: Number.isFinite(iat) ? Math.floor(iat) : Math.floor(Date.now() / 1000),
  };
  if (accessToken) claims.ath = b64url(await subtle.digest('SHA-256', utf8(accessToken)));
  if (nonce) claims.nonce = nonce;
  const header = { typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk };
  const input = `${b64url(utf8(JSON.stringify(header)))}.${b64url(utf8(JSON.stringify(claims)))}`;
  // WebCrypto's ECDSA signature is already the raw `r || s` JWS wants.
  const params = key.alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'Ed25519' };
  const signature = await subtle.sign(params, key.privateKey, utf8(input));
  return `${input}.${b64url(signature)}`;
}

function idbRequest(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** Opens the key database; null when IndexedDB is missing, blocked or too slow. */
function openDpopDb() {
  const idb = globalThis.indexedDB;
  if (!idb || typeof idb.open !== 'function') return Promise.resolve(null);
  return new Promise((resolve) => {
    let settled = false;
    const done = (db) => { if (!settled) { settled = true; clearTimeout(timer); resolve(db); } else if (db) db.close(); };
    const timer = setTimeout(() => done(null), DPOP_DB_TIMEOUT_MS);
    let req;
    try { req = idb.open(DPOP_DB, 1); } catch { done(null); return; }
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(DPOP_STORE)) req.result.createObjectStore(DPOP_STORE);
    };
    req.onsuccess = () => done(req.result);
    req.onerror = () => done(null);
    req.onblocked = () => done(null);
  });
}

function isDpopKey(v) {
  return !!v && typeof v === 'object' && v.privateKey && v.jwk && (v.alg === 'ES256' || v.alg === 'EdDSA');
}

/**
 * The DPoP key of the origin, in IndexedDB: made once, then the same for every tab and
 * every reload. Two tabs that start at once may both make a key; the first one stored wins,
 * and both use it. Without IndexedDB (some private modes) the key lives in this tab's memory
 * only, and the session cannot move to another tab.
 */
class DpopKeyStore {
  constructor(id, algorithm) {
    this.id = id;
    this.algorithm = algorithm;
    this.persistent = null; // true once stored in IndexedDB, false when in memory only
    this._key = null;
  }

  get() {
    if (!this._key) this._key = this._load().catch((err) => { this._key = null; throw err; });
    return this._key;
  }

  async _load() {
    const db = await openDpopDb();
    if (!db) {
      this.persistent = false;
      return generateDpopKey(this.algorithm);
    }
    try {
      const stored = await idbRequest(db.transaction(DPOP_STORE, 'readonly').objectStore(DPOP_STORE).get(this.id));
      if (isDpopKey(stored)) { this.persistent = true; return stored; }
      const fresh = await generateDpopKey(this.algorithm);
      // Read again and write in one transaction: the first tab to commit wins.
      const tx = db.transaction(DPOP_STORE, 'readwrite');
      const store = tx.objectStore(DPOP_STORE);
      let chosen = fresh;
      const again = store.get(this.id);
      again.onsuccess = () => {
        if (isDpopKey(again.result)) chosen = again.result;
        else store.put(fresh, this.id);
      };
      await new Promise((resolve, reject) => {
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
      });
      this.persistent = true;
      return chosen;
    } catch {
      this.persistent = false;
      return generateDpopKey(this.algorithm);
    } finally {
      db.close();
    }
  }
}

/** Whether an access token is bound to a DPoP key (its `cnf.jkt` claim). */
function isDpopBound(token) {
  const claims = decodeJwtPayload(token);
  return !!(claims && claims.cnf && typeof claims.cnf === 'object' && typeof claims.cnf.jkt === 'string');
}

/**
 * The step-up challenge of a 401 (RFC 9470 §3): `WWW-Authenticate: Bearer
 * error="insufficient_user_authentication", max_age=N` and/or `acr_values="a b"`, read as
 * `{ maxAge, acrValues }` (seconds or null; the class values, possibly empty); null for any
 * other answer.
 * @param {Response} res
 * @returns {{ maxAge: number | null, acrValues: string[] } | null}
 */
export function stepUpChallenge(res) {
  if (!res || res.status !== 401 || !res.headers) return null;
  const header = res.headers.get('WWW-Authenticate') || '';
  if (!/error="insufficient_user_authentication"/.test(header)) return null;
  const maxAge = /(?:^|[\s,])max_age=(?:"(\d+)"|(\d+))/.exec(header);
  const acr = /(?:^|[\s,])acr_values="([^"]*)"/.exec(header);
  return {
    maxAge: maxAge ? Number(maxAge[1] ?? maxAge[2]) : null,
    acrValues: acr ? acr[1].split(' ').filter(Boolean) : [],
  };
}

/**
 * Whether a response asks for the proof again with a server nonce (RFC 9449 §8, §9): a 401
 * whose `WWW-Authenticate` says `use_dpop_nonce`, or a 400/401 whose JSON body says so.
 */
async function isNonceChallenge(res) {
  if (!res || (res.status !== 401 && res.status !== 400)) return false;
  try {
    if (/use_dpop_nonce/.test(res.headers.get('WWW-Authenticate') || '')) return true;
    const body = await res.clone().json();
    return !!body && body.error === 'use_dpop_nonce';
  } catch {
    return false;
  }
}

const hasWindow = typeof window !== 'undefined' && typeof window.addEventListener === 'function';

let installed = null; // instance made by TokenManager.install()
let lastCreated = null; // fallback for the getToken() shim

export class TokenManager {
  /**
   * @param {import('./token-manager').TokenManagerOptions} [options]
   */
  constructor(options = {}) {
    const o = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options || {})) if (v !== undefined) o[k] = v;
    // The refresh token is kept out of script's reach unless the page asks otherwise:
    // `refreshTokenDelivery: 'body'` (or the older `cookieMode: false`) keeps it in storage.
    const delivery = o.refreshTokenDelivery ?? (o.cookieMode === false ? 'body' : 'cookie');
    if (delivery !== 'cookie' && delivery !== 'body') {
      throw new TypeError(`refreshTokenDelivery must be 'cookie' or 'body', not ${String(delivery)}`);
    }
    if (!['auto', 'ES256', 'Ed25519'].includes(o.dpopAlgorithm)) {
      throw new TypeError(`dpopAlgorithm must be 'auto', 'ES256' or 'Ed25519', not ${String(o.dpopAlgorithm)}`);
    }
    o.refreshTokenDelivery = delivery;
    o.cookieMode = delivery === 'cookie';
    o.dpop = !!o.dpop;
    this.options = o;
    this._fetch = o.fetch || ((...a) => globalThis.fetch(...a));
    this._storage = o.storage || defaultStorage();
    this._now = o.now || (() => Date.now());
    this._random = o.random || Math.random;
    this._key = o.storageKey + 'session';
    this._leaseKey = o.storageKey + 'refresh-lease';
    this._backoffKey = o.storageKey + 'refresh-backoff';
    this._tabId = randomId();
    this._state = null;
    this._inflight = null;
    this._attempt = null; // the refresh attempt under way (lock wait and request), for logout()
    this._onlineEpoch = 0;
    this._listeners = new Map(); // type ('*' = all) -> Set<fn>
    this._wakers = new Set();
    this._hinted = null;
    this._lastRefreshAt = null;
    this._lastError = null;
    this._destroyed = false;
    this._interval = null;
    this._timer = null;
    this._channel = null;
    this._cleanup = [];
    this._dpop = o.dpop ? new DpopKeyStore(`${o.storageKey}dpop`, o.dpopAlgorithm) : null;
    this._dpopNonces = new Map(); // origin -> the server's latest DPoP-Nonce
    this._skewMs = 0; // the server's clock minus ours, when they differ by more than 10 s

    this._state = this._readStored().value;
    lastCreated = this;

    if (hasWindow) this._listen();
    if (o.autoRefresh) this._startTimers();
    this._log('created', { refreshTokenDelivery: delivery, dpop: o.dpop, authenticated: !!this._state });
  }

  /** Library version. */
  static get version() { return VERSION; }

  /**
   * Creates (once) the page-wide instance, sets `window.tokenManager` and,
   * unless the page defines its own, the legacy global `getToken()`.
   * Later calls return the same instance and ignore their options.
   * @param {import('./token-manager').TokenManagerOptions} [options]
   * @returns {TokenManager}
   */
  static install(options) {
    if (installed && !installed._destroyed) return installed;
    installed = new TokenManager(options);
    const g = globalThis;
    g.tokenManager = installed;
    if (typeof g.getToken !== 'function' || g.getToken === getToken) g.getToken = getToken;
    return installed;
  }

  // ---------------------------------------------------------------- public API

  /** True when a session is held: a usable access token, or the means to refresh one. */
  isAuthenticated() {
    const s = this._state;
    if (!s || !s.accessToken) return false;
    if (!this._isExpired(s)) return true;
    return this.options.cookieMode || !!s.refreshToken;
  }

  /**
   * The current access token, synchronously, as in the original guide
   * (`const token = tokenManager.getAccessToken()`); null when logged out.
   * It may be near expiry or (after a failed refresh) expired: when a refresh
   * is due, one is started in the background and this call does not wait for
   * it. Use `await getFreshAccessToken()` to refresh first.
   * @returns {string | null}
   */
  getAccessToken() {
    if (!this._state) this._adoptFromStorage('fallback');
    const s = this._state;
    if (!s) return null;
    if (this._needsRefresh(s) && !this._inflight) this._backgroundRefresh(false);
    return s.accessToken || null;
  }

  /**
   * The access token, refreshed first when it is expired or within
   * `refreshThresholdMs` of expiry. Null when logged out.
   * @returns {Promise<string | null>}
   * @throws {TokenManagerError} `refresh_failed` when the token has expired and the server could not be reached.
   */
  async getFreshAccessToken() {
    return this._getAccessToken({});
  }

  /**
   * @deprecated Alias of the synchronous `getAccessToken()`, kept for code
   * written against 0.1.0 pre-releases.
   * @returns {string | null}
   */
  peekAccessToken() {
    return this.getAccessToken();
  }

  /**
   * fetch() with the access token: `Authorization: DPoP <token>` and a fresh `DPoP` proof
   * when the token is bound to this browser's key (`dpop: true`), else `Authorization:
   * Bearer` (with a proof too under `dpop: true`). A `use_dpop_nonce` answer is retried once
   * with the server's nonce. After a 401 it refreshes once and
   * retries once. A response carrying `X-Token-Refresh: true` starts a
   * background refresh. Bodies must be replayable (string, Blob, FormData,
   * URLSearchParams, ArrayBuffer) for the retry.
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   * @throws {TokenManagerError} `not_authenticated` when no session is held.
   */
  async makeAuthenticatedRequest(input, init = {}) {
    const token = await this._getAccessToken({});
    if (!token) throw new TokenManagerError('not_authenticated', 'Not authenticated');
    const isReq = typeof Request !== 'undefined' && input instanceof Request;
    const spare = isReq ? input.clone() : null;
    const target = isReq ? input : this._url(input);
    let used = token;
    let res = await this._sendWithToken(target, init, token);
    // A step-up challenge is no expired token: a refresh keeps auth_time, so the page is told
    // (`stepup`) and answers with reauthenticate(), then sends the request again.
    const challenge = stepUpChallenge(res);
    if (challenge) {
      this._log('request answered with a step-up challenge', challenge);
      this._emit('stepup', { ...challenge, url: isReq ? input.url : String(input) });
      return res;
    }
    if (res.status === 401) {
      this._log('request answered 401; refreshing once');
      const ok = await this._refreshSingleFlight({ force: true, rejected: token });
      const cur = this._state;
      if (ok && cur && cur.accessToken && cur.accessToken !== token) {
        used = cur.accessToken;
        res = await this._sendWithToken(isReq ? spare : target, init, used);
      }
    }
    this._checkRefreshHint(res, used);
    return res;
  }

  /**
   * The same as `makeAuthenticatedRequest(input, init)`.
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  fetch(input, init = {}) {
    return this.makeAuthenticatedRequest(input, init);
  }

  /**
   * The RFC 7638 thumbprint of this origin's DPoP key (the `cnf.jkt` the server binds the
   * session to), making the key if there is none yet; null without `dpop: true`.
   * @returns {Promise<string | null>}
   */
  async getDpopThumbprint() {
    if (!this._dpop) return null;
    return dpopThumbprint((await this._dpop.get()).jwk);
  }

  /**
   * Refreshes now (one refresh per tab at a time; one across tabs). A rotation
   * already done by another tab counts as success. Never throws.
   * @returns {Promise<boolean>} true when a fresh access token is held
   */
  refreshAccessToken() {
    return this._refreshSingleFlight({ force: true });
  }

  /** Describes the session without exposing any token value. */
  getTokenInfo() {
    const s = this._state;
    const now = this._now();
    const claims = s ? decodeJwtPayload(s.accessToken) : null;
    const expiresAt = s && s.expiresAt != null ? s.expiresAt : null;
    return {
      isAuthenticated: this.isAuthenticated(),
      hasAccessToken: !!(s && s.accessToken),
      hasRefreshToken: this.options.cookieMode ? null : !!(s && s.refreshToken),
      cookieMode: !!this.options.cookieMode,
      refreshTokenDelivery: this.options.refreshTokenDelivery,
      dpop: !!this._dpop,
      tokenType: s && s.accessToken ? (isDpopBound(s.accessToken) ? 'DPoP' : 'Bearer') : null,
      userId: s ? s.userId ?? null : null,
      sessionId: s ? s.sessionId ?? null : null,
      roles: claims && Array.isArray(claims.roles) ? claims.roles.slice() : [],
      authTime: claims && Number.isFinite(claims.auth_time) ? new Date(claims.auth_time * 1000).toISOString() : null,
      amr: claims && Array.isArray(claims.amr) ? claims.amr.slice() : [],
      acr: claims && typeof claims.acr === 'string' ? claims.acr : null,
      claims: customClaims(claims),
      expiresAt: expiresAt != null ? new Date(expiresAt).toISOString() : null,
      timeUntilExpiry: expiresAt != null ? Math.max(0, expiresAt - now) : null,
      isExpired: s ? this._isExpired(s) : false,
      needsRefresh: s ? this._needsRefresh(s) : false,
      refreshing: !!this._inflight,
      lastRefreshAt: this._lastRefreshAt != null ? new Date(this._lastRefreshAt).toISOString() : null,
      lastError: this._lastError ? { code: this._lastError.code, message: this._lastError.message } : null,
    };
  }

  /**
   * GET {tokenPrefix}/session-stats/:userId for the current user.
   * @returns {Promise<import('./token-manager').SessionStats>}
   */
  async getSessionStats() {
    const s = this._state;
    if (!s || !s.userId) throw new TokenManagerError('not_authenticated', 'Not authenticated');
    const path = `${this.options.tokenPrefix}/session-stats/${encodeURIComponent(s.userId)}`;
    const res = await this.makeAuthenticatedRequest(path, { method: 'GET' });
    const body = await readJson(res);
    if (!res.ok || !body || body.success === false) throw errorFrom(res, body, 'session-stats failed');
    return body.data;
  }

  /**
   * POST {loginPath} {username, password}. Stores the session and tells other tabs.
   * With cookie delivery (the default) the body also carries `refreshTokenDelivery: 'cookie'`,
   * so the server leaves the refresh token out of the response body. Under `dpop: true` the
   * request carries a proof, so the server can bind the session to this browser's key.
   * @returns {Promise<import('./token-manager').LoginResult>}
   * @throws {TokenManagerError} e.g. `invalid_credentials`, `network_error`
   */
  async login(username, password) {
    let res;
    try {
      // Cookie mode asks for cookie-only delivery: the refresh token is then not even in the
      // login body, so no script on the page ever sees it.
      const body = this.options.cookieMode
        ? { username, password, refreshTokenDelivery: 'cookie' }
        : { username, password };
      res = await this._request('POST', this.options.loginPath, body, {});
    } catch (err) {
      throw new TokenManagerError('network_error', 'Login request failed', { retryable: true, cause: err });
    }
    const body = await readJson(res);
    if (!res.ok || !body || body.success === false || !body.data || !body.data.accessToken) {
      throw errorFrom(res, body, 'Login failed');
    }
    const state = this._stateFrom(body.data, null);
    this._hinted = null;
    this._clearSharedBackoff();
    this._setState(state, 'login');
    return {
      userId: state.userId,
      sessionId: state.sessionId,
      expiresIn: body.data.expiresIn ?? null,
      expiresAt: state.expiresAt != null ? new Date(state.expiresAt).toISOString() : null,
    };
  }

  /**
   * Answers a step-up challenge (the `stepup` event): POST {reauthenticatePath} with the
   * session's access token and `credentials` (`{username, password}`, or the shape the server's
   * credential check takes). The same session gets fresh tokens with a new `auth_time`; no
   * logout, and the other tabs adopt them. Send the refused request again afterwards.
   * @param {Record<string, unknown>} credentials
   * @returns {Promise<import('./token-manager').LoginResult>}
   * @throws {TokenManagerError} `invalid_credentials` (the session is untouched), `forbidden`
   *   (another user's credentials), `rate_limited`, `not_authenticated`, `network_error`, …
   */
  async reauthenticate(credentials) {
    if (!credentials || typeof credentials !== 'object') {
      throw new TypeError('reauthenticate(credentials) takes an object such as {username, password}');
    }
    const token = await this._getAccessToken({});
    if (!token) throw new TokenManagerError('not_authenticated', 'Not authenticated');
    const body = this.options.cookieMode
      ? { ...credentials, refreshTokenDelivery: 'cookie' }
      : { ...credentials };
    let res;
    try {
      res = await this._request('POST', this.options.reauthenticatePath, body, { accessToken: token });
    } catch (err) {
      throw new TokenManagerError('network_error', 'Re-authentication request failed', { retryable: true, cause: err });
    }
    const answer = await readJson(res);
    if (!res.ok || !answer || answer.success === false || !answer.data || !answer.data.accessToken) {
      throw errorFrom(res, answer, 'Re-authentication failed');
    }
    const state = this._stateFrom(answer.data, this._state);
    this._hinted = null;
    this._clearSharedBackoff();
    this._setState(state, 'reauthenticate');
    return {
      userId: state.userId,
      sessionId: state.sessionId,
      expiresIn: answer.data.expiresIn ?? null,
      expiresAt: state.expiresAt != null ? new Date(state.expiresAt).toISOString() : null,
    };
  }

  /**
   * Ends the session in this and every other tab at once, then asks the server
   * to revoke it (POST {tokenPrefix}/logout). A refresh request already under way is
   * waited for first (at most `requestTimeoutMs`), so that its new access token is
   * the one sent and its cookie is not set after the logout; in cookie mode the
   * refresh cookie goes along too, and the server ends the session it names when
   * no access token is usable. Resolves to whether the server confirmed; when it
   * did not, a `logout-error` event is emitted and `getTokenInfo().lastError` says why.
   * @returns {Promise<boolean>}
   */
  async logout() {
    return this._logout('/logout', 'logout');
  }

  /**
   * Revokes every session of the user (POST {tokenPrefix}/logout-all), and
   * logs out every tab here. Resolves to the server's `revoked` count, or null
   * when the server could not confirm.
   * @returns {Promise<number | null>}
   */
  async logoutEverywhere() {
    return this._logout('/logout-all', 'logout_all');
  }

  /**
   * The user's live sessions, the devices list: each with `device` (browser and platform),
   * `ip` (as the server keeps it, possibly truncated or null), `lastActiveAt`, and `current`
   * for this tab's own session.
   * @returns {Promise<import('./token-manager').SessionSummary[]>}
   * @throws {TokenManagerError} `not_authenticated`, or the server's error code
   */
  async listSessions() {
    const stats = await this.getSessionStats();
    return Array.isArray(stats.sessions) ? stats.sessions : [];
  }

  /**
   * The user's security activity, newest first (GET {tokenPrefix}/activity): each event with
   * `type` (`login`, `reauthenticate`, `refresh_reuse_detected`, `session_ended`,
   * `logout_all`, `lockout`), `reason` for `session_ended`, `at` (RFC 3339), `sessionId`,
   * `device` and `ip` (as the devices list shows them, or null). Only the user's own.
   * @returns {Promise<import('./token-manager').ActivityEvent[]>}
   * @throws {TokenManagerError} `not_authenticated`, or the server's error code
   */
  async activity() {
    const s = this._state;
    if (!s || !s.userId) throw new TokenManagerError('not_authenticated', 'Not authenticated');
    const path = `${this.options.tokenPrefix}/activity`;
    const res = await this.makeAuthenticatedRequest(path, { method: 'GET', headers: { Accept: 'application/json' } });
    const body = await readJson(res);
    if (!res.ok || !body || body.success === false) throw errorFrom(res, body, 'Reading the activity failed');
    return body.data && Array.isArray(body.data.events) ? body.data.events : [];
  }

  /**
   * Ends one of the user's sessions ("sign out this device"): DELETE
   * {tokenPrefix}/sessions/:sessionId. It stops working on every server at once; that
   * device's tabs log out on their next request or refresh (a `logout` event with reason
   * `token_revoked`). Ending this tab's own session logs out every tab here, as `logout()`.
   * @param {string} sessionId
   * @returns {Promise<void>}
   * @throws {TokenManagerError} `not_found` for a session that is not the user's (or has
   *   already ended), `not_authenticated`, or the server's error code
   */
  async endSession(sessionId) {
    if (typeof sessionId !== 'string' || !sessionId) {
      throw new TokenManagerError('invalid_request', 'endSession needs a session id');
    }
    const path = `${this.options.tokenPrefix}/sessions/${encodeURIComponent(sessionId)}`;
    const res = await this.makeAuthenticatedRequest(path, { method: 'DELETE', headers: { Accept: 'application/json' } });
    const body = await readJson(res);
    if (!res.ok || !body || body.success === false) throw errorFrom(res, body, 'Ending the session failed');
    if (this._state && this._state.sessionId === sessionId) this._clearSession('logout');
  }

  /**
   * Ends every session of the user but this one ("sign out all other devices"): POST
   * {tokenPrefix}/logout-others. This tab (and its sibling tabs, which share the session)
   * stays signed in.
   * @returns {Promise<number>} how many sessions were ended
   * @throws {TokenManagerError} `not_authenticated`, or the server's error code
   */
  async logoutOthers() {
    const path = `${this.options.tokenPrefix}/logout-others`;
    const res = await this.makeAuthenticatedRequest(path, { method: 'POST', headers: { Accept: 'application/json' } });
    const body = await readJson(res);
    if (!res.ok || !body || body.success === false) throw errorFrom(res, body, 'Signing out the other sessions failed');
    return body.data && typeof body.data.revoked === 'number' ? body.data.revoked : 0;
  }

  /**
   * Subscribes to every event. Returns an unsubscribe function.
   * @param {(event: import('./token-manager').TokenManagerEvent) => void} listener
   */
  onChange(listener) { return this.on('*', listener); }

  /**
   * Subscribes to one event type ('login' | 'refresh' | 'sync' | 'logout' |
   * 'logout-error' | 'retry' | 'refresh-error'), or '*' for all. Returns an unsubscribe function.
   */
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  /** Removes a listener added with on() / onChange(). */
  off(type, listener) {
    const set = this._listeners.get(type);
    if (set) set.delete(listener);
  }

  /** Stops timers and listeners. The stored session is left as it is. */
  destroy() {
    if (this._destroyed) return;
    this._destroyed = true;
    if (this._interval) clearInterval(this._interval);
    if (this._timer) clearTimeout(this._timer);
    this._interval = this._timer = null;
    for (const undo of this._cleanup) { try { undo(); } catch { /* ignore */ } }
    this._cleanup = [];
    if (this._channel) { try { this._channel.close(); } catch { /* ignore */ } this._channel = null; }
    this._wake();
    this._listeners.clear();
    if (installed === this) {
      installed = null;
      if (globalThis.tokenManager === this) delete globalThis.tokenManager;
    }
    if (lastCreated === this) lastCreated = null;
  }

  // ------------------------------------------------------------- internals

  async _getAccessToken({ maxRetries }) {
    if (!this._state) this._adoptFromStorage('fallback');
    const s = this._state;
    if (!s) return null;
    if (s.accessToken && !this._needsRefresh(s)) return s.accessToken;
    await this._refreshSingleFlight({ force: false, maxRetries });
    const cur = this._state;
    if (!cur || !cur.accessToken) return null;
    if (!this._isExpired(cur)) return cur.accessToken;
    throw new TokenManagerError('refresh_failed', 'Access token expired and could not be refreshed', {
      retryable: true,
      cause: this._lastError || undefined,
    });
  }

  _refreshSingleFlight(opts) {
    if (this._inflight) return this._inflight;
    if (this._destroyed) return Promise.resolve(false);
    const p = this._refreshFlow(opts)
      .catch((err) => { this._lastError = toError(err); return false; })
      .finally(() => { if (this._inflight === p) this._inflight = null; });
    this._inflight = p;
    return p;
  }

  _backgroundRefresh(force) {
    this._refreshSingleFlight({ force }).catch(() => {});
  }

  async _refreshFlow({ force, rejected, maxRetries }) {
    const held = this._state ? { ...this._state } : null;
    if (rejected && held) held.accessToken = rejected;
    const retries = maxRetries ?? this.options.maxRetries;
    for (let attempt = 0; ; attempt++) {
      if (this._destroyed) return false;
      let out;
      const pending = this._withLock((lock) => this._refreshAttempt(held, force, lock));
      this._attempt = pending;
      try {
        out = await pending;
      } catch (err) {
        out = { kind: 'retry', error: toError(err) };
      } finally {
        if (this._attempt === pending) this._attempt = null;
      }
      if (out.kind === 'ok') { this._lastError = null; this._clearSharedBackoff(); return true; }
      if (out.kind === 'fatal') { if (out.error) this._lastError = out.error; return false; }
      if (out.kind === 'defer') {
        // Another tab is backing off: wait with it, without spending an attempt of ours;
        // a flow allowed no retries (logout's own refresh) gives up instead of waiting.
        if (retries <= 0) {
          this._lastError = new TokenManagerError('backing_off', 'Another tab is backing off from a failed refresh', { retryable: true });
          return false;
        }
        this._log('another tab is backing off; waiting', out.delayMs, 'ms');
        attempt -= 1;
        await this._backoffSleep(this._now() + out.delayMs, held, false);
        continue;
      }
      this._lastError = out.error || new TokenManagerError('network_error', 'Refresh failed', { retryable: true });
      const delayMs = this._backoff(attempt, out.retryAfterMs);
      // Every tab keeps to this backoff, not only this one (see _sharedBackoffLeft).
      this._writeSharedBackoff(held, delayMs);
      if (attempt >= retries) {
        this._log('refresh gave up after', attempt + 1, 'attempts; session kept');
        this._emit('refresh-error', { reason: this._lastError.code, attempts: attempt + 1, retryable: true });
        return false;
      }
      this._log('refresh attempt', attempt + 1, 'failed:', this._lastError.code, '- retrying in', delayMs, 'ms');
      this._emit('retry', { reason: this._lastError.code, attempt: attempt + 1, delayMs });
      await this._backoffSleep(this._now() + delayMs, held, out.retryAfterMs == null && this._lastError.code === 'network_error');
    }
  }

  /**
   * Sleeps until `until`. Wake-ups (lease writes and releases of other tabs, storage
   * events) do not cut it short: only a change that settles the refresh does, as the
   * session in storage being replaced or removed, or, after a network error, the
   * browser coming back online. Without Web Locks every lease write wakes every tab,
   * and a backoff that ended on any wake-up was no backoff at all.
   */
  async _backoffSleep(until, held, onlineEnds) {
    const epoch = this._onlineEpoch;
    while (!this._destroyed) {
      const left = until - this._now();
      if (left <= 0) return;
      await this._sleep(left);
      if (onlineEnds && this._onlineEpoch !== epoch) return;
      const read = this._readStored();
      if (read.ok && held && (!read.value || read.value.sessionId !== held.sessionId
          || read.value.accessToken !== held.accessToken)) return;
    }
  }

  /**
   * Compares storage with what this tab held when the refresh began. Returns
   * an outcome when no network refresh is needed, else null.
   */
  _siblingOutcome(held, force) {
    const read = this._readStored();
    if (!read.ok) return null;
    const stored = read.value;
    if (!stored) {
      if (!held) return null;
      this._clearLocal('other_tab'); // the session was ended by another tab
      return { kind: 'fatal', error: new TokenManagerError('logged_out', 'Logged out in another tab') };
    }
    if (held && (stored.sessionId !== held.sessionId || stored.accessToken !== held.accessToken
        || (!this.options.cookieMode && stored.refreshToken !== held.refreshToken))) {
      this._log('sibling tab already refreshed; adopting');
      this._adopt(stored, 'sync');
      return { kind: 'ok' };
    }
    if (!held || (!force && !this._needsRefresh(stored))) {
      this._adopt(stored, 'sync');
      return { kind: 'ok' };
    }
    return null;
  }

  /** One attempt, run while holding the cross-tab lock (`lock`: 'web' | 'lease' | 'none'). */
  async _refreshAttempt(held, force, lock) {
    const o = this.options;
    let outcome = this._siblingOutcome(held, force);
    if (outcome) return outcome;
    // A Web Lock grant can overtake the storage update of the tab that held the
    // lock before us. That tab left a marker lock naming the token it replaced;
    // if it names ours, wait for its storage write to arrive instead of refreshing.
    if (lock === 'web' && held && held.accessToken && await this._rotatedAway(held.accessToken)) {
      this._log('sibling rotated our token; waiting for its storage update');
      await this._waitForStoredChange(held.accessToken, 3000);
      outcome = this._siblingOutcome(held, force);
      if (outcome) return outcome;
    }
    const read = this._readStored();
    const cur = (read.ok && read.value) || this._state;
    const wait = this._sharedBackoffLeft(cur);
    if (wait > 0) return { kind: 'defer', delayMs: wait };
    if (!o.cookieMode && !(cur && cur.refreshToken)) {
      return { kind: 'fatal', error: new TokenManagerError('not_authenticated', 'No refresh token held') };
    }

    let res;
    try {
      res = await this._request('POST', `${o.tokenPrefix}/refresh`,
        o.cookieMode ? {} : { refreshToken: cur.refreshToken }, { csrf: o.cookieMode });
    } catch (err) {
      return { kind: 'retry', error: new TokenManagerError('network_error', 'Refresh request failed', { retryable: true, cause: err }) };
    }
    const body = await readJson(res);
    if (res.ok && body && body.success !== false && body.data && body.data.accessToken) {
      const after = this._readStored();
      if (after.ok && held && !after.value) { // logged out elsewhere during the request
        this._clearLocal('other_tab');
        return { kind: 'fatal', error: new TokenManagerError('logged_out', 'Logged out in another tab') };
      }
      if (after.ok && after.value && cur && after.value.sessionId !== cur.sessionId) {
        this._adopt(after.value, 'sync'); // a new login happened meanwhile: it wins
        return { kind: 'ok' };
      }
      const next = this._stateFrom(body.data, cur);
      this._lastRefreshAt = this._now();
      this._hinted = null;
      this._setState(next, 'refresh');
      if (lock === 'web' && cur && cur.accessToken) await this._markRotated(cur.accessToken);
      this._log('refreshed; expires in', next.expiresAt != null ? next.expiresAt - this._now() : '?', 'ms');
      return { kind: 'ok' };
    }
    const err = errorFrom(res, body, 'Refresh failed');
    if (err.code === 'use_dpop_nonce') {
      // Still asked for a nonce after sending the one given: try again later, not a logout.
      err.retryable = true;
      return { kind: 'retry', error: err, retryAfterMs: retryAfterMs(res) };
    }
    if (res.status === 401 || res.status === 400) {
      // A sibling that rotated meanwhile (only possible without the lock) wins over a logout.
      const again = this._readStored();
      if (again.ok && again.value && cur && (again.value.accessToken !== cur.accessToken
          || (!o.cookieMode && again.value.refreshToken !== cur.refreshToken))) {
        this._adopt(again.value, 'sync');
        return { kind: 'ok' };
      }
    }
    if (res.status === 401 || (res.status === 400 && o.cookieMode)
        || (SESSION_ENDING_CODES.has(err.code) && res.status < 500 && res.status !== 429)) {
      this._log('refresh rejected (' + res.status + ' ' + err.code + '); logging out everywhere');
      this._clearSession(err.code || 'invalid_token');
      return { kind: 'fatal', error: err };
    }
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      err.retryable = true;
      return { kind: 'retry', error: err, retryAfterMs: retryAfterMs(res) };
    }
    this._emit('refresh-error', { reason: err.code, attempts: 1, retryable: false });
    return { kind: 'fatal', error: err };
  }

  async _logout(path, reason) {
    // A refresh request under way is waited for (bounded): its access token is the one
    // to send, and in cookie mode its answer would otherwise set a fresh refresh cookie
    // after the logout cleared it. A backoff is not waited out.
    if (this._attempt) {
      await Promise.race([this._attempt.catch(() => null), delay(this.options.requestTimeoutMs + 1000)]);
    }
    // A token the server still accepts is the surest way to revoke the session; refresh
    // once for it only when it has expired and no refresh is already running. In cookie
    // mode the refresh cookie goes along anyway, and names the session when no token does.
    let token = null;
    const s = this._state;
    if (s && s.accessToken && !this._isExpired(s)) token = s.accessToken;
    else if (s && !this._inflight) {
      try { token = await this._getAccessToken({ maxRetries: 0 }); } catch { token = null; }
    }
    this._clearSession(reason);
    let res;
    let error = null;
    try {
      res = await this._request('POST', `${this.options.tokenPrefix}${path}`, {}, { accessToken: token, csrf: this.options.cookieMode });
    } catch (err) {
      error = new TokenManagerError('network_error', 'Logout request failed', { retryable: true, cause: err });
    }
    const body = res ? await readJson(res) : null;
    const ok = !!res && res.ok && !!body && body.success !== false;
    if (!ok) {
      // The page is logged out, but the server may still hold the session: say so.
      this._lastError = error || errorFrom(res, body, 'Logout failed');
      this._log('server did not confirm the logout:', this._lastError.code);
      this._emit('logout-error', { reason: this._lastError.code, status: this._lastError.status, endpoint: path.slice(1) });
    }
    if (path === '/logout') return ok;
    return ok && body.data && typeof body.data.revoked === 'number' ? body.data.revoked : ok ? 0 : null;
  }

  _checkRefreshHint(res, usedToken) {
    try {
      if (!res || !res.headers || res.headers.get('X-Token-Refresh') !== 'true') return;
    } catch { return; }
    const s = this._state;
    if (!s || s.accessToken !== usedToken || this._hinted === usedToken) return;
    this._hinted = usedToken;
    this._log('server hinted a refresh');
    this._backgroundRefresh(true);
  }

  async _sendWithToken(target, init, token) {
    const isReq = typeof Request !== 'undefined' && target instanceof Request;
    const spare = isReq && this._dpop ? target.clone() : null; // for a nonce retry
    const url = isReq ? target.url : target;
    const send = async (t) => {
      const headers = new Headers(isReq ? t.headers : undefined);
      if (init && init.headers) new Headers(init.headers).forEach((v, k) => headers.set(k, v));
      headers.set('Authorization', `${isDpopBound(token) ? 'DPoP' : 'Bearer'} ${token}`);
      if (this._dpop) {
        const method = (init && init.method) || (isReq ? t.method : 'GET');
        headers.set('DPoP', await this._proof(method, url, token));
      }
      return this._fetch(t, { ...init, headers });
    };
    return this._sendWithNonceRetry(url, () => send(target), () => send(isReq ? spare : target));
  }

  async _request(method, path, body, { headers = {}, csrf = false, accessToken = null } = {}) {
    const o = this.options;
    const url = this._url(path);
    const send = async () => {
      const h = { Accept: 'application/json', ...headers };
      if (body !== null && body !== undefined) h['Content-Type'] = 'application/json';
      if (csrf) h['X-Requested-With'] = 'XMLHttpRequest';
      if (accessToken) h.Authorization = `${isDpopBound(accessToken) ? 'DPoP' : 'Bearer'} ${accessToken}`;
      if (this._dpop) h.DPoP = await this._proof(method, url, accessToken);
      const ctl = typeof AbortController !== 'undefined' ? new AbortController() : null;
      const timer = ctl && o.requestTimeoutMs > 0 ? setTimeout(() => ctl.abort(), o.requestTimeoutMs) : null;
      try {
        return await this._fetch(url, {
          method,
          headers: h,
          body: body !== null && body !== undefined ? JSON.stringify(body) : undefined,
          credentials: o.credentials || (o.cookieMode ? 'include' : 'same-origin'),
          cache: 'no-store',
          signal: ctl ? ctl.signal : undefined,
        });
      } finally {
        if (timer) clearTimeout(timer);
      }
    };
    return this._sendWithNonceRetry(url, send, send);
  }

  /**
   * Sends once; under `dpop: true`, notes the server's nonce and clock, and when the answer
   * is `use_dpop_nonce` with a nonce we did not use, sends once more (with that nonce).
   */
  async _sendWithNonceRetry(url, first, again) {
    if (!this._dpop) return first();
    const before = this._dpopNonce(url);
    let res = await first();
    this._observe(url, res);
    if (await isNonceChallenge(res) && this._dpopNonce(url) && this._dpopNonce(url) !== before) {
      this._log('server asked for a DPoP nonce; sending the request again with it');
      res = await again();
      this._observe(url, res);
    }
    return res;
  }

  /** A DPoP proof for one request, signed with the origin's key. */
  async _proof(method, url, accessToken) {
    const key = await this._dpop.get();
    const htu = this._absolute(url);
    return createDpopProof(key, {
      htm: method,
      htu,
      accessToken: accessToken || undefined,
      nonce: this._dpopNonce(htu),
      iat: (this._now() + this._skewMs) / 1000,
    });
  }

  /** The absolute URL of a request target (relative ones against the page, then baseUrl). */
  _absolute(url) {
    const raw = typeof url === 'string' ? url : String(url);
    const base = (globalThis.location && globalThis.location.href) || this.options.baseUrl || undefined;
    try {
      return new URL(raw, base).href;
    } catch (err) {
      throw new TokenManagerError('dpop_unavailable', `No absolute URL for ${raw}: set baseUrl`, { cause: err });
    }
  }

  _dpopNonce(url) {
    try { return this._dpopNonces.get(new URL(this._absolute(url)).origin) || null; } catch { return null; }
  }

  /** Keeps the server's latest `DPoP-Nonce`, and its clock when ours is more than 10 s off. */
  _observe(url, res) {
    if (!res || !res.headers) return;
    try {
      const nonce = res.headers.get('DPoP-Nonce');
      if (nonce) this._dpopNonces.set(new URL(this._absolute(url)).origin, nonce);
      const date = Date.parse(res.headers.get('Date') || '');
      if (Number.isFinite(date)) {
        const skew = date - this._now();
        this._skewMs = Math.abs(skew) > 10000 ? skew : 0;
      }
    } catch { /* headers unreadable: keep what we had */ }
  }

  _url(input) {
    if (typeof input !== 'string') return input;
    if (/^[a-z][a-z0-9+.-]*:/i.test(input) || input.startsWith('//')) return input;
    const base = this.options.baseUrl || '';
    if (!base) return input;
    return base.replace(/\/+$/, '') + (input.startsWith('/') ? input : `/${input}`);
  }

  _stateFrom(data, prev) {
    const now = this._now();
    const claims = decodeJwtPayload(data.accessToken) || {};
    // `expiresIn` is relative, so immune to a skewed client clock. The `exp`
    // claim (whole seconds) is used when it is missing, or to round down when
    // both clocks roughly agree (within a minute).
    const fromExp = typeof claims.exp === 'number' && isFinite(claims.exp) ? claims.exp * 1000 : null;
    let expiresAt = null;
    if (typeof data.expiresIn === 'number' && isFinite(data.expiresIn)) {
      expiresAt = now + data.expiresIn;
      if (fromExp != null && Math.abs(fromExp - expiresAt) < 60000) expiresAt = Math.min(expiresAt, fromExp);
    } else if (fromExp != null) {
      expiresAt = fromExp;
    }
    const s = {
      v: 1,
      accessToken: data.accessToken,
      expiresAt,
      lifetimeMs: expiresAt != null ? Math.max(0, expiresAt - now) : null,
      sessionId: data.sessionId ?? claims.sid ?? (prev ? prev.sessionId : null) ?? null,
      userId: data.userId ?? claims.sub ?? (prev ? prev.userId : null) ?? null,
      updatedAt: now,
    };
    if (!this.options.cookieMode) s.refreshToken = data.refreshToken || (prev ? prev.refreshToken : null) || null;
    return s;
  }

  /**
   * The refresh point: `refreshThresholdMs` before expiry, but never earlier
   * than half-way through the token's life, so a server issuing tokens shorter
   * than the threshold does not cause a refresh on every call.
   */
  _threshold(s) {
    const t = this.options.refreshThresholdMs;
    return s && typeof s.lifetimeMs === 'number' && s.lifetimeMs > 0 ? Math.min(t, s.lifetimeMs / 2) : t;
  }

  _needsRefresh(s) {
    if (!s || !s.accessToken) return !!s;
    if (s.expiresAt == null) return false;
    return s.expiresAt - this._now() <= this._threshold(s);
  }

  _isExpired(s) {
    return !!s && s.expiresAt != null && this._now() >= s.expiresAt;
  }

  // ---- state, storage, tabs

  _readStored() {
    let raw;
    try {
      raw = this._storage.getItem(this._key);
    } catch {
      return { ok: false, value: null };
    }
    if (raw == null) return { ok: true, value: null };
    try {
      const v = JSON.parse(raw);
      if (!v || typeof v !== 'object' || typeof v.accessToken !== 'string') return { ok: true, value: null };
      if (this.options.cookieMode) delete v.refreshToken;
      return { ok: true, value: v };
    } catch {
      return { ok: true, value: null };
    }
  }

  _write(state) {
    try {
      if (state) this._storage.setItem(this._key, JSON.stringify(state));
      else this._storage.removeItem(this._key);
    } catch {
      // Quota or blocked storage: keep going in memory only, so that a stale
      // stored value can never be mistaken for a sibling's rotation.
      this._log('storage write failed; continuing in memory only');
      this._storage = new MemoryStorage();
      if (state) this._storage.setItem(this._key, JSON.stringify(state));
    }
  }

  _setState(state, type) {
    this._state = state;
    this._write(state);
    this._post({ type: 'changed' });
    this._schedule();
    this._emit(type, {});
  }

  _adopt(stored, type) {
    const prev = this._state;
    this._state = stored;
    this._schedule();
    this._wake();
    if (!prev || prev.accessToken !== stored.accessToken || prev.sessionId !== stored.sessionId
        || prev.refreshToken !== stored.refreshToken) {
      this._emit(prev ? type : 'login', { source: 'other_tab' });
    }
  }

  _adoptFromStorage(source) {
    const read = this._readStored();
    if (!read.ok) return;
    if (read.value) this._adopt(read.value, 'sync');
    else if (this._state && source !== 'fallback') this._clearLocal('other_tab');
  }

  /** Forgets the session in this tab only. */
  _clearLocal(reason) {
    const had = !!this._state;
    this._state = null;
    this._hinted = null;
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    this._wake();
    if (had) {
      this._log('logged out:', reason);
      this._emit('logout', { reason });
    }
  }

  /** Forgets the session here and in every tab. */
  _clearSession(reason) {
    const sid = this._state ? this._state.sessionId : null;
    this._clearSharedBackoff();
    this._write(null);
    this._post({ type: 'logout', reason, sessionId: sid });
    this._clearLocal(reason);
  }

  _listen() {
    const onStorage = (e) => {
      if (this._destroyed) return;
      try { if (e.storageArea && e.storageArea !== this._storage) return; } catch { /* ignore */ }
      if (e.key === this._key || e.key === null) this._adoptFromStorage('storage');
      if (e.key === this._leaseKey || e.key === null) this._wake();
    };
    const onVisible = () => {
      if (typeof document !== 'undefined' && document.visibilityState === 'visible') {
        this._adoptFromStorage('visible');
        this._check();
      }
    };
    const onOnline = () => { this._onlineEpoch += 1; this._wake(); this._check(); };
    window.addEventListener('storage', onStorage);
    window.addEventListener('online', onOnline);
    window.addEventListener('pageshow', onVisible);
    if (typeof document !== 'undefined') document.addEventListener('visibilitychange', onVisible);
    this._cleanup.push(() => window.removeEventListener('storage', onStorage));
    this._cleanup.push(() => window.removeEventListener('online', onOnline));
    this._cleanup.push(() => window.removeEventListener('pageshow', onVisible));
    if (typeof document !== 'undefined') this._cleanup.push(() => document.removeEventListener('visibilitychange', onVisible));

    if (typeof BroadcastChannel === 'function') {
      try {
        this._channel = new BroadcastChannel(this.options.storageKey + 'channel');
        this._channel.onmessage = (e) => this._onMessage(e.data);
      } catch { this._channel = null; }
    }
  }

  _onMessage(msg) {
    if (this._destroyed || !msg || typeof msg !== 'object') return;
    if (msg.type === 'logout') {
      const s = this._state;
      if (s && (!msg.sessionId || !s.sessionId || msg.sessionId === s.sessionId)) {
        // Storage may hold a newer login; otherwise this tab is logged out too.
        const read = this._readStored();
        if (read.ok && read.value && read.value.sessionId !== s.sessionId) this._adopt(read.value, 'sync');
        else this._clearLocal(typeof msg.reason === 'string' ? msg.reason : 'other_tab');
      }
    } else if (msg.type === 'changed') {
      this._adoptFromStorage('channel');
    } else if (msg.type === 'lease-released') {
      this._wake();
    }
  }

  _post(msg) {
    if (!this._channel) return;
    try { this._channel.postMessage(msg); } catch { /* closed */ }
  }

  // ---- timers

  _startTimers() {
    const every = this.options.checkIntervalMs;
    if (every > 0) this._interval = setInterval(() => this._check(), every);
    this._schedule();
  }

  /** Precise timer for the refresh point, on top of the periodic check. */
  _schedule() {
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    if (this._destroyed || !this.options.autoRefresh) return;
    const s = this._state;
    if (!s || s.expiresAt == null) return;
    const due = s.expiresAt - this._threshold(s) - this._now();
    const delay = Math.min(Math.max(due, 0) + 25, 0x7fffffff);
    this._timer = setTimeout(() => { this._timer = null; this._check(); }, delay);
  }

  _check() {
    if (this._destroyed || this._inflight || !this.options.autoRefresh) return;
    const s = this._state;
    if (s && this._needsRefresh(s)) {
      this._log('background check: refresh due');
      this._backgroundRefresh(false);
    }
  }

  _backoff(attempt, retryAfter) {
    const { backoffBaseMs, backoffMaxMs } = this.options;
    const cap = Math.min(backoffMaxMs, backoffBaseMs * 2 ** attempt);
    let delay = Math.floor(this._random() * cap); // full jitter
    // The server's Retry-After wins over the backoff cap: retrying a 429 sooner only earns
    // another 429. A day at most, against a nonsensical header.
    if (retryAfter != null) delay = Math.max(delay, Math.min(retryAfter, MAX_RETRY_AFTER_MS));
    return delay;
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      let t = null;
      const done = () => { if (t) clearTimeout(t); this._wakers.delete(done); resolve(); };
      t = setTimeout(done, ms);
      this._wakers.add(done);
    });
  }

  _wake() {
    for (const w of [...this._wakers]) w();
  }

  // ---- cross-tab lock

  async _withLock(fn) {
    const o = this.options;
    const locks = o.useWebLocks && typeof navigator !== 'undefined' && navigator.locks
      && typeof navigator.locks.request === 'function' ? navigator.locks : null;
    if (locks) {
      let started = false;
      const ctl = typeof AbortController !== 'undefined' ? new AbortController() : null;
      const timer = ctl ? setTimeout(() => ctl.abort(), o.lockTimeoutMs) : null;
      try {
        return await locks.request(o.lockName, ctl ? { signal: ctl.signal } : {}, async () => {
          started = true;
          if (timer) clearTimeout(timer);
          return fn('web');
        });
      } catch (err) {
        if (!started && err && err.name === 'AbortError') {
          this._log('lock wait timed out; proceeding without it');
          return fn('none');
        }
        throw err;
      } finally {
        if (timer) clearTimeout(timer);
      }
    }
    return this._withLease(fn);
  }

  /** Fallback without Web Locks: a lease in storage, confirmed after a settle delay. */
  async _withLease(fn) {
    const o = this.options;
    const leaseMs = o.requestTimeoutMs + 5000;
    const deadline = this._now() + o.lockTimeoutMs;
    let owned = false;
    while (!this._destroyed) {
      const now = this._now();
      const cur = this._readLease();
      if (!cur || cur.until <= now || cur.owner === this._tabId) {
        this._writeLease({ owner: this._tabId, until: now + leaseMs });
        await delay(40 + Math.floor(this._random() * 20));
        const again = this._readLease();
        if (again && again.owner === this._tabId) { owned = true; break; }
      }
      if (now >= deadline) { this._log('lease wait timed out; proceeding without it'); break; }
      await this._sleep(50 + Math.floor(this._random() * 50));
    }
    try {
      return await fn(owned ? 'lease' : 'none');
    } finally {
      if (owned) {
        const cur = this._readLease();
        if (cur && cur.owner === this._tabId) {
          try { this._storage.removeItem(this._leaseKey); } catch { /* ignore */ }
        }
        this._post({ type: 'lease-released' });
      }
    }
  }

  /**
   * Holds a shared marker lock for a while, naming the access token just
   * replaced. Lock state lives in the browser process, so a tab granted the
   * refresh lock after us is sure to see it (unlike our storage write).
   */
  _markRotated(oldAccessToken) {
    const name = `${this.options.lockName}:rotated:${fingerprint(oldAccessToken)}`;
    const holdMs = Math.max(this.options.lockTimeoutMs, 10000);
    return new Promise((granted) => {
      const guard = setTimeout(granted, 1000);
      try {
        navigator.locks.request(name, { mode: 'shared' }, () => {
          clearTimeout(guard);
          granted();
          return delay(holdMs);
        }).catch(() => granted());
      } catch {
        granted();
      }
    });
  }

  async _rotatedAway(accessToken) {
    try {
      const name = `${this.options.lockName}:rotated:${fingerprint(accessToken)}`;
      const snapshot = await navigator.locks.query();
      return (snapshot.held || []).some((l) => l.name === name);
    } catch {
      return false;
    }
  }

  /** Waits (woken by storage events) until storage holds another token or none. */
  async _waitForStoredChange(oldAccessToken, ms) {
    const end = this._now() + ms;
    while (!this._destroyed && this._now() < end) {
      const read = this._readStored();
      if (!read.ok || !read.value || read.value.accessToken !== oldAccessToken) return;
      await this._sleep(Math.min(50, Math.max(1, end - this._now())));
    }
  }

  _readLease() {
    try {
      const raw = this._storage.getItem(this._leaseKey);
      const v = raw ? JSON.parse(raw) : null;
      return v && typeof v.owner === 'string' && typeof v.until === 'number' ? v : null;
    } catch {
      return null;
    }
  }

  _writeLease(v) {
    try { this._storage.setItem(this._leaseKey, JSON.stringify(v)); } catch { /* ignore */ }
  }

  /**
   * The backoff of a failed refresh, kept in storage beside the lease so that every tab
   * keeps to it: a tab that takes the lock (or lease) while another is backing off waits
   * too, instead of sending the request the server just asked to hold back. Tied to the
   * session; the tab that wrote it serves it with its own sleep. A later deadline is never
   * shortened by an earlier one.
   */
  _writeSharedBackoff(held, delayMs) {
    const now = this._now();
    const until = now + delayMs;
    const sessionId = held ? held.sessionId ?? null : null;
    const cur = this._readSharedBackoff();
    if (cur && cur.sessionId === sessionId && cur.until > until) return;
    try {
      this._storage.setItem(this._backoffKey, JSON.stringify({ owner: this._tabId, until, sessionId }));
    } catch { /* ignore: each tab then keeps to its own backoff */ }
  }

  /** Ms left of another tab's backoff for this session, else 0. */
  _sharedBackoffLeft(cur) {
    const b = this._readSharedBackoff();
    if (!b || b.owner === this._tabId) return 0;
    if ((b.sessionId ?? null) !== ((cur && cur.sessionId) ?? null)) return 0;
    const left = b.until - this._now();
    return left > 0 ? Math.min(left, MAX_RETRY_AFTER_MS) : 0;
  }

  _readSharedBackoff() {
    try {
      const raw = this._storage.getItem(this._backoffKey);
      const v = raw ? JSON.parse(raw) : null;
      return v && typeof v.owner === 'string' && typeof v.until === 'number' ? v : null;
    } catch {
      return null;
    }
  }

  _clearSharedBackoff() {
    try {
      if (this._storage.getItem(this._backoffKey) !== null) this._storage.removeItem(this._backoffKey);
    } catch { /* ignore */ }
  }

  // ---- events and logging

  _emit(type, detail) {
    const event = { type, ...detail, info: this.getTokenInfo() };
    for (const key of [type, '*']) {
      const set = this._listeners.get(key);
      if (!set) continue;
      for (const fn of [...set]) {
        try { fn(event); } catch (err) { this._log('listener threw', err && err.message); }
      }
    }
  }

  _log(...args) {
    let on = this.options.debug;
    if (on === undefined) {
      try { on = globalThis.localStorage && globalThis.localStorage.getItem('debug') === 'true'; } catch { on = false; }
    }
    // eslint-disable-next-line no-console
    if (on) console.debug('[TokenManager]', ...args);
  }
}

/**
 * Legacy shim: the current access token of the installed (or last created)
 * TokenManager, synchronously (same as `tokenManager.getAccessToken()`); null
 * when logged out. Prefer `await tokenManager.getFreshAccessToken()`.
 * @returns {string | null}
 */
export function getToken() {
  const tm = (installed && !installed._destroyed && installed)
    || (globalThis.tokenManager instanceof TokenManager && globalThis.tokenManager)
    || lastCreated;
  return tm ? tm.getAccessToken() : null;
}

function delay(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** Short non-secret fingerprint of a token (FNV-1a), to name marker locks without the token. */
function fingerprint(str) {
  let h = 0x811c9dc5;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${h.toString(16)}.${str.length}`;
}

async function readJson(res) {
  try { return await res.json(); } catch { return null; }
}

function errorFrom(res, body, fallback) {
  const code = (body && typeof body.error === 'string' && body.error) || `http_${res.status}`;
  const message = (body && typeof body.message === 'string' && body.message) || fallback;
  return new TokenManagerError(code, message, { status: res.status, retryable: res.status >= 500 || res.status === 429 });
}

function retryAfterMs(res) {
  const v = res.headers && res.headers.get('Retry-After');
  if (!v) return null;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const when = Date.parse(v);
  return Number.isFinite(when) ? Math.max(0, when - Date.now()) : null;
}

function toError(err) {
  if (err instanceof TokenManagerError) return err;
  return new TokenManagerError('network_error', (err && err.message) || 'Request failed', { retryable: true, cause: err });
}

export default TokenManager;
