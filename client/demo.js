// Script of the demo page (client/index.html). A module file, not inline, so
// the page runs under a strict Content-Security-Policy.
import { TokenManager } from './token-manager.js';

const $ = (id) => document.getElementById(id);
// The refresh token stays in the HttpOnly cookie, out of every script's reach, unless the
// page is opened with ?mode=body (the older, less safe mode). ?dpop=1 also binds the session
// to a non-extractable key of this browser (RFC 9449), once the server accepts DPoP.
const params = new URLSearchParams(location.search);
const cookieMode = params.get('mode') !== 'body';
const dpop = params.get('dpop') === '1';

// install() also sets window.tokenManager and the legacy getToken(), for the console.
const tm = TokenManager.install({ refreshTokenDelivery: cookieMode ? 'cookie' : 'body', dpop });

$('mode-name').textContent = cookieMode ? 'an HttpOnly cookie (script never sees it)' : 'localStorage (less safe)';
$('mode-switch').textContent = cookieMode ? 'Keep it in localStorage instead (less safe)' : 'Use the HttpOnly cookie instead';
$('mode-switch').href = cookieMode ? '/?mode=body' : '/';

let lifetimeMs = null; // length of the current token's life, for the progress bar

function showStatus(message, kind = 'error') {
  const el = $('status');
  el.textContent = message;
  el.className = kind === 'info' ? 'status info' : 'status';
  el.hidden = !message;
}

function describe(err) {
  if (!err) return 'Unknown error';
  return err.code ? `${err.message} (${err.code})` : String(err.message || err);
}

function fmtDuration(ms) {
  if (ms == null) return '–';
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function logEvent(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const log = $('event-log');
  log.prepend(li);
  while (log.children.length > 100) log.lastElementChild.remove();
}

function render() {
  const info = tm.getTokenInfo();
  $('login-panel').hidden = info.isAuthenticated;
  $('session-panel').hidden = !info.isAuthenticated;
  if (!info.isAuthenticated) return;
  $('user-name').textContent = info.userId ?? '?';
  $('session-id').textContent = info.sessionId ?? '?';
  $('last-refresh').textContent = info.lastRefreshAt ? new Date(info.lastRefreshAt).toLocaleTimeString() : 'none yet';
  tick();
}

function tick() {
  const info = tm.getTokenInfo();
  if (!info.isAuthenticated) return;
  const left = info.timeUntilExpiry;
  $('countdown').textContent = info.refreshing ? `${fmtDuration(left)} (refreshing…)` : fmtDuration(left);
  if (left != null) {
    if (lifetimeMs == null || left > lifetimeMs) lifetimeMs = left;
    $('countdown-bar').value = lifetimeMs ? left / lifetimeMs : 0;
  }
}

async function busy(button, fn) {
  button.disabled = true;
  try {
    showStatus('');
    await fn();
  } catch (err) {
    // A session ended elsewhere has already said why (the logout event): keep that message.
    if (tm.isAuthenticated() || $('status').hidden) showStatus(describe(err));
  } finally {
    button.disabled = false;
  }
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  busy($('login-button'), async () => {
    const r = await tm.login($('username').value.trim(), $('password').value);
    $('password').value = '';
    lifetimeMs = null;
    logEvent(`logged in as ${r.userId}`);
  });
});

$('whoami-button').addEventListener('click', () => busy($('whoami-button'), async () => {
  const res = await tm.makeAuthenticatedRequest('/api/me');
  const body = await res.json().catch(() => null);
  $('whoami-output').textContent = `${res.status}\n${JSON.stringify(body && (body.data ?? body), null, 2)}`;
}));

$('refresh-button').addEventListener('click', () => busy($('refresh-button'), async () => {
  const ok = await tm.refreshAccessToken();
  if (!ok) showStatus('Refresh failed; see the event log.');
}));

// The devices list: one row per live session, this tab's marked, each with its own
// "Sign out" button. Text only (textContent): the device label comes from a User-Agent.
async function showDevices() {
  const stats = await tm.getSessionStats();
  $('sessions-summary').textContent = `(${stats.activeSessions} of at most ${stats.maxSessions})`;
  const tbody = $('sessions-table').tBodies[0];
  tbody.replaceChildren();
  for (const s of stats.sessions) {
    const tr = document.createElement('tr');
    tr.dataset.sessionId = s.sessionId;
    if (s.current) tr.className = 'current';
    const device = document.createElement('td');
    device.textContent = s.device || 'Unknown device';
    if (s.current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'this tab';
      device.append(' ', badge);
    }
    const code = document.createElement('code');
    code.textContent = s.sessionId.slice(0, 8) + '…';
    code.title = s.sessionId;
    const sessionCell = document.createElement('td');
    sessionCell.append(code);
    const cells = [s.ip ?? '–', fmtTime(s.lastActiveAt), fmtTime(s.createdAt)].map((text) => {
      const td = document.createElement('td');
      td.textContent = text;
      return td;
    });
    const action = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'end-session secondary';
    button.textContent = s.current ? 'Sign out this tab' : 'Sign out';
    button.addEventListener('click', () => busy(button, async () => {
      await tm.endSession(s.sessionId);
      logEvent(`ended session ${s.sessionId.slice(0, 8)}… (${s.device || 'unknown device'})`);
      if (!s.current) await showDevices();
    }));
    action.append(button);
    tr.append(device, ...cells, sessionCell, action);
    tbody.append(tr);
  }
}

