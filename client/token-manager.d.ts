// Type declarations for client/token-manager.js (tower-jwt-session browser TokenManager).

/** Options of `new TokenManager(options)`. Every field is optional. */
export interface TokenManagerOptions {
  /** Origin (and optional path) prefixed to relative URLs. Default `''` (same origin). */
  baseUrl?: string;
  /** Login route. Default `'/api/auth/login'`. */
  loginPath?: string;
  /** Re-authentication (step-up) route. Default `'/api/auth/reauthenticate'`. */
  reauthenticatePath?: string;
  /** Prefix of the token routes (refresh, logout, logout-all, session-stats). Default `'/api/token'`. */
  tokenPrefix?: string;
  /** Period of the background expiry check in ms; `0` disables the periodic check. Default `300000` (5 min). */
  checkIntervalMs?: number;
  /**
   * Refresh when the access token has this many ms left, but never earlier than
   * half-way through the token's life. Default `900000` (15 min).
   */
  refreshThresholdMs?: number;
  /**
   * Where the refresh token lives. `'cookie'` (the default): only in the server's HttpOnly
   * cookie, never readable by script: login sends `refreshTokenDelivery: 'cookie'`, so the
   * server leaves it out of the login body (a refresh through the cookie never echoes it), and
   * refresh sends `X-Requested-With: XMLHttpRequest` with `credentials: 'include'` and no token
   * in the body. `'body'`: the refresh token comes in the response body and is kept in
   * `storage`, where any script of the page (an XSS, an extension) can read it: less safe; use
   * it only where the cookie cannot travel (an API on another site), and then with `dpop: true`,
   * which makes a copied refresh token useless.
   */
  refreshTokenDelivery?: 'cookie' | 'body';
  /**
   * Older form of `refreshTokenDelivery`: `true` is `'cookie'`, `false` is `'body'`.
   * `refreshTokenDelivery` wins when both are given. Default: cookie delivery.
   */
  cookieMode?: boolean;
  /**
   * Binds the session to this browser (DPoP, RFC 9449). A key pair is made with WebCrypto
   * whose private key cannot be exported, kept in IndexedDB (one per origin, shared by its
   * tabs, kept across reloads; in memory when IndexedDB is unavailable), and every request the
   * manager sends (login, refresh, logout, `fetch`/`makeAuthenticatedRequest`) carries a
   * `DPoP` proof signed with it. A token the server bound (`cnf.jkt`) is sent as
   * `Authorization: DPoP <token>`. A `use_dpop_nonce` answer is retried once with the
   * server's `DPoP-Nonce`. Needs a secure context (https or localhost). Default `false`.
   */
  dpop?: boolean;
  /**
   * The key type under `dpop: true`: `'auto'` (Ed25519 where the browser has it, else ES256),
   * `'ES256'` or `'Ed25519'`. Default `'auto'`.
   */
  dpopAlgorithm?: 'auto' | 'ES256' | 'Ed25519';
  /** Prefix of the storage keys (`<prefix>session`, `<prefix>refresh-lease`, `<prefix>refresh-backoff`) and of the BroadcastChannel. Default `'tjs.'`. */
  storageKey?: string;
  /** Retries of a refresh after a network error, 5xx, 408 or 429 (attempts = maxRetries + 1). Default `5`. */
  maxRetries?: number;
  /** Base of the exponential backoff in ms (full jitter). Default `1000`. */
  backoffBaseMs?: number;
  /** Cap of one backoff delay in ms. Default `30000`. */
  backoffMaxMs?: number;
  /** Timeout of the library's own requests (login, refresh, logout) in ms. Default `15000`. */
  requestTimeoutMs?: number;
  /** Web Locks name of the cross-tab refresh lock. Default `'tjs-refresh'`. */
  lockName?: string;
  /** How long to wait for the cross-tab lock before going ahead without it, in ms. Default `30000`. */
  lockTimeoutMs?: number;
  /** Use `navigator.locks` when present; `false` forces the storage-lease fallback. Default `true`. */
  useWebLocks?: boolean;
  /** Run the background timers. `false`: refresh only on demand. Default `true`. */
  autoRefresh?: boolean;
  /** `credentials` of the library's own requests. Default `'include'` with cookie delivery, else `'same-origin'`. */
  credentials?: RequestCredentials;
  /** Force debug logging on or off. Default: on when `localStorage.debug === 'true'`. */
  debug?: boolean;
  /** fetch implementation. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Storage for the session. Default `localStorage` (in-memory when unavailable). */
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;
  /** Clock in ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Random source in [0, 1) for the backoff jitter. Default `Math.random`. */
  random?: () => number;
}

