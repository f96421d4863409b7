#!/usr/bin/env bash
# Abuse soak (issue 12): what an attacker's volume costs the release example server, on the
# memory store and on Redis. Three parts, each on a fresh server:
#
#   1. one account logs in ABUSE_LOGINS times (default session limit 10): server RSS,
#      tjs_sessions_held (memory store), the Redis keys under the run's prefix and the account's
#      index size (ZCARD), before and after, and after that account's logout-all; the account's
#      login p50/p99 and another user's refresh p50/p99 (quiet, sequential probes) at the start
#      and at the end.
#   2. ABUSE_FORGED forged refresh tokens, half on /refresh, half on /auto-refresh, from
#      ABUSE_FORGED_CLIENTS client addresses in turn (X-Forwarded-For from a trusted 127.0.0.1):
#      RSS, latency of the first and last tenth, and the answers (401 until a client's
#      failed-refresh budget is spent, then 429).
#   3. ABUSE_IPS distinct client addresses (X-Forwarded-For) at the rate limiter, one request
#      each on /api/token/validate: RSS and latency of the first and last tenth.
#
# Prints progress, and at the end a Markdown report (also written to ABUSE_REPORT). Every
# request goes to 127.0.0.1; every flood is bounded by its count and by ABUSE_MAX_SECONDS.
# Not run in CI.
#
#   bash bench/abuse.sh                                          # everything, full size
#   ABUSE_LOGINS=2000 ABUSE_FORGED=5000 ABUSE_IPS=5000 bash bench/abuse.sh   # a quick run
#   ABUSE_PARTS=1 ABUSE_STORES=redis bash bench/abuse.sh         # part 1 on Redis only
#
# ABUSE_LOGINS          logins of one account in part 1 (default 40000)
# ABUSE_FORGED          forged refresh tokens in part 2 (default 100000)
# ABUSE_FORGED_CLIENTS  client addresses the forged tokens come from, in turn (default 1000;
#                       0: all from 127.0.0.1 itself)
# ABUSE_IPS             distinct client addresses in part 3 (default 100000)
# ABUSE_CONNECTIONS     parallel connections (client processes) per flood (default 4)
# ABUSE_PROBES          sequential requests per latency probe in part 1 (default 200)
# ABUSE_PARTS           which parts (default "1 2 3")
# ABUSE_STORES          which stores (default "memory redis")
# ABUSE_MAX_SECONDS     time cap of each flood; a capped flood reports how far it got
#                       (default 3600)
# ABUSE_REPORT          where the report goes (default bench/abuse.md)
# ABUSE_SERVER_ENV      extra VAR=value settings for every server, space-separated (e.g.
#                       MALLOC_MMAP_THRESHOLD_=1048576 to see what glibc keeps of the 19 MiB
#                       argon2 blocks of each login)
# REDIS_URL             Redis for the redis store (default redis://127.0.0.1:6379; loopback
#                       only). Each server gets its own key prefix tjsabuse-<pid>-<part>,
#                       deleted (SCAN + DEL) at the end.
# TJS_SERVER_BIN        the server binary (default: cargo build --release --all-features
#                       --example server, then target/release/examples/server)
set -euo pipefail
cd "$(dirname "$0")/.."

logins="${ABUSE_LOGINS:-40000}"
forged="${ABUSE_FORGED:-100000}"
forged_clients="${ABUSE_FORGED_CLIENTS:-1000}"
ips="${ABUSE_IPS:-100000}"
conns="${ABUSE_CONNECTIONS:-4}"
probes="${ABUSE_PROBES:-200}"
parts="${ABUSE_PARTS:-1 2 3}"
stores="${ABUSE_STORES:-memory redis}"
max_seconds="${ABUSE_MAX_SECONDS:-3600}"
read -r -a server_env <<<"${ABUSE_SERVER_ENV:-}"
report="${ABUSE_REPORT:-bench/abuse.md}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
secret="abuse-secret-abuse-secret-abuse-secret-abuse-secret"

log() { printf '[abuse] %s\n' "$*" >&2; }

for n in "$logins" "$forged" "$forged_clients" "$ips" "$conns" "$probes" "$max_seconds"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { log "not a count: $n"; exit 2; }
done
((conns >= 1 && probes >= 1)) || { log "ABUSE_CONNECTIONS and ABUSE_PROBES must be at least 1"; exit 2; }
case "$redis_url" in
  redis://127.0.0.1:* | redis://localhost:* | redis://127.0.0.1 | redis://localhost) ;;
  *) log "refusing a non-loopback REDIS_URL: $redis_url"; exit 2 ;;
