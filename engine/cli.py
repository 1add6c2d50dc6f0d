"""`rdbtop-engine`: serve the engine's API, run its demo workload, manage API keys."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(data_dir=args.data, sessions=args.sessions, seed=args.seed, seconds=args.seconds)
    print(summary.table())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .server import serve

    return serve(args.data, args.host, args.port, args.sessions if args.demo else None, args.seed)


def _apikey(args: argparse.Namespace) -> int:
    from .auth import AuthService
    from .clock import SystemClock
    from .errors import EngineError

    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    auth = AuthService(data, SystemClock())
    try:
        key = auth.create_api_key(args.role, args.description)
    except EngineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        auth.close()
    print(key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rdbtop-engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the seeded demo workload and print what it did")
    demo.add_argument("--data", help="data directory (default: a temporary one)")
    demo.add_argument("--sessions", type=int, default=8, help="worker sessions (default 8)")
    demo.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    demo.add_argument("--seconds", type=float, default=30.0, help="how long to run (default 30; Ctrl-C stops early)")
    demo.set_defaults(func=_demo)

    srv = sub.add_parser("serve", help="start the engine and its REST API")
    srv.add_argument("--data", help="data directory (default: a temporary one, removed on exit)")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    srv.add_argument("--demo", action="store_true", help="also run the seeded demo workload")
    srv.add_argument("--sessions", type=int, default=8, help="demo worker sessions (default 8)")
    srv.add_argument("--seed", type=int, default=42, help="demo random seed (default 42)")
    srv.set_defaults(func=_serve)

    key = sub.add_parser("apikey", help="manage API keys")
    key_sub = key.add_subparsers(dest="apikey_command", required=True)
    create = key_sub.add_parser("create", help="create an API key and print it once")
    create.add_argument("--role", required=True, choices=["monitor", "operator", "admin"])
    create.add_argument("--data", default=".", help="data directory of the engine (default: .)")
    create.add_argument("--description", help="what the key is for")
    create.set_defaults(func=_apikey)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
