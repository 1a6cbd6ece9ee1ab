"""osmcloud-stack: start, stop and inspect the local osmcloud stack.

    osmcloud-stack up     [--state-dir D] [--base-port B] [--test-clock] [--infra-only] [--sandbox-store]
                          [--admin-api] [external infra options]
    osmcloud-stack down   [--state-dir D]
    osmcloud-stack status [--state-dir D] [--json]   # per process: state, restarts, last exit
    osmcloud-stack env    [--state-dir D]     # prints OSMCLOUD_* exports so tests can use this running stack

Installs nothing: run ``bash infra/bootstrap.sh`` first (``make up`` does).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import paths
from .stack import ExternalInfra, Stack, StackConfig, StackError
from .supervisor import BackoffPolicy


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def _default_state_dir() -> Path:
    try:
        return paths.repo_root() / ".state" / "up"
    except paths.ToolMissing:
        return Path(".state/up").absolute()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="osmcloud-stack", description="Run the osmcloud system as local processes.")
    sub = parser.add_subparsers(dest="command", required=True)

    def state_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, default=None,
                       help="data, logs and PID files (default: REPO/.state/up)")

    up = sub.add_parser("up", help="start everything and wait until it is ready")
    state_arg(up)
    up.add_argument("--base-port", type=int, default=None, help="gateway port; the others follow (default 8080)")
    up.add_argument("--test-clock", action="store_true", help="TEST_CLOCK=true for the services (tests only)")
    up.add_argument("--infra-only", action="store_true", help="do not start the four services")
    up.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                    help="a proxy in front of the gateway whose X-Forwarded-For is believed (repeatable; default none)")
    up.add_argument("--admin-api", action="store_true",
                    help="turn the admin API on with a random operator token "
                         "(printed by `env` as OSMCLOUD_OPERATOR_TOKEN)")
    up.add_argument("--sandbox-store", action="store_true",
                    help="billing accepts receipts signed with the stack's random sandbox key (dev and tests only)")
    up.add_argument("--log-level", default="info")
    up.add_argument("--no-supervise", action="store_true",
                    help="no supervisor: nothing restarts a process that dies")
    up.add_argument("--restart-backoff", type=float, nargs=2, metavar=("FIRST", "CAP"), default=None,
                    help="seconds before the first restart of a process that died, and the longest wait "
                         "(default 0.25 30)")
    up.add_argument("--kafka-bootstrap", default=None,
                    help="use this Kafka instead of starting one (with --mongo-url, --s3-endpoint)")
    up.add_argument("--mongo-url", default=None, help="use this MongoDB-protocol server instead of FerretDB")
    up.add_argument("--s3-endpoint", default=None, help="use this S3 server (host:port) instead of versitygw")
    up.add_argument("--s3-access-key", default=None)
    up.add_argument("--s3-secret-key", default=None)
    up.add_argument("--prometheus", action="store_true",
                    help="also run Prometheus on base port + 16, scraping the stack with deploy/prometheus/alerts.yml")

    down = sub.add_parser("down", help="stop every process recorded in the state directory")
    state_arg(down)
    status = sub.add_parser("status", help="show what runs, whether it is ready, its restarts and last exit")
    state_arg(status)
    status.add_argument("--json", action="store_true",
                        help="one JSON object: {\"state_dir\", \"gateway\", \"processes\": [...]}")
    env = sub.add_parser("env", help="print shell exports of the running stack's endpoints (OSMCLOUD_*)")
    state_arg(env)
    return parser


def _external(args: argparse.Namespace) -> ExternalInfra | None:
    given = [args.kafka_bootstrap, args.mongo_url, args.s3_endpoint]
    if any(given):
        if not all(given):
            raise StackError("--kafka-bootstrap, --mongo-url and --s3-endpoint go together")
        ext = ExternalInfra(kafka_bootstrap=args.kafka_bootstrap, mongo_url=args.mongo_url,
                            s3_endpoint=args.s3_endpoint)
        if args.s3_access_key:
            ext.s3_access_key = args.s3_access_key
        if args.s3_secret_key:
            ext.s3_secret_key = args.s3_secret_key
        return ext
    return ExternalInfra.from_env()


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = (args.state_dir or _default_state_dir()).absolute()
    previous = Stack.from_state_dir(state_dir)
    base_port = args.base_port
    if base_port is None:
        base_port = previous.config.base_port if (state_dir / "stack.json").exists() else 8080
    config = StackConfig(
        state_dir=state_dir,
        base_port=base_port,
        test_clock=args.test_clock,
        services=not args.infra_only,
        external=_external(args),
        log_level=args.log_level,
        sandbox_store=args.sandbox_store,
        admin_api=args.admin_api,
        trusted_proxies=tuple(args.trusted_proxy),
        prometheus=args.prometheus,
        supervise=not args.no_supervise,
        restart_backoff=BackoffPolicy(*args.restart_backoff) if args.restart_backoff else BackoffPolicy(),
    )
    stack = Stack(config, log=_say)
    running = [n for n in stack.process_names() if stack.procs.running(n)]
    if running and len(running) == len(stack.process_names()):
        _say(f"already running (state {state_dir}); gateway: {stack.endpoints().gateway_url}")
        return 0
    _say(f"starting the osmcloud stack: base port {base_port}, state {state_dir}")
    endpoints = stack.up()
    print(flush=True)
    print(f"osmcloud is up: {endpoints.gateway_url}", flush=True)
    if config.prometheus:
        print(f"  prometheus: http://127.0.0.1:{stack.ports.port('prometheus')} (alerts: /api/v1/alerts)", flush=True)
    print(f"  logs:  {state_dir / 'logs'}", flush=True)
    print(f"  stop:  osmcloud-stack down --state-dir {state_dir}", flush=True)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = (args.state_dir or _default_state_dir()).absolute()
    if not state_dir.exists():
        _say(f"nothing to stop ({state_dir} does not exist)")
        return 0
    stack = Stack.from_state_dir(state_dir, log=_say)
    results = stack.down()
    if not results:
        _say(f"nothing was running from {state_dir}")
    else:
        _say("stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = (args.state_dir or _default_state_dir()).absolute()
    stack = Stack.from_state_dir(state_dir)
    if not (state_dir / "stack.json").exists():
        print(f"no stack in {state_dir}")
        return 1
    rows = stack.status()
    if args.json:
        print(json.dumps({"state_dir": str(state_dir), "gateway": stack.endpoints().gateway_url, "processes": rows},
                         indent=1))
    else:
        print(f"state: {state_dir}   gateway: {stack.endpoints().gateway_url}")
        print(f"  {'process':<10} {'pid':<8} {'ports':<12} {'restarts':>8}  {'last exit':<20} state")
        for r in rows:
            ports = ",".join(str(p) for p in r["ports"]) or "-"
            pid, last_exit = str(r["pid"] or "-"), r["last_exit"] or "-"
            print(f"  {r['name']:<10} {pid:<8} {ports:<12} {r['restarts']:>8}  {last_exit:<20} {r['state']}")
    return 0 if all(r["state"] == "ready" for r in rows) else 3


def cmd_env(args: argparse.Namespace) -> int:
    state_dir = (args.state_dir or _default_state_dir()).absolute()
    if not (state_dir / "stack.json").exists():
        print(f"no stack in {state_dir}", file=sys.stderr)
        return 1
    for key, value in Stack.from_state_dir(state_dir).endpoints().as_env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env}
    try:
        code = handlers[args.command](args)
    except StackError as exc:
        print(f"[stack] ERROR: {exc}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        print("[stack] interrupted", file=sys.stderr, flush=True)
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