esac
if [[ " $stores " == *" redis "* ]]; then
  command -v redis-cli >/dev/null || { log "redis-cli is needed for the redis store"; exit 2; }
  redis-cli -u "$redis_url" ping >/dev/null || { log "no Redis at $redis_url"; exit 2; }
fi

if [[ -n "${TJS_SERVER_BIN:-}" ]]; then
  bin="$TJS_SERVER_BIN"
else
  log "building the example server (release, all features)"
  cargo build --release --all-features --example server --quiet
  bin="target/release/examples/server"
fi
[[ -x "$bin" ]] || { log "no server binary at $bin"; exit 2; }

work="$(mktemp -d)"
# A copy, so that a rebuild during the run does not change the server between parts.
cp "$bin" "$work/server"
bin="$work/server"
results="$work/results"
: >"$results"
prefix_base="tjsabuse-$$"
server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
redis_clean() {
  # The keys this run wrote (SCAN, never KEYS: the server may be shared).
  redis-cli -u "$redis_url" --scan --pattern "$prefix_base-*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "$redis_url" DEL >/dev/null 2>&1 || true
}
cleanup() {
  stop_server
  if [[ " $stores " == *" redis "* ]]; then redis_clean; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server STORE PART ENV...: a fresh example server; sets base, metrics, server_pid, prefix.
start_server() {
  local store="$1" part="$2"
  shift 2
  local store_env=()
  prefix=""
  if [[ "$store" == redis ]]; then
    prefix="$prefix_base-$part"
    store_env=(REDIS_URL="$redis_url" REDIS_KEY_PREFIX="$prefix")
  fi
  env -i PATH="$PATH" PORT=0 METRICS_ADDR=127.0.0.1:0 JWT_SECRET="$secret" RUST_LOG=warn \
    "${store_env[@]}" "${server_env[@]}" "$@" "$bin" >"$work/stdout" 2>"$work/stderr" &
  server_pid=$!
  base=""
  for _ in $(seq 300); do
    base="$(sed -n 's/^listening on //p' "$work/stdout" | head -n 1)"
    [[ -n "$base" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n "$base" ]] || { log "the server did not start"; exit 1; }
  metrics="$(sed -n 's/^metrics on //p' "$work/stdout" | head -n 1)"
  case "$base $metrics" in
    "http://127."*" http://127."*) ;;
    *) log "refusing a non-loopback address: $base $metrics"; exit 1 ;;
  esac
  log "$store, part $part: server pid $server_pid at $base, metrics $metrics${prefix:+, Redis prefix $prefix}"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
held() {
  local v
  v="$(curl -sf "$metrics" | awk '$1 == "tjs_sessions_held" {print $2}')" || true
  echo "${v:-n/a}"
}
# redis_keys KIND: keys under the prefix: all, or those of sessions (s), user indexes (u),
# the rate limiter (rl), failed attempts (at).
redis_keys() {
  local pattern="$prefix:*"
  case "$1" in
    s) pattern="$prefix:{*}:s:*" ;;
    u) pattern="$prefix:{*}:u:*" ;;
    rl) pattern="$prefix:rl:*" ;;
    at) pattern="$prefix:at:*" ;;
  esac
  redis-cli -u "$redis_url" --scan --pattern "$pattern" | wc -l
}
# The size of USER's session index (the store's layout: P:{tag}:u:<hash>, unsealed names).
redis_index() {
  local h key
  h="$(printf '%s' "$1" | sha256sum | cut -c1-64)"
  key="$prefix:{${h:0:8}}:u:${h:0:32}"
  redis-cli -u "$redis_url" ZCARD "$key"
}
# record PART STORE KEY VALUE
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }
# snapshot PART STORE WHEN: RSS, sessions held, Redis keys.
snapshot() {
  local part="$1" store="$2" when="$3"
  record "$part" "$store" "rss_kb.$when" "$(rss_kb)"
  record "$part" "$store" "held.$when" "$(held)"
  if [[ "$store" == redis ]]; then
    record "$part" "$store" "keys.$when" "$(redis_keys all)"
    record "$part" "$store" "keys_s.$when" "$(redis_keys s)"
    record "$part" "$store" "keys_u.$when" "$(redis_keys u)"
    record "$part" "$store" "keys_rl.$when" "$(redis_keys rl)"
    record "$part" "$store" "keys_at.$when" "$(redis_keys at)"
    record "$part" "$store" "zcard.$when" "$(redis_index alice)"
  fi
}

