#!/usr/bin/env python3
"""Soak clients and Redis fault schedule for scripts/soak.sh (standard library only).

Run by scripts/soak.sh, which starts redis-server and the gateway. This file:
  * runs CLIENTS threads, each with its own session (its own `session_id`
    cookie) doing `GET /` (the visit counter) and `POST /cart/add`, plus a
    `GET /cart` now and then, and checks every answer against what that
    client was acknowledged before;
  * stops (SIGTERM, restart on the same port), freezes (SIGSTOP/SIGCONT) and
    kills-and-restarts Redis at 20 %, 45 % and 70 % of the run;
  * prints a Markdown table.

Checking rules (per client):
  * a 200 for `GET /` must say exactly last acknowledged + 1; when some
    earlier requests failed (503, timeout) their writes may or may not have
    landed, so up to last + 1 + (failed since) is accepted;
  * the same for the cart length (`POST /cart/add`), and `GET /cart` must
    list between acknowledged and acknowledged + unknown items;
  * a 200 below what was acknowledged is an acknowledged write lost, unless
    the client was given a new session id and the answer is a fresh session
    (counter 1 / cart 1) after a Redis restart that happened since the
    client's last success: that is a "session lost with Redis" (no
    persistence), counted separately, and the client carries on from there.
    A fresh session without a restart in between is an unexplained reset
    (reported, counts as lost writes).
Every request that fails (non-200 or no answer) is an error; it counts as
"inside a fault window" when it started or ended between a fault's start and
GRACE seconds after Redis was back, else "outside" (which must be 0).
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

PORT = int(os.environ["GATEWAY_PORT"])
GATEWAY_PID = int(os.environ["GATEWAY_PID"])
REDIS_PORT = int(os.environ["REDIS_PORT"])
REDIS_PIDFILE = os.environ["REDIS_PIDFILE"]
REDIS_DIR = os.environ["REDIS_DIR"]
REDIS_LOG = os.environ.get("REDIS_LOG", os.path.join(REDIS_DIR, "redis.log"))
DURATION = float(os.environ.get("DURATION", "120"))
CLIENTS = int(os.environ.get("CLIENTS", "32"))
FAULT_SECS = float(os.environ.get("FAULT_SECS", "4"))
GRACE = float(os.environ.get("GRACE", "3"))
TIMEOUT = float(os.environ.get("REQUEST_TIMEOUT", "10"))
# NO_CART=1: only GET / (to tell memory that follows the carts' growth from
# memory that follows the number of requests).
NO_CART = os.environ.get("NO_CART", "0") == "1"
# SCRAPE=5: GET /metrics every 5 s, as Prometheus would (not counted in the
# figures). SCRAPE=0 never scrapes: the gateway's histogram samples then pile
# up in the exporter (it runs no upkeep of its own) and RSS grows with every
# request.
SCRAPE = float(os.environ.get("SCRAPE", "5"))
# (fraction of the run, kind)
# FAULTS=stop,freeze,restart (the default) picks which run; FAULTS=none, none.
_KINDS = [k for k in os.environ.get("FAULTS", "stop,freeze,restart").split(",") if k in ("stop", "freeze", "restart")]
SCHEDULE = [(frac, kind) for (frac, kind) in zip((0.20, 0.45, 0.70), _KINDS)]

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


# ---------------------------------------------------------------- Redis faults

def redis_pid():
    with open(REDIS_PIDFILE) as f:
        return int(f.read().strip())


def redis_ping():
    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_start():
    log = open(REDIS_LOG, "ab")
    p = subprocess.Popen(
        ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", REDIS_DIR],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    with open(REDIS_PIDFILE, "w") as f:
        f.write(str(p.pid))
    while not redis_ping():
        time.sleep(0.01)
    return p


def wait_exit(pid, limit=10.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # A zombie (the first Redis is the shell's child) has exited.
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        # Reap it if it is our child.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


faults = []  # dicts: kind, start, back, end (= back + GRACE), first_ok
restarts = []  # times Redis came back empty
faults_lock = threading.Lock()


def run_faults(stop_event):
    for frac, kind in SCHEDULE:
        at = DURATION * frac
        while now() < at:
            if stop_event.wait(0.05):
                return
        pid = redis_pid()
        f = {"kind": kind, "start": now(), "back": None, "first_ok": None}
        with faults_lock:
            faults.append(f)
        if kind == "stop":
            os.kill(pid, signal.SIGTERM)
            wait_exit(pid)
            time.sleep(FAULT_SECS)
            redis_start()
            back = now()
            restarts.append(back)
        elif kind == "freeze":
            os.kill(pid, signal.SIGSTOP)
            time.sleep(FAULT_SECS)
            os.kill(pid, signal.SIGCONT)
            back = now()
        else:  # restart: killed, back at once
            os.kill(pid, signal.SIGKILL)
            wait_exit(pid)
            redis_start()
            back = now()
            restarts.append(back)
        f["back"] = back
        print(f"soak: {kind} at {f['start']:.1f}s, Redis back at {back:.1f}s",
              file=sys.stderr, flush=True)


def in_window(t):
    for f in faults:
        back = f["back"]
        if f["start"] <= t and (back is None or t <= back + GRACE):
            return True
    return False


def phase(t):
    if not faults or t < faults[0]["start"]:
        return "before faults"
    if in_window(t):
        return "during faults"
    last = faults[-1]
    if last["back"] is not None and t > last["back"] + GRACE:
        return "after faults"
    return "between faults"


# ---------------------------------------------------------------- RSS

def run_scrapes(stop_event):
    while not stop_event.wait(SCRAPE):
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=TIMEOUT)
            c.request("GET", "/metrics")
            c.getresponse().read()
            c.close()
        except (OSError, http.client.HTTPException):
            pass


def rss_kib():
    try:
        with open(f"/proc/{GATEWAY_PID}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- clients

class Counter:
    """What one client knows about one of its values."""

    def __init__(self):
        self.acked = 0  # last value acknowledged with a 200
        self.unknown = 0  # failed writes since, which may have landed

    def window(self):
        return self.acked + 1, self.acked + 1 + self.unknown


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.served = 0
        self.ok = 0
        self.err_in = 0
        self.err_out = 0
        self.err_out_samples = []
        self.lost_writes = 0
        self.lost_samples = []
        self.ahead = 0  # answers ahead of what could have been written
        self.ahead_samples = []
        self.landed = 0  # failed requests whose write was there after all
        self.sessions_lost_redis = 0
        self.unexplained_resets = 0
        self.rotations = 0
        self.lat = []  # (start, seconds, ok)
        self.ok_times = []  # times of 200 answers (for the first success after a fault)


stats = Stats()


class Client(threading.Thread):
    def __init__(self, n, stop_event):
        super().__init__(daemon=True)
        self.n = n
        self.stop_event = stop_event
        self.conn = None
        self.cookie = None  # current session id
        self.id_at_ok = None  # session id of the last 200 answer
        self.last_ok = 0.0  # start time of the last 200 answer
        self.visits = Counter()
        self.cart = Counter()
        self.seq = 0

    def request(self, method, path, body=None):
        headers = {}
        if self.cookie:
            headers["Cookie"] = f"session_id={self.cookie}"
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        t = now()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=TIMEOUT)
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
            status = r.status
            for k, v in r.getheaders():
                if k.lower() == "set-cookie" and v.startswith("session_id="):
                    val = v.split(";", 1)[0].split("=", 1)[1]
                    gone = "max-age=0" in v.lower().replace(" ", "")
                    self.cookie = None if (gone or not val) else val
            if r.getheader("connection", "").lower() == "close":
                self.conn.close()
                self.conn = None
        except (OSError, http.client.HTTPException) as e:
            status, data = None, repr(e).encode()
            if self.conn is not None:
                self.conn.close()
            self.conn = None
        end = now()
        ok = status == 200
        with stats.lock:
            stats.served += 1
            stats.lat.append((t, end - t, ok))
            if ok:
                stats.ok += 1
                stats.ok_times.append(end)
            elif in_window(t) or in_window(end):
                stats.err_in += 1
                for f in faults:
                    if f["back"] is not None and f["back"] <= t <= f["back"] + GRACE:
                        f["err_after"] = f.get("err_after", 0) + 1
                        f["last_err"] = max(f.get("last_err", 0.0), end - f["back"])
            else:
                stats.err_out += 1
                if len(stats.err_out_samples) < 10:
                    stats.err_out_samples.append(
                        f"client {self.n} {method} {path} at {t:.2f}s: {status} {data[:200]!r}")
        return t, status, data

    def restart_since_last_ok(self):
        return any(r >= self.last_ok - 0.001 for r in restarts)

    def check(self, kind, counter, value, t, other):
        """A 200 said `value` for `counter`; `other` is the other counter."""
        lo, hi = counter.window()
        new_id = self.cookie != self.id_at_ok
        if new_id and self.id_at_ok is not None:
            fresh = value == 1 and counter.acked >= 1
            if fresh:
                with stats.lock:
                    if self.restart_since_last_ok():
                        stats.sessions_lost_redis += 1
                    else:
                        stats.unexplained_resets += 1
                        stats.lost_writes += counter.acked + other.acked
                        if len(stats.lost_samples) < 10:
                            stats.lost_samples.append(
                                f"client {self.n} at {t:.2f}s: fresh session without a Redis restart "
                                f"({kind} {value}, had {counter.acked})")
                counter.acked, counter.unknown = value, 0
                # The other value starts again from 0 (a write of it may
                # already have landed on the new session).
                other.acked, other.unknown = 0, other.unknown + 1
                self.id_at_ok = self.cookie
                return
            with stats.lock:
                stats.rotations += 1
        if value < lo:
            with stats.lock:
                stats.lost_writes += lo - value
                if len(stats.lost_samples) < 10:
                    stats.lost_samples.append(
                        f"client {self.n} {kind} at {t:.2f}s: answered {value}, acknowledged {counter.acked}"
                        f" (same id: {not new_id})")
        elif value > hi:
            with stats.lock:
                stats.ahead += 1
                if len(stats.ahead_samples) < 10:
                    stats.ahead_samples.append(
                        f"client {self.n} {kind} at {t:.2f}s: answered {value}, acknowledged {counter.acked}"
                        f" + {counter.unknown} unknown")
        elif value > lo:
            with stats.lock:
                stats.landed += value - lo
        counter.acked, counter.unknown = value, 0
        self.id_at_ok = self.cookie

    def ok_seen(self, t):
        self.last_ok = t

    def run(self):
        while not self.stop_event.is_set():
            self.seq += 1
            # GET /: the visit counter.
            t, status, data = self.request("GET", "/")
            if status == 200:
                try:
                    value = int(data.decode().rsplit(" ", 1)[1])
                except (ValueError, IndexError):
                    value = -1
                self.check("visits", self.visits, value, t, self.cart)
                self.ok_seen(t)
            else:
                self.visits.unknown += 1
                self.stop_event.wait(0.02)
            if NO_CART:
                continue
            # POST /cart/add.
            body = urllib.parse.urlencode({"item_id": f"c{self.n}-{self.seq}"})
            t, status, data = self.request("POST", "/cart/add", body)
            if status == 200:
                try:
                    value = int(json.loads(data)["items"])
                except (ValueError, KeyError, TypeError):
                    value = -1
                self.check("cart", self.cart, value, t, self.visits)
                self.ok_seen(t)
            else:
                self.cart.unknown += 1
                self.stop_event.wait(0.02)
            # GET /cart now and then: its length within what may have landed.
            if self.seq % 10 == 0:
                t, status, data = self.request("GET", "/cart")
                if status == 200 and self.cookie == self.id_at_ok:
                    try:
                        n = len(json.loads(data)["items"])
                    except (ValueError, KeyError, TypeError):
                        n = -1
                    c = self.cart
                    if n < c.acked:
                        with stats.lock:
                            stats.lost_writes += c.acked - n
                            if len(stats.lost_samples) < 10:
                                stats.lost_samples.append(
                                    f"client {self.n} GET /cart at {t:.2f}s: {n} items, acknowledged {c.acked}")
                    elif n > c.acked + c.unknown:
                        with stats.lock:
                            stats.ahead += 1
                    else:
                        c.acked, c.unknown = n, 0
                    self.ok_seen(t)


# ---------------------------------------------------------------- report

def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    stop_event = threading.Event()
    rss = {"start": rss_kib()}
    clients = [Client(n, stop_event) for n in range(CLIENTS)]
    for c in clients:
        c.start()
    faulter = threading.Thread(target=run_faults, args=(stop_event,), daemon=True)
    faulter.start()
    if SCRAPE > 0:
        threading.Thread(target=run_scrapes, args=(stop_event,), daemon=True).start()
    next_sample = 0.0
    try:
        while now() < DURATION:
            if "middle" not in rss and now() >= DURATION / 2:
                rss["middle"] = rss_kib()
            if now() >= next_sample:
                print(f"soak: {now():.0f}s gateway RSS {rss_kib()} kB", file=sys.stderr, flush=True)
                next_sample += DURATION / 10
            time.sleep(0.1)
    finally:
        stop_event.set()
    for c in clients:
        c.join(TIMEOUT + 2)
    faulter.join(FAULT_SECS + 15)
    rss["end"] = rss_kib()
    elapsed = now()

    ok_times = sorted(stats.ok_times)
    recov = []
    rows_after = []
    import bisect
    for f in faults:
        if f["back"] is None:
            recov.append((f["kind"], None))
            continue
        i = bisect.bisect_left(ok_times, f["back"])
        first = ok_times[i] if i < len(ok_times) else None
        recov.append((f["kind"], None if first is None else first - f["back"]))
        rows_after.append((f"errors after Redis was back ({f['kind']}): count, last at",
                           f"{f.get('err_after', 0)}, " + (f"{f['last_err'] * 1000:.0f} ms" if 'last_err' in f else "—")))

    phases = ["before faults", "during faults", "between faults", "after faults"]
    lat = {p: [] for p in phases}
    for t, d, ok in stats.lat:
        if ok:
            lat[phase(t)].append(d)

    def ms(x):
        return "n/a" if x != x else f"{x * 1000:.1f} ms"

    def mib(k):
        return "n/a" if k is None else f"{k / 1024:.1f} MiB"

    rows = [
        ("duration / clients", f"{elapsed:.0f} s / {CLIENTS}"),
        ("requests served (200)", f"{stats.ok} of {stats.served} ({stats.served / elapsed:.0f} req/s)"),
        ("errors inside fault windows", str(stats.err_in)),
        ("errors outside fault windows (must be 0)", str(stats.err_out)),
        ("acknowledged writes lost (must be 0)", str(stats.lost_writes)),
        ("answers ahead of every possible write (must be 0)", str(stats.ahead)),
        ("failed answers (503, timeout) whose write had landed", str(stats.landed)),
        ("sessions lost with Redis (restart without persistence)", str(stats.sessions_lost_redis)),
        ("fresh sessions without a Redis restart (must be 0)", str(stats.unexplained_resets)),
        ("session id changed, data kept", str(stats.rotations)),
    ]
    for kind, r in recov:
        rows.append((f"Redis back → first success ({kind})", "none" if r is None else f"{r * 1000:.0f} ms"))
    rows.extend(rows_after)
    rows.append(("gateway RSS start / middle / end",
                 f"{mib(rss.get('start'))} / {mib(rss.get('middle'))} / {mib(rss.get('end'))}"))
    for p in phases:
        xs = lat[p]
        rows.append((f"latency p50 / p99 ({p}, {len(xs)} ok)", f"{ms(pct(xs, 50))} / {ms(pct(xs, 99))}"))

    print()
    print(f"/metrics scraped every {SCRAPE:g} s." if SCRAPE > 0 else "/metrics never scraped (SCRAPE=0).")
    print(f"Faults ({FAULT_SECS:g} s each, window = fault start → Redis back + {GRACE:g} s): "
          + ", ".join(f"{f['kind']} at {f['start']:.1f} s (back {f['back']:.1f} s)"
                      for f in faults if f["back"] is not None))
    print()
    print("| measure | value |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")
    for title, xs in (("errors outside fault windows", stats.err_out_samples),
                      ("lost writes", stats.lost_samples),
                      ("answers ahead", stats.ahead_samples)):
        if xs:
            print(f"\nFirst {title}:", file=sys.stderr)
            for x in xs:
                print("  " + x, file=sys.stderr)
    bad = stats.err_out or stats.lost_writes or stats.ahead or stats.unexplained_resets
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
