"""What the gateway's authentication costs, and what a flood of the code endpoints reaches.

    .venv/bin/python benchmarks/auth_gateway.py [--seconds 8] [--connections 16]

Starts its own local stack on a free base port (state in .state/bench-auth, stopped at the
end), signs a user in, and runs a second nginx of its own with two servers in front of the
same upstreams:
  * the production template (gateway/default.conf.template), rendered unchanged: every API
    call pays for the `auth_request` sub-request to auth's /internal/verify;
  * a benchmark-only server without `auth_request` that passes a fixed identity to the
    same upstream route (never part of the shared template).
Then, with wrk (Debian's, installed with apt-get if missing), against 127.0.0.1 only:
  1. throughput and latency of GET /api/files/usage with a valid token vs without
     authentication (targets: authenticated >= 0.7x the requests/s, p50 added < 1 ms), and
     the same for GET /api/files listing 20 files, for comparison; throughput rounds and
     1-connection latency rounds alternate between the two servers (best of each counts), and
     the CPU time each process spends per request is printed for both (on a machine shared
     with other work, latencies mostly measure the queue for a core; CPU time much less so);
  2. where the added time goes: auth's HTTP handling, a verify answered from auth's verify
     cache, and the database read a cache miss costs; auth's cache hits and misses;
  3. floods of the code endpoints (login-codes, sessions, deletion-codes): nginx answers 429
     itself; auth's own request counters (its /metrics) show how many reached it, against the
     burst + rate x duration the gateway allows.

`--no-verify-cache` runs the same with auth's verify cache switched off (VERIFY_CACHE_ENTRIES=0:
every verify reads the database, as before the cache), for a before/after comparison on one
machine; `--no-floods` skips part 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from osmcloud_localstack import PortLayout, Stack, StackConfig, wipe_state_dir
from osmcloud_localstack.client import GatewayClient, login
from osmcloud_localstack.gateway import nginx_main_conf, render_template, template_path
from osmcloud_localstack.paths import nginx_binary, repo_root
from osmcloud_localstack.ports import HOST, find_conflicts

ROUTE = "/api/files/usage"  # the cheapest upstream route: the verdict is about this one
LISTING, LISTED_FILES = "/api/files", 20
# what gateway/default.conf.template allows per client address on the code endpoints
RATE_PER_SECOND, BURST = 5, 100
TARGET_RATIO, TARGET_P50_ADDED_MS = 0.7, 1.0

REPO = repo_root()
STATE = REPO / ".state" / "bench-auth"


# ---------------------------------------------------------------- set-up
def free_base_port(start: int = 41080) -> int:
    """A base port whose whole layout, plus the benchmark's two gateway ports, is free."""
    for base in range(start, 60000, 100):
        wanted = {**PortLayout(base).all(), "bench-auth": base + 20, "bench-noauth": base + 21}
        if not find_conflicts(wanted):
            return base
    raise SystemExit("no free base port found between 41080 and 60000")


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    print("[bench] wrk missing: apt-get install -y wrk", flush=True)
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(install, check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


NOAUTH_SERVER = """
# ---- benchmark only: the same upstream route with authentication switched off ----
server {{
    listen {listen};
    location ~ ^/api/files(?:/|$) {{
        proxy_pass http://osmcloud_files;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Request-Id $request_id;
        proxy_set_header X-Gateway-Secret "{secret}";
        proxy_set_header X-User-Id "{user_id}";
        proxy_set_header X-Device-Id "{device_id}";
    }}
}}
"""


def start_bench_nginx(stack: Stack, auth_port: int, noauth_port: int, user_id: str, device_id: str
                      ) -> subprocess.Popen:
    prefix = STATE / "bench-nginx"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    ports = stack.ports
    values = {"AUTH_UPSTREAM": f"{HOST}:{ports.port('auth')}", "FILES_UPSTREAM": f"{HOST}:{ports.port('files')}",
              "TRASH_UPSTREAM": f"{HOST}:{ports.port('trash')}", "BILLING_UPSTREAM": f"{HOST}:{ports.port('billing')}",
              "S3_UPSTREAM": stack.endpoints().s3_endpoint,
              "GATEWAY_LISTEN": f"{HOST}:{auth_port}", "GATEWAY_SECRET": stack.gateway_secret}
    rendered = render_template(template_path(REPO).read_text(), values)
    rendered += NOAUTH_SERVER.format(listen=f"{HOST}:{noauth_port}", secret=stack.gateway_secret,
                                     user_id=user_id, device_id=device_id)
    include = prefix / "bench.conf"
    include.write_text(rendered)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_main_conf(prefix=prefix, logs=STATE / "logs", include=include))
    process = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", f"{prefix}/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if len(find_conflicts({"a": auth_port, "b": noauth_port})) == 2:
            return process
        if process.poll() is not None:
            raise SystemExit(f"the benchmark's nginx exited; see {STATE / 'logs' / 'nginx-error.log'}")
        time.sleep(0.1)
    process.terminate()
    raise SystemExit("the benchmark's nginx did not start listening")