cat >"$work/abuse.py" <<'PY'
import base64, http.client, json, multiprocessing as mp, os, random, string, sys, time
import urllib.parse

def connect(base):
    u = urllib.parse.urlparse(base)
    assert u.hostname.startswith("127."), base
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)

class Client:
    """One keep-alive connection; reconnects once when the server closed it."""
    def __init__(self, base):
        self.base, self.conn = base, connect(base)

    def call(self, method, path, body=None, token=None, xff=None):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = "Bearer " + token
        if xff:
            headers["x-forwarded-for"] = xff
        data = json.dumps(body) if body is not None else None
        for attempt in (0, 1):
            try:
                start = time.perf_counter()
                self.conn.request(method, path, body=data, headers=headers)
                res = self.conn.getresponse()
                raw = res.read()
                ms = (time.perf_counter() - start) * 1000
                if res.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = connect(self.base)
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = connect(self.base)
                if attempt:
                    raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return res.status, parsed, ms

def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]

def login(c, user):
    status, body, ms = c.call("POST", "/api/auth/login",
                              {"username": user, "password": user + "-password"})
    assert status == 200, (status, body)
    return body["data"], ms

def probe_login(base, user, n, out):
    c, lat = Client(base), []
    for _ in range(n):
        _, ms = login(c, user)
        lat.append(ms)
    json.dump({"n": n, "p50": pct(lat, 50), "p99": pct(lat, 99)}, open(out, "w"))

def probe_refresh(base, user, n, out):
    c, lat = Client(base), []
    token = login(c, user)[0]["refreshToken"]
    for _ in range(n):
        status, body, ms = c.call("POST", "/api/token/refresh", {"refreshToken": token})
        assert status == 200, (status, body)
        token = body["data"]["refreshToken"]
        lat.append(ms)
    json.dump({"n": n, "p50": pct(lat, 50), "p99": pct(lat, 99)}, open(out, "w"))

def logout_all(base, user, out):
    c = Client(base)
    access = login(c, user)[0]["accessToken"]
    status, body, _ = c.call("POST", "/api/token/logout-all", token=access)
    assert status == 200, (status, body)
    json.dump(body["data"], open(out, "w"))

def address(n):
    """The n-th address of 10.0.0.0/8 (n from 1)."""
    return "10.%d.%d.%d" % ((n >> 16) & 255, (n >> 8) & 255, n & 255)

def forger(seed):
    """Forged refresh tokens shaped like the real one: its sid or a random one, random MAC;
    one in ten malformed."""
    parts = seed["refreshToken"].split(".")
    rng = random.Random(1)
    alphabet = string.hexdigits[:16] if all(c in string.hexdigits for c in parts[1]) \
        else string.ascii_letters + string.digits + "-_"
    def make(i):
        if i % 10 == 9:
            return "tjs1." + "".join(rng.choice(alphabet) for _ in range(20))
        sid = parts[1] if i % 4 < 2 else "".join(rng.choice(alphabet) for _ in parts[1])
        mac = base64.urlsafe_b64encode(os.urandom(64)).decode().rstrip("=")[: len(parts[4])]
        return ".".join([parts[0], sid, parts[2], parts[3], mac])
    return make