// Recent activity, under the devices list: newest first, text only.
const ACTIVITY_LABELS = {
  login: 'Signed in',
  reauthenticate: 'Confirmed password',
  refresh_reuse_detected: 'Stolen token detected: session ended',
  session_ended: 'Session ended',
  logout_all: 'Signed out everywhere',
  lockout: 'Locked out after failed sign-ins',
};
async function showActivity() {
  const events = await tm.activity();
  const list = $('activity-list');
  list.replaceChildren();
  for (const e of events) {
    const li = document.createElement('li');
    const what = (ACTIVITY_LABELS[e.type] || e.type) + (e.reason ? ` (${e.reason.replace('_', ' ')})` : '');
    const where = [e.device, e.ip].filter(Boolean).join(', ');
    li.textContent = `${fmtTime(e.at)}: ${what}${where ? ` from ${where}` : ''}`;
    list.append(li);
  }
  if (!events.length) list.textContent = '(none)';
}

$('sessions-button').addEventListener('click', () => busy($('sessions-button'), async () => {
  await showDevices();
  await showActivity();
}));

// Step-up (RFC 9470): a sensitive route refused for a too old password check raises a
// `stepup` event; the page asks for the password again, re-authenticates the same session
// (no logout) and retries. Resolves true once re-authenticated, false when cancelled.
function confirmPassword(challenge) {
  const dialog = $('stepup-dialog');
  const minutes = challenge && challenge.maxAge ? Math.max(1, Math.round(challenge.maxAge / 60)) : null;
  $('stepup-reason').textContent = minutes
    ? `This action needs a password check within the last ${minutes} minute(s).`
    : 'This action needs a stronger sign-in.';
  $('stepup-error').hidden = true;
  $('stepup-password').value = '';
  return new Promise((resolve) => {
    const done = (ok) => {
      $('stepup-form').onsubmit = null;
      $('stepup-cancel').onclick = null;
      dialog.close();
      resolve(ok);
    };
    $('stepup-cancel').onclick = () => done(false);
    $('stepup-form').onsubmit = async (ev) => {
      ev.preventDefault();
      try {
        await tm.reauthenticate({ username: tm.getTokenInfo().userId, password: $('stepup-password').value });
        done(true);
      } catch (err) {
        $('stepup-error').textContent = describe(err);
        $('stepup-error').hidden = false;
      }
    };
    dialog.showModal();
  });
}

let lastChallenge = null;
tm.on('stepup', (e) => { lastChallenge = e; });

$('security-button').addEventListener('click', () => busy($('security-button'), async () => {
  const ask = () => tm.makeAuthenticatedRequest('/api/account/security');
  lastChallenge = null;
  let res = await ask();
  if (res.status === 401 && lastChallenge && await confirmPassword(lastChallenge)) res = await ask();
  const body = await res.json().catch(() => null);
  $('security-output').textContent = `${res.status}\n${JSON.stringify(body && (body.data ?? body), null, 2)}`;
}));

$('logout-others-button').addEventListener('click', () => busy($('logout-others-button'), async () => {
  const n = await tm.logoutOthers();
  showStatus(`Signed out ${n} other device(s).`, 'info');
  await showDevices();
}));

$('logout-button').addEventListener('click', () => busy($('logout-button'), async () => {
  const ok = await tm.logout();
  // The page is logged out either way; a session the server did not end may still work
  // (a refresh cookie, a copied token) until it expires, and the user must know.
  if (!ok) {
    const why = tm.getTokenInfo().lastError;
    showStatus(`Logged out on this page, but the server did not confirm the logout${why ? ` (${why.code})` : ''}: `
      + 'the session may still be active until it expires. Log in again and use "Log out everywhere" to end it.');
  } else {
    showStatus('Logged out.', 'info');
  }
}));

$('logout-all-button').addEventListener('click', () => busy($('logout-all-button'), async () => {
  const n = await tm.logoutEverywhere();
  showStatus(n == null ? 'Logged out here; the server could not confirm.' : `Ended ${n} session(s).`, 'info');
}));

tm.onChange((e) => {
  const parts = [e.type];
  if (e.reason) parts.push(`(${e.reason})`);
  if (e.source) parts.push(`from ${e.source.replace('_', ' ')}`);
  if (e.type === 'retry') parts.push(`attempt ${e.attempt}, next in ${e.delayMs} ms`);
  if (e.type === 'logout-error') parts.push('— the server did not confirm; the session may still be active');
  if (e.type === 'stepup') parts.push(`— max_age ${e.maxAge ?? '–'} s: confirm your password`);
  if (e.type === 'refresh' || e.type === 'login' || e.type === 'reauthenticate') lifetimeMs = null;
  if (e.type === 'logout') {
    // Say why when the server ended the session, not this tab.
    const why = {
      token_revoked: 'This session was ended elsewhere (signed out from another device, by an administrator, or by the session limit). Log in again.',
      refresh_token_reused: 'This session was ended because its refresh token was used twice (possible theft). Log in again.',
      session_expired: 'This session reached its maximum lifetime. Log in again.',
      token_expired: 'This session expired. Log in again.',
    }[e.reason];
    if (why) showStatus(why);
    $('whoami-output').textContent = '(not asked yet)';
    $('sessions-table').tBodies[0].replaceChildren();
    $('activity-list').replaceChildren();
    $('sessions-summary').textContent = '';
  }
  logEvent(parts.join(' '));
  render();
});

setInterval(tick, 250);
render();
