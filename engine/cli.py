"""`rdbtop-engine`: serve the engine's API, run its demo workload, manage API keys."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .logs import OneLineFormatter, escape_control

if TYPE_CHECKING:
    from .auth import ApiKeyRecord, AuthService


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
    if args.apikey_command != "create" and not (data / "system.db").exists():
        print(f"error: no engine catalogue in {data} (system.db); give the engine's --data", file=sys.stderr)
        return 2
    data.mkdir(parents=True, exist_ok=True)
    auth = AuthService(data, SystemClock())
    try:
        if args.apikey_command == "create":
            _create_key(auth, args)
        elif args.apikey_command == "list":
            print(_key_table(auth.api_keys()))
        else:
            revoked = auth.revoke_api_key(args.key, by="cli")
            print(f"revoked {revoked.prefix or revoked.key_id} ({revoked.role.label})")
    except EngineError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        auth.close()
    return 0


def _create_key(auth: AuthService, args: argparse.Namespace) -> None:
    """Print the new key, or write it to --output, created readable by its owner only (as a Prometheus
    credentials_file): the file is opened first, so a key is made only when it can be kept."""
    from .auth import key_prefix

    if args.output is None:
        print(auth.create_api_key(args.role, args.description, by="cli"))
        return
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        key = auth.create_api_key(args.role, args.description, by="cli")
        f.write(key + "\n")
    print(f"wrote the {args.role} key {key_prefix(key)}… to {args.output} (mode 0600)")


def _key_table(keys: list[ApiKeyRecord]) -> str:
    def when(t: int | None) -> str:
        return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    rows = [("KEY_ID", "PREFIX", "ROLE", "CREATED", "LAST USED", "DESCRIPTION")]
    rows += [(str(k.key_id), k.prefix or "-", k.role.label, when(k.created_at), when(k.last_used),
              escape_control(k.description or "")) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)


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
    create.add_argument("--output", metavar="FILE", help="write the key to FILE (mode 0600) instead of printing it")
    create.set_defaults(func=_apikey)
    listing = key_sub.add_parser("list", help="list API keys: prefix, role, created, last used (never the keys)")
    listing.add_argument("--data", default=".", help="data directory of the engine (default: .)")
    listing.set_defaults(func=_apikey)
    revoke = key_sub.add_parser("revoke", help="revoke an API key at once, by its prefix or key id")
    revoke.add_argument("key", help="the prefix shown by `apikey list` (rdb_...), or the key id")
    revoke.add_argument("--data", default=".", help="data directory of the engine (default: .)")
    revoke.set_defaults(func=_apikey)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING, handlers=[handler])
    # httpx logs every request's full URL at info: a webhook URL is a credential (engine.redaction)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