def worker(kind, base, total, conns, w, deadline, progress, seed, clients, out):
    c = Client(base)
    forge = forger(seed) if kind == "forged" else None
    rows = []
    t0 = time.perf_counter()
    for i in range(w, total, conns):
        if time.time() > deadline:
            break
        if kind == "login":
            status, body, ms = c.call("POST", "/api/auth/login",
                                      {"username": "alice", "password": "alice-password"})
        elif kind == "forged":
            xff = address(i % clients + 1) if clients else None
            token = forge(i)
            if i % 2 == 0:
                status, body, ms = c.call("POST", "/api/token/refresh",
                                          {"refreshToken": token}, xff=xff)
            else:
                status, body, ms = c.call("POST", "/api/token/auto-refresh",
                                          {"accessToken": seed["accessToken"],
                                           "refreshToken": token}, xff=xff)
        else:
            status, body, ms = c.call("POST", "/api/token/validate", {"accessToken": "x"},
                                      xff=address(i + 1))
        code = body.get("error") if isinstance(body, dict) and status != 200 else None
        rows.append((i, round(ms, 3), status, code))
        progress[w] += 1
    with open(out, "w") as f:
        json.dump(rows, f)

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def flood(kind, base, total, conns, pid, max_seconds, out, clients=0):
    seed = None
    if kind == "forged":
        seed = login(Client(base), "bob")[0]
    progress = mp.Array("q", conns, lock=False)
    deadline = time.time() + max_seconds
    procs = [mp.Process(target=worker, args=(kind, base, total, conns, w, deadline, progress,
                                             seed, clients, f"{out}.{w}"))
             for w in range(conns)]
    start = time.monotonic()
    for p in procs:
        p.start()
    rss = [(0, rss_kb(pid))]
    last = start
    while any(p.is_alive() for p in procs):
        time.sleep(0.2)
        now = time.monotonic()
        if now - last >= 5:
            last = now
            done = sum(progress)
            rss.append((round(now - start), rss_kb(pid)))
            print(f"[abuse]   {kind}: {done}/{total} in {now - start:.0f} s "
                  f"({done / (now - start):.0f}/s), server RSS {rss[-1][1] / 1024:.1f} MiB",
                  file=sys.stderr, flush=True)
    for p in procs:
        p.join()
        assert p.exitcode == 0, f"a client process failed ({p.exitcode})"
    seconds = time.monotonic() - start
    rss.append((round(seconds), rss_kb(pid)))
    rows = []
    for w in range(conns):
        rows.extend(json.load(open(f"{out}.{w}")))
        os.remove(f"{out}.{w}")
    rows.sort()
    tenth = max(1, len(rows) // 10)
    first = [r[1] for r in rows[:tenth]]
    lastt = [r[1] for r in rows[-tenth:]]
    answers = {}
    for r in rows:
        key = f"{r[2]} {r[3]}" if r[3] else str(r[2])
        answers[key] = answers.get(key, 0) + 1
    summary = {
        "requests": len(rows), "asked": total, "seconds": round(seconds, 1),
        "per_second": round(len(rows) / seconds) if seconds else None,
        "first_p50": pct(first, 50), "first_p99": pct(first, 99),
        "last_p50": pct(lastt, 50), "last_p99": pct(lastt, 99),
        "answers": answers, "rss": rss, "rss_max_kb": max(v for _, v in rss),
    }
    json.dump(summary, open(out, "w"))

def check(base, out, xff):
    """What a fresh client gets after the flood: health, validate, refresh."""
    c = Client(base)
    health = c.call("GET", "/api/token/health", xff=xff)[0]
    validate = c.call("POST", "/api/token/validate", {"accessToken": "x"}, xff=xff)[0]
    data = login(c, "bob")[0]
    refresh = c.call("POST", "/api/token/refresh", {"refreshToken": data["refreshToken"]},
                     xff=xff)[0]
    json.dump({"health": health, "validate": validate, "refresh": refresh}, open(out, "w"))

if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "probe-login":
        probe_login(a[0], a[1], int(a[2]), a[3])
    elif cmd == "probe-refresh":
        probe_refresh(a[0], a[1], int(a[2]), a[3])
    elif cmd == "logout-all":
        logout_all(a[0], a[1], a[2])
    elif cmd == "flood":
        flood(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), float(a[5]), a[6],
              int(a[7]) if len(a) > 7 else 0)
    elif cmd == "check":
        check(a[0], a[1], a[2] if len(a) > 2 else None)
    else:
        raise SystemExit(f"unknown command {cmd}")