/** What `getTokenInfo()` reports. Never contains a token value. */
export interface TokenInfo {
  isAuthenticated: boolean;
  hasAccessToken: boolean;
  /** `null` with cookie delivery (the refresh token is not visible to JS). */
  hasRefreshToken: boolean | null;
  /** Whether the refresh token is delivered as the HttpOnly cookie (`refreshTokenDelivery === 'cookie'`). */
  cookieMode: boolean;
  refreshTokenDelivery: 'cookie' | 'body';
  /** Whether requests carry DPoP proofs (`dpop: true`). */
  dpop: boolean;
  /** `'DPoP'` when the access token is bound to this browser's key (`cnf.jkt`), `'Bearer'` otherwise, null without one. */
  tokenType: 'DPoP' | 'Bearer' | null;
  userId: string | null;
  sessionId: string | null;
  /** `roles` claim of the access token (display only, unverified). */
  roles: string[];
  /** When the user last proved who they are (`auth_time`, RFC 3339): moved by a login or a re-authentication only. */
  authTime: string | null;
  /** How they did (`amr`, e.g. `['pwd', 'otp']`), when the server's credential check says so. */
  amr: string[];
  /** The authentication context class (`acr`), when the credential check names one. */
  acr: string | null;
  /**
   * The app's own claims of the access token (e.g. `tenant`): every claim but the registered
   * and reserved ones (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `sid`, `roles`, `typ`,
   * `auth_time`, `amr`, `acr`).
   * Display only, unverified; `{}` without a token or custom claims.
   */
  claims: Record<string, unknown>;
  /** RFC 3339 instant. */
  expiresAt: string | null;
  /** Milliseconds left, 0 when expired. */
  timeUntilExpiry: number | null;
  isExpired: boolean;
  needsRefresh: boolean;
  refreshing: boolean;
  /** Last refresh performed by this tab (RFC 3339). */
  lastRefreshAt: string | null;
  lastError: { code: string; message: string } | null;
}

export interface SessionSummary {
  sessionId: string;
  createdAt: string;
  lastRefreshedAt: string | null;
  /** When the session was last active: created or refreshed (RFC 3339). */
  lastActiveAt: string;
  /** Browser and platform captured at login (`Firefox on Linux`); empty when unknown. */
  device: string;
  /** The client address captured at login, as the server keeps it (`203.0.113.0/24` by default); null when not kept. */
  ip: string | null;
  expiresAt: string;
  /** Whether this is this tab's own session. */
  current: boolean;
}

/** One event of `GET {tokenPrefix}/activity`. */
export interface ActivityEvent {
  type: 'login' | 'reauthenticate' | 'refresh_reuse_detected' | 'session_ended' | 'logout_all' | 'lockout';
  /** Why the session ended, for `session_ended` only. */
  reason?: 'logout' | 'other_device' | 'admin' | 'evicted';
  /** When (RFC 3339). */
  at: string;
  sessionId: string | null;
  /** The device label as the devices list shows it, or null. */
  device: string | null;
  /** The client address as the devices list shows it, or null. */
  ip: string | null;
}

/** `data` of `GET {tokenPrefix}/session-stats/:userId`. */
export interface SessionStats {
  userId: string;
  activeSessions: number;
  maxSessions: number;
  sessions: SessionSummary[];
}

export interface LoginResult {
  userId: string | null;
  sessionId: string | null;
  /** Access token lifetime in ms, as the server sent it. */
  expiresIn: number | null;
  /** RFC 3339 instant. */
  expiresAt: string | null;
}

export type TokenManagerEventType = 'login' | 'refresh' | 'sync' | 'logout' | 'logout-error' | 'retry' | 'refresh-error' | 'stepup' | 'reauthenticate';

/**
 * - `login`: a session started (here, or in another tab: `source: 'other_tab'`).
 * - `refresh`: this tab refreshed the access token.
 * - `sync`: a token refreshed by another tab was adopted.
 * - `logout`: the session ended here; `reason` is `'logout'`, `'logout_all'`, `'other_tab'`,
 *   or the server's refresh error code (`'refresh_token_reused'`, `'token_revoked'`, …).
 *   `'token_revoked'` means the session was ended elsewhere: signed out from another device
 *   (`endSession`, `logoutOthers`), by an administrator, by logout-all, or by the session limit.
 * - `logout-error`: after `logout()` / `logoutEverywhere()` the server did not confirm that the
 *   session ended (`reason`: its error code or `'network_error'`, `status`: the HTTP status or
 *   null, `endpoint`: `'logout'` or `'logout-all'`). The page is logged out, but the session may
 *   still work on the server until it expires; show it to the user.
 * - `retry`: a refresh attempt failed and will be retried after `delayMs`.
 * - `refresh-error`: a refresh gave up (retries exhausted, or a non-retryable answer); the session is kept.
 * - `stepup`: a request was refused for a too old or too weak authentication (401
 *   `insufficient_user_authentication`, RFC 9470): `maxAge` (seconds) and `acrValues` say what
 *   the server asks for, `url` which request. Ask the user to confirm (a password dialog), call
 *   `reauthenticate(credentials)`, and send the request again. The session is kept.
 * - `reauthenticate`: this tab re-authenticated; the same session holds fresh tokens.
 */