# ---------------------------------------------------------------- CPU time
def cpu_seconds(state: Path, nginx_pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by each process of the stack (its PID files) and
    by the benchmark's own nginx (master and workers): load elsewhere on the machine stretches
    latencies but not these."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = {}
    for pid_file in (state / "run").glob("*.pid"):
        try:
            pids[json.loads(pid_file.read_text())["pid"]] = pid_file.stem
        except (OSError, ValueError, KeyError):
            continue
    found: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        name = pids.get(pid) or ("bench-nginx" if nginx_pid in (pid, ppid) else None)
        if name:
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return found


# ---------------------------------------------------------------- wrk
@dataclass
class Run:
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    seconds: float


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, *, seconds: float, connections: int, headers: dict[str, str] | None = None,
        script: Path | None = None) -> Run:
    argv = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    try:
        return _parse(out, seconds)
    except (AttributeError, ValueError):
        raise SystemExit(f"could not read wrk's output for {url}:\n{out}") from None


def _parse(out: str, seconds: float) -> Run:
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Run(requests=requests, per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
               p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
               p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
               non_2xx=int(non_2xx.group(1)) if non_2xx else 0, seconds=seconds)


def post_script(name: str, body: str) -> Path:
    path = STATE / f"{name}.lua"
    path.write_text(f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n')
    return path


# ---------------------------------------------------------------- auth's counters
async def auth_requests(session: aiohttp.ClientSession, auth_url: str, route: str) -> int:
    async with session.get(f"{auth_url}/metrics") as response:
        text = await response.text()
    pattern = re.compile(r'^http_requests_total\{[^}]*route="' + re.escape(route) + r'"[^}]*\}\s+([\d.e+]+)$', re.M)
    return int(sum(float(v) for v in pattern.findall(text)))


async def auth_metric(session: aiohttp.ClientSession, auth_url: str, name: str) -> float:
    async with session.get(f"{auth_url}/metrics") as response:
        found = re.search(rf"^{name} ([\d.e+]+)$", await response.text(), re.M)
    return float(found.group(1)) if found else 0.0


async def settled(session: aiohttp.ClientSession, auth_url: str, route: str, quiet: float = 1.0,
                  limit: float = 30.0) -> None:
    """Waits until auth's counter for `route` has not moved for `quiet` seconds."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + limit
    while time.monotonic() < deadline:
        now = await auth_requests(session, auth_url, route)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- where the added time goes
async def breakdown(session: aiohttp.ClientSession, endpoints, token: str, calls: int = 300) -> None:
    """Sequential calls straight to the services (no nginx): what one verification costs, split
    into HTTP handling (auth's /healthz) and the database read (a find by _id, as verify does)."""
    from pymongo import AsyncMongoClient

    from osmcloud_auth.domain import digest

    secret = {"X-Gateway-Secret": endpoints.gateway_secret}
    probes = {
        "auth /healthz (HTTP only)": (f"{endpoints.service_urls['auth']}/healthz", {}),
        "auth /internal/verify": (f"{endpoints.service_urls['auth']}/internal/verify",
                                  {**secret, "Authorization": f"Bearer {token}"}),
        f"files {ROUTE}": (None, None),
    }
    timings: dict[str, list[float]] = {name: [] for name in probes}
    timings["database read by _id"] = []
    mongo = AsyncMongoClient(endpoints.mongo_url)
    devices = mongo[f"{endpoints.db_prefix}auth"]["devices"]
    user_id = (await devices.find_one({"_id": digest(token)}))["user_id"]
    probes[f"files {ROUTE}"] = (f"{endpoints.service_urls['files']}{ROUTE}", {**secret, "X-User-Id": user_id})
    try:
        for _ in range(calls):  # interleaved, so load from elsewhere hits all alike
            for name, (url, headers) in probes.items():
                started = time.perf_counter()
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, (name, response.status)
                timings[name].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await devices.find_one({"_id": digest(token)}, {"user_id": 1, "device_id": 1, "last_seen_at": 1})
            timings["database read by _id"].append((time.perf_counter() - started) * 1000)
    finally:
        await mongo.close()
    print(f"\nwhere the time goes, {calls} sequential calls each, straight to the services:")
    for name, values in timings.items():
        values.sort()
        print(f"  {name:28} p50 {values[len(values) // 2]:6.3f} ms   p90 {values[len(values) * 9 // 10]:6.3f} ms")
    auth_url = endpoints.service_urls["auth"]
    counters = {name: await auth_metric(session, auth_url, f"verify_cache_{name}") for name in ("hits_total",
                                                                                              "misses_total")}
    print(f"  auth's verify cache over the whole run: {counters['hits_total']:.0f} hits, "
          f"{counters['misses_total']:.0f} misses (a miss is one database read)")


# ---------------------------------------------------------------- the benchmark
async def wait_for_quota(me: GatewayClient) -> None:
    for _ in range(300):
        if (await me.call("GET", "/api/files/usage")).body["quota_bytes"] > 0:
            return
        await asyncio.sleep(0.1)
    raise SystemExit("files never learnt the Start plan's quota")


async def measure(stack: Stack, args: argparse.Namespace) -> int:
    endpoints = stack.endpoints()
    auth_port, noauth_port = stack.config.base_port + 20, stack.config.base_port + 21
    async with aiohttp.ClientSession() as session:
        gateway = GatewayClient(session, endpoints.gateway_url)
        me, who = await login(gateway, endpoints.smtp_sink_url, device={"name": "bench", "platform": "bench"})
        assert (await me.call("POST", "/api/billing/start")).status == 201
        await wait_for_quota(me)
        for n in range(LISTED_FILES):
            reply = await me.call("PUT", f"/api/files/OSM_NOTES/bench-{n:02}.osn", data=b"note %d" % n)
            assert reply.status == 201, reply
        nginx = start_bench_nginx(stack, auth_port, noauth_port, who["user_id"], who["device_id"])
        args.nginx_pid = nginx.pid
        try:
            return await _measure(session, endpoints, me.token, auth_port, noauth_port, args)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)


async def compare(route: str, what: str, token: str, auth_port: int, noauth_port: int,
                  args: argparse.Namespace, session: aiohttp.ClientSession) -> tuple[float, float]:
    """Throughput and latency of one route with and without authentication; (ratio, p50 added)."""
    with_auth = f"http://{HOST}:{auth_port}{route}"
    without_auth = f"http://{HOST}:{noauth_port}{route}"
    bearer = {"Authorization": f"Bearer {token}"}
    for url, headers in ((with_auth, bearer), (without_auth, {})):  # both answer alike
        async with session.get(url, headers=headers) as response:
            assert response.status == 200, (url, response.status, await response.text())
    print(f"\nGET {route} ({what})", flush=True)
    wrk(without_auth, seconds=2, connections=args.connections)  # warm-up
    wrk(with_auth, seconds=2, connections=args.connections, headers=bearer)
    runs: dict[str, list[Run]] = {"off": [], "on": []}
    cpu: dict[str, dict[str, float]] = {"off": {}, "on": {}}

    def timed(kind: str, url: str, headers: dict | None) -> Run:
        before = cpu_seconds(STATE, args.nginx_pid)
        run = wrk(url, seconds=args.seconds, connections=args.connections, headers=headers)
        for name, seconds in cpu_seconds(STATE, args.nginx_pid).items():
            cpu[kind][name] = cpu[kind].get(name, 0.0) + seconds - before.get(name, 0.0)
        return run
    for _ in range(args.rounds):  # alternate, so drift hits both alike
        runs["off"].append(timed("off", without_auth, None))
        runs["on"].append(timed("on", with_auth, bearer))
    latencies: dict[str, list[Run]] = {"off": [], "on": []}
    for _ in range(args.latency_rounds):  # alternate; the quietest round of each counts
        latencies["off"].append(wrk(without_auth, seconds=args.latency_seconds, connections=1))
        latencies["on"].append(wrk(with_auth, seconds=args.latency_seconds, connections=1, headers=bearer))
    latency = {kind: min(runs_, key=lambda r: r.p50_ms) for kind, runs_ in latencies.items()}

    def best(kind: str) -> Run:
        return max(runs[kind], key=lambda r: r.per_second)
    off, on = best("off"), best("on")
    assert off.non_2xx == 0 and on.non_2xx == 0, (off, on)
    ratio = on.per_second / off.per_second
    added = latency["on"].p50_ms - latency["off"].p50_ms
    print(f"  throughput, {args.connections} connections, best of {args.rounds} x {args.seconds:g} s:")
    print(f"    auth off : {off.per_second:8.0f} req/s   p50 {off.p50_ms:6.2f} ms   p99 {off.p99_ms:6.2f} ms")
    print(f"    auth on  : {on.per_second:8.0f} req/s   p50 {on.p50_ms:6.2f} ms   p99 {on.p99_ms:6.2f} ms")
    print(f"    ratio on/off = {ratio:.2f}  (target >= {TARGET_RATIO})  all rounds off "
          f"{[round(r.per_second) for r in runs['off']]} on {[round(r.per_second) for r in runs['on']]}")
    per_request = {kind: {name: seconds * 1000 / max(1, sum(r.requests for r in runs[kind]))
                          for name, seconds in cpu[kind].items()} for kind in cpu}
    shown = [n for n in ("bench-nginx", "auth", "files", "ferretdb") if n in per_request["on"]]
    print("  CPU time per request (ms, all throughput rounds, each process's background work included;"
          " far less sensitive to load elsewhere than latencies):")
    for kind in ("off", "on"):
        print(f"    auth {kind:3}: total {sum(per_request[kind][n] for n in shown):.3f}  " + "  ".join(
            f"{n} {per_request[kind].get(n, 0.0):.3f}" for n in shown))
    cpu_ratio = (sum(per_request["off"][n] for n in shown) / sum(per_request["on"][n] for n in shown))
    print(f"    CPU-bound throughput ratio on/off = {cpu_ratio:.2f}  (what the ratio tends to when CPU is the limit)")
    print(f"  latency, 1 connection, best p50 of {args.latency_rounds} alternating rounds "
          f"x {args.latency_seconds:g} s:")
    for kind in ("off", "on"):
        run = latency[kind]
        print(f"    auth {kind:3}: p50 {run.p50_ms:6.3f} ms   p99 {run.p99_ms:6.3f} ms   ({run.per_second:.0f} req/s)"
              f"   all rounds' p50 {[round(r.p50_ms, 2) for r in latencies[kind]]}")
    print(f"    p50 added by authentication = {added:.3f} ms  (target < {TARGET_P50_ADDED_MS} ms)")
    return ratio, added


async def _measure(session, endpoints, token, auth_port, noauth_port, args) -> int:
    print("[bench] wrk -t1 on loopback; 2 cores shared by wrk, nginx, the services and FerretDB", flush=True)
    ratio, added = await compare(ROUTE, "files: one document read; the verdict's route", token, auth_port,
                                 noauth_port, args, session)
    await compare(LISTING, f"files: listing {LISTED_FILES} files; for comparison", token, auth_port, noauth_port,
                  args, session)
    await breakdown(session, endpoints, token)
    verdicts = {f"authenticated throughput {ratio:.2f}x (>= {TARGET_RATIO})": ratio >= TARGET_RATIO,
                f"p50 added {added:.3f} ms (< {TARGET_P50_ADDED_MS} ms)": added < TARGET_P50_ADDED_MS}
    if args.no_floods:
        print("\nverdict: " + "; ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in verdicts.items()))
        return 0

    # ---- floods: nginx answers 429 itself; how many reached auth?
    auth_url = endpoints.service_urls["auth"]
    floods = [
        ("POST /api/auth/login-codes", "/api/auth/login-codes",
         post_script("login-codes", '{"email": "flood@example.test"}'), {}),
        ("POST /api/auth/sessions", "/api/auth/sessions",
         post_script("sessions", '{"email": "flood@example.test", "code": "000000"}'), {}),
        ("POST /api/auth/account/deletion-codes", "/api/auth/account/deletion-codes",
         post_script("deletion-codes", "{}"), {"Authorization": f"Bearer {token}"}),
    ]
    print(f"\nfloods, {args.flood_connections} connections x {args.flood_seconds:g} s each "
          f"(gateway: {RATE_PER_SECOND} r/s per address, burst {BURST}):")
    flood_ok = True
    for label, route, script, headers in floods:
        before_route = await auth_requests(session, auth_url, route)
        before_verify = await auth_requests(session, auth_url, "/internal/verify")
        started = time.monotonic()
        run = wrk(f"http://{HOST}:{auth_port}{route}", seconds=args.flood_seconds,
                  connections=args.flood_connections, headers=headers, script=script)
        elapsed = time.monotonic() - started
        await settled(session, auth_url, route)  # requests let through may still be in auth's hands
        reached = await auth_requests(session, auth_url, route) - before_route
        verified = await auth_requests(session, auth_url, "/internal/verify") - before_verify
        allowed = BURST + int(RATE_PER_SECOND * elapsed) + 1
        flood_ok &= reached <= allowed
        print(f"  {label:40} sent {run.requests:6}  reached auth {reached:4}  (allowed <= {allowed})  "
              f"token checks {verified:4}  answered 429 by nginx {max(0, run.requests - reached):6}")
        await asyncio.sleep(BURST / RATE_PER_SECOND + 1)  # let the bucket refill before the next flood

    verdicts["floods held at the gateway (reached auth <= burst + rate x time)"] = flood_ok
    print("\nverdict: " + "; ".join(f"{what}: {'met' if ok else 'MISSED'}" for what, ok in verdicts.items()))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8, help="each throughput run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput rounds per setting")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--latency-seconds", type=int, default=4)
    parser.add_argument("--latency-rounds", type=int, default=3, help="alternating 1-connection rounds per setting")
    parser.add_argument("--flood-seconds", type=int, default=5)
    parser.add_argument("--flood-connections", type=int, default=150,
                        help="more than the burst, so a slow auth cannot keep the flood below it")
    parser.add_argument("--no-verify-cache", action="store_true",
                        help="auth without its verify cache (every verify reads the database)")
    parser.add_argument("--no-floods", action="store_true", help="skip the code-endpoint floods")
    args = parser.parse_args()
    if args.no_verify_cache:
        os.environ["VERIFY_CACHE_ENTRIES"] = "0"  # the stack's processes inherit the environment
    ensure_wrk()
    base = free_base_port()
    print(f"[bench] starting a local stack on base port {base} (state {STATE}); auth's verify cache "
          f"{'OFF' if args.no_verify_cache else 'on'}", flush=True)
    wipe_state_dir(STATE)
    stack = Stack(StackConfig(state_dir=STATE, base_port=base, log_level="warning"),
                  log=lambda line: print(f"[stack] {line}", flush=True))
    try:
        stack.up()
        return asyncio.run(measure(stack, args))
    finally:
        stack.down()


if __name__ == "__main__":
    sys.exit(main())