PY
py() { python3 "$work/abuse.py" "$@"; }
# json_field FILE KEY: one field of a JSON object, as JSON text.
json_field() { python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2"; }

part1() {
  local store="$1"
  start_server "$store" 1 RATE_LIMIT_MAX_REQUESTS=1000000000
  snapshot 1 "$store" before
  log "$store, part 1: $probes sequential refreshes of bob, $probes logins of alice (start)"
  py probe-refresh "$base" bob "$probes" "$work/bob.start"
  py probe-login "$base" alice "$probes" "$work/alice.start"
  log "$store, part 1: alice logs in $logins times over $conns connections"
  py flood login "$base" "$logins" "$conns" "$server_pid" "$max_seconds" "$work/p1.$store"
  log "$store, part 1: probes again (end)"
  py probe-login "$base" alice "$probes" "$work/alice.end"
  py probe-refresh "$base" bob "$probes" "$work/bob.end"
  snapshot 1 "$store" after
  py logout-all "$base" alice "$work/logout-all"
  sleep 1
  snapshot 1 "$store" logout_all
  record 1 "$store" logout_all_revoked "$(json_field "$work/logout-all" revoked)"
  for f in alice.start alice.end bob.start bob.end; do
    record 1 "$store" "$f" "$(cat "$work/$f")"
  done
  record 1 "$store" flood "$(cat "$work/p1.$store")"
  stop_server
}

part2() {
  local store="$1"
  start_server "$store" 2 RATE_LIMIT_MAX_REQUESTS=1000000000 TRUSTED_PROXIES=127.0.0.1
  snapshot 2 "$store" before
  log "$store, part 2: $forged forged refresh tokens from $forged_clients clients over $conns connections"
  py flood forged "$base" "$forged" "$conns" "$server_pid" "$max_seconds" "$work/p2.$store" \
    "$forged_clients"
  snapshot 2 "$store" after
  py check "$base" "$work/check2" 192.0.2.1
  record 2 "$store" check "$(cat "$work/check2")"
  record 2 "$store" flood "$(cat "$work/p2.$store")"
  stop_server
}

part3() {
  local store="$1"
  start_server "$store" 3 TRUSTED_PROXIES=127.0.0.1
  snapshot 3 "$store" before
  log "$store, part 3: $ips distinct client addresses over $conns connections"
  py flood ips "$base" "$ips" "$conns" "$server_pid" "$max_seconds" "$work/p3.$store"
  snapshot 3 "$store" after
  py check "$base" "$work/check3" 192.0.2.1
  record 3 "$store" check "$(cat "$work/check3")"
  record 3 "$store" flood "$(cat "$work/p3.$store")"
  stop_server
}

started=$SECONDS
for part in $parts; do
  for store in $stores; do
    case "$part" in
      1) part1 "$store" ;;
      2) part2 "$store" ;;
      3) part3 "$store" ;;
      *) log "no part $part"; exit 2 ;;
    esac
  done
done

python3 - "$results" "$report" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$logins" "$forged" "$forged_clients" "$ips" "$conns" "$probes" "$((SECONDS - started))" \
  "${ABUSE_SERVER_ENV:-}" <<'PY'
import json, sys, time
results, report, commit, logins, forged, clients, ips, conns, probes, took, server_env = sys.argv[1:]
data = {}
for line in open(results):
    part, store, key, value = line.rstrip("\n").split("\t", 3)
    try:
        value = json.loads(value)
    except ValueError:
        pass
    data.setdefault(part, {}).setdefault(store, {})[key] = value

def mib(kb):
    return f"{kb / 1024:.1f}" if isinstance(kb, (int, float)) else "n/a"

def ms(v):
    return f"{v:.2f}" if isinstance(v, (int, float)) else "n/a"

def table(part, rows):
    stores = list(data.get(part, {}))
    if not stores:
        return []
    out = ["| | " + " | ".join(stores) + " |", "|---|" + "---|" * len(stores)]
    for label, f in rows:
        cells = []
        for s in stores:
            try:
                cells.append(str(f(data[part][s])))
            except (KeyError, TypeError):
                cells.append("n/a")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out

def arrow(d, key, fmt=str):
    vals = [d.get(f"{key}.{w}") for w in ("before", "after", "logout_all") if f"{key}.{w}" in d]
    return " → ".join(fmt(v) for v in vals) or "n/a"

def answers(flood):
    return ", ".join(f"{k}: {v}" for k, v in sorted(flood["answers"].items()))

def flood_rows(noun):
    return [
        (f"{noun} sent (asked)", lambda d: f'{d["flood"]["requests"]} ({d["flood"]["asked"]})'),
        ("wall time, s (requests/s)", lambda d: f'{d["flood"]["seconds"]} ({d["flood"]["per_second"]})'),
        ("latency p50 / p99, first tenth, ms",
         lambda d: f'{ms(d["flood"]["first_p50"])} / {ms(d["flood"]["first_p99"])}'),
        ("latency p50 / p99, last tenth, ms",
         lambda d: f'{ms(d["flood"]["last_p50"])} / {ms(d["flood"]["last_p99"])}'),
        ("server RSS before → after, MiB (peak sampled)",
         lambda d: f'{mib(d["rss_kb.before"])} → {mib(d["rss_kb.after"])} ({mib(d["flood"]["rss_max_kb"])})'),
    ]