export interface TokenManagerEvent {
  type: TokenManagerEventType;
  reason?: string;
  source?: 'other_tab';
  attempt?: number;
  attempts?: number;
  delayMs?: number;
  retryable?: boolean;
  /** `logout-error`: the HTTP status of the answer, null without one. */
  status?: number | null;
  /** `logout-error`: which route did not confirm. */
  endpoint?: 'logout' | 'logout-all';
  /** `stepup`: the most seconds since the user last authenticated that the server accepts. */
  maxAge?: number | null;
  /** `stepup`: the authentication classes the server accepts (empty when it named none). */
  acrValues?: string[];
  /** `stepup`: the request that was refused. */
  url?: string;
  info: TokenInfo;
}

export type Unsubscribe = () => void;

/** Error thrown by TokenManager methods. */
export class TokenManagerError extends Error {
  constructor(code: string, message: string, extra?: { status?: number; retryable?: boolean; cause?: unknown });
  readonly name: 'TokenManagerError';
  /**
   * The server's error code (`invalid_credentials`, `forbidden`, `rate_limited`, …), `http_<status>`
   * when the body had none, or a client code: `not_authenticated`, `network_error`, `refresh_failed`, `logged_out`,
   * `backing_off` (a refresh allowed no retries found another tab backing off from a failed refresh),
   * `dpop_unavailable` (`dpop: true` without WebCrypto, i.e. outside a secure context).
   */
  code: string;
  /** HTTP status, when there was a response. */
  status: number | null;
  /** Whether trying again later may succeed. */
  retryable: boolean;
}

export class TokenManager {
  constructor(options?: TokenManagerOptions);

  /** Effective options (defaults filled in). Treat as read-only. */
  readonly options: Readonly<Required<Omit<TokenManagerOptions, 'credentials' | 'debug' | 'fetch' | 'storage' | 'now' | 'random'>>> & TokenManagerOptions;

  static readonly version: string;

  /**
   * Creates the page-wide instance once, sets `window.tokenManager` and (unless the page
   * defines its own) the legacy global `getToken()`. Later calls return the same instance.
   */
  static install(options?: TokenManagerOptions): TokenManager;