lines = [
    "# Abuse soak: the example server under an attacker's volume",
    "",
    f"Written by `bash bench/abuse.sh` on {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, "
    f"commit `{commit}` (plus uncommitted changes, if any); release build, loopback, "
    f"{conns} client connections (Python processes) on the same 2 cores as the server; "
    f"{took} s in all." + (f" Server environment: `{server_env}`." if server_env else ""),
    "",
]
if "1" in data:
    lines += [
        f"## 1. One account logs in {logins} times (session limit 10)",
        "",
        "Latency probes: "
        f"{probes} sequential logins of alice and {probes} sequential refreshes of bob, before "
        "and after the flood, on a quiet server.",
        "",
    ]
    lines += table("1", [
        ("logins sent (asked)", lambda d: f'{d["flood"]["requests"]} ({d["flood"]["asked"]})'),
        ("answers", lambda d: answers(d["flood"])),
        ("wall time, s (logins/s)", lambda d: f'{d["flood"]["seconds"]} ({d["flood"]["per_second"]})'),
        ("server RSS, MiB: before → after → after logout-all", lambda d: arrow(d, "rss_kb", mib)),
        ("`tjs_sessions_held`: before → after → after logout-all", lambda d: arrow(d, "held")),
        ("Redis keys under the prefix", lambda d: arrow(d, "keys")),
        ("… session records (`:s:`)", lambda d: arrow(d, "keys_s")),
        ("alice's index (ZCARD)", lambda d: arrow(d, "zcard")),
        ("logout-all revoked", lambda d: d["logout_all_revoked"]),
        ("alice login p50 / p99, ms: start", lambda d: f'{ms(d["alice.start"]["p50"])} / {ms(d["alice.start"]["p99"])}'),
        ("alice login p50 / p99, ms: end", lambda d: f'{ms(d["alice.end"]["p50"])} / {ms(d["alice.end"]["p99"])}'),
        ("bob refresh p50 / p99, ms: start", lambda d: f'{ms(d["bob.start"]["p50"])} / {ms(d["bob.start"]["p99"])}'),
        ("bob refresh p50 / p99, ms: end", lambda d: f'{ms(d["bob.end"]["p50"])} / {ms(d["bob.end"]["p99"])}'),
        ("flood login p50, ms: first → last tenth",
         lambda d: f'{ms(d["flood"]["first_p50"])} → {ms(d["flood"]["last_p50"])}'),
    ])
    lines.append("")
if "2" in data:
    src = f"{clients} client addresses in turn" if clients != "0" else "127.0.0.1 alone"
    lines += [
        f"## 2. {forged} forged refresh tokens",
        "",
        f"Half on `/api/token/refresh`, half on `/api/token/auto-refresh` (with bob's valid "
        f"access token); one in ten malformed, the rest shaped like bob's token with a random "
        f"MAC (half with his session id); from {src} (`X-Forwarded-For`, 127.0.0.1 trusted); "
        "`RATE_LIMIT_MAX_REQUESTS=1000000000`, so the answers are the failed-refresh budget's.",
        "",
    ]
    lines += table("2", flood_rows("tokens") + [
        ("answers (status and error)", lambda d: answers(d["flood"])),
        ("Redis keys: failed attempts (`:at:`) after", lambda d: d["keys_at.after"]),
        ("a fresh client afterwards: health, validate, refresh", lambda d: f'{d["check"]["health"]}, {d["check"]["validate"]}, {d["check"]["refresh"]}'),
    ])
    lines.append("")
if "3" in data:
    lines += [
        f"## 3. {ips} distinct client addresses at the limiter",
        "",
        "One `POST /api/token/validate` from each address of 10.0.0.0/8 in turn "
        "(`X-Forwarded-For`, 127.0.0.1 trusted), default limit (100 per 15 minutes).",
        "",
    ]
    lines += table("3", flood_rows("requests") + [
        ("answers", lambda d: answers(d["flood"])),
        ("Redis keys: rate limiter (`:rl:`) after", lambda d: d["keys_rl.after"]),
        ("a fresh client afterwards: health, validate, refresh", lambda d: f'{d["check"]["health"]}, {d["check"]["validate"]}, {d["check"]["refresh"]}'),
    ])
    lines.append("")
for part in sorted(data):
    for store, d in data[part].items():
        if "flood" in d:
            rss = d["flood"]["rss"]
            step = max(1, -(-len(rss) // 24))  # at most about 24 samples, the last one kept
            rss = rss[::step] + ([rss[-1]] if (len(rss) - 1) % step else [])
            lines += [f"RSS during part {part} on {store} (seconds, KiB): "
                      + ", ".join(f"{t} {kb}" for t, kb in rss), ""]
text = "\n".join(lines)
open(report, "w").write(text + "\n")
print(text)
PY
log "wrote $report"