  /** True when a session is held: a usable access token, or the means to refresh one. */
  isAuthenticated(): boolean;
  /**
   * The current access token, synchronously (as in the original guide); `null` when logged out.
   * May be near expiry, or expired after a failed refresh: when a refresh is due one is started
   * in the background, not awaited. Use `getFreshAccessToken()` to refresh first.
   */
  getAccessToken(): string | null;
  /**
   * The access token, refreshed first when expired or near expiry; `null` when logged out.
   * Rejects with `refresh_failed` when it has expired and the server cannot be reached.
   */
  getFreshAccessToken(): Promise<string | null>;
  /** @deprecated Alias of `getAccessToken()`. */
  peekAccessToken(): string | null;
  /**
   * `fetch` with the access token: `Authorization: DPoP <token>` and a `DPoP` proof for a
   * token bound to this browser's key, else `Authorization: Bearer` (with a proof too under
   * `dpop: true`). A `use_dpop_nonce` answer is retried once with the server's nonce; after a
   * 401 it refreshes once and retries once. Bodies must be replayable (no streams).
   * Rejects with `not_authenticated` when no session is held.
   */
  makeAuthenticatedRequest(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** The same as `makeAuthenticatedRequest`. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /**
   * The RFC 7638 thumbprint of this origin's DPoP key (the `cnf.jkt` a server binds the
   * session to), making the key if there is none yet; `null` without `dpop: true`.
   */
  getDpopThumbprint(): Promise<string | null>;
  /** Refreshes now; resolves `true` when a fresh token is held (a sibling tab's rotation counts). Never rejects. */
  refreshAccessToken(): Promise<boolean>;
  getTokenInfo(): TokenInfo;
  getSessionStats(): Promise<SessionStats>;
  /** Rejects with a `TokenManagerError` (`invalid_credentials`, `network_error`, …). */
  login(username: string, password: string): Promise<LoginResult>;
  /**
   * Answers a `stepup` event: the same session gets fresh tokens with a new `auth_time`, without
   * a logout. Rejects with a `TokenManagerError` (`invalid_credentials` leaves the session as it
   * was, `forbidden` for another user's credentials, `rate_limited`, `not_authenticated`, …).
   */
  reauthenticate(credentials: Record<string, unknown>): Promise<LoginResult>;
  /**
   * Logs out every tab at once, then revokes the session on the server; resolves whether it
   * confirmed. A refresh request under way is waited for first (at most `requestTimeoutMs`) and
   * its access token used; in cookie mode the refresh cookie also names the session. When the
   * server did not confirm, a `logout-error` event is emitted and `getTokenInfo().lastError` says why.
   */
  logout(): Promise<boolean>;
  /** Revokes all the user's sessions; resolves the server's `revoked` count, or `null` if unconfirmed (then also a `logout-error` event). */
  logoutEverywhere(): Promise<number | null>;
  /** The user's live sessions (the devices list); the row of this tab's session has `current: true`. */
  listSessions(): Promise<SessionSummary[]>;
  /** The user's own security activity, newest first (logins, re-authentications, detected token theft, ended sessions, lock-outs). */
  activity(): Promise<ActivityEvent[]>;
  /**
   * Ends one of the user's sessions ("sign out this device"), on every server at once. Rejects
   * with `not_found` for a session that is not the user's or has ended. Ending this tab's own
   * session logs out every tab here.
   */
  endSession(sessionId: string): Promise<void>;
  /** Ends every session of the user but this one ("sign out all other devices"); resolves how many ended. */
  logoutOthers(): Promise<number>;
  /** Listener for every event. */
  onChange(listener: (event: TokenManagerEvent) => void): Unsubscribe;
  on(type: TokenManagerEventType | '*', listener: (event: TokenManagerEvent) => void): Unsubscribe;
  off(type: TokenManagerEventType | '*', listener: (event: TokenManagerEvent) => void): void;
  /** Stops timers and listeners; the stored session is kept for other tabs. */
  destroy(): void;
}

/** Legacy shim: the installed manager's `getAccessToken()` (synchronous), or `null`. */
export function getToken(): string | null;

/** Decodes a JWT payload without verifying it (display and scheduling only). */
export function decodeJwtPayload(token: string): Record<string, unknown> | null;

/**
 * The step-up challenge of a 401 (RFC 9470 §3: `error="insufficient_user_authentication"` with
 * `max_age` and/or `acr_values`), or null for any other answer.
 */
export function stepUpChallenge(res: Response): { maxAge: number | null; acrValues: string[] } | null;

/** A DPoP key pair: the private key is never extractable; `jwk` holds the public members only. */
export interface DpopKey {
  /** The proof's `alg`: `'ES256'` (P-256) or `'EdDSA'` (Ed25519). */
  alg: 'ES256' | 'EdDSA';
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** `{kty, crv, x, y}` (EC) or `{kty, crv, x}` (OKP). */
  jwk: JsonWebKey;
}

/** What one DPoP proof names. */
export interface DpopProofParams {
  /** The request's method. */
  htm: string;
  /** The request's absolute URL; query and fragment are dropped. */
  htu: string;
  /** The access token sent with the request: its hash goes into `ath`. */
  accessToken?: string;
  /** The server's latest `DPoP-Nonce`. */
  nonce?: string;
  /** Seconds since the epoch; now by default. */
  iat?: number;
  /** Unique id; 128 random bits by default. */
  jti?: string;
}

/**
 * Makes a DPoP key pair whose private key cannot be exported: Ed25519 where the browser has it
 * (`'auto'`, `'Ed25519'`), else ECDSA P-256. Rejects with `dpop_unavailable` without WebCrypto.
 */
export function generateDpopKey(algorithm?: 'auto' | 'ES256' | 'Ed25519'): Promise<DpopKey>;

/** Signs a DPoP proof (RFC 9449 §4.2) for one request. */
export function createDpopProof(key: DpopKey, params: DpopProofParams): Promise<string>;

/** The RFC 7638 thumbprint (base64url SHA-256) of a public EC or OKP JWK. */
export function dpopThumbprint(jwk: JsonWebKey): Promise<string>;

export default TokenManager;

declare global {
  interface Window {
    /** Set by `TokenManager.install()`. */
    tokenManager?: TokenManager;
    /** Legacy shim set by `TokenManager.install()`. */
    getToken?: () => string | null;
  }
}
