"""`rdbtop`: the console. With no URL it runs an engine in this process with the demo workload."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from .client import Credentials
from .config import ConfigError, Settings, resolve
from .sources import EmbeddedSource, RemoteSource, Source


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdbtop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Credentials may also come from RDBTOP_URL, RDBTOP_TOKEN, RDBTOP_API_KEY\n"
                                       "and from config.toml profiles (--profile).\n\n"
                                       "exit codes:\n"
                                       "  0  done (--once: the snapshot was printed)\n"
                                       "  1  any other failure\n"
                                       "  2  the server cannot be reached, or bad arguments or configuration\n"
                                       "  3  the server refused the credentials (key, token or password)")
    src = p.add_argument_group("source")
    src.add_argument("--url", help="watch a remote server (ours or RustyDB) instead of an embedded engine")
    auth = src.add_mutually_exclusive_group()
    auth.add_argument("--token", help="bearer token")
    auth.add_argument("--api-key", dest="api_key", help="API key")
    auth.add_argument("--user", help="log in as this user (the password is prompted)")
    src.add_argument("--profile", help="a [profiles.NAME] table of the config file")
    src.add_argument("--data", help="embedded engine: data directory (default: a temporary one)")
    src.add_argument("--no-demo", dest="demo", action="store_const", const=False, default=None,
                     help="embedded engine: run no demo workload")
    src.add_argument("--seed", type=int, help="embedded demo: random seed (default 42)")
    ui = p.add_argument_group("display")
    ui.add_argument("--theme", help="theme name (rdb-dark, rdb-light, rdb-contrast, or one of yours)")
    ui.add_argument("--interval", type=float, help="seconds between refreshes (default 2)")
    ui.add_argument("--read-only", dest="read_only", action="store_const", const=True, default=None,
                    help="no actions: cancel, terminate, acknowledge, maintenance and backup keys are gone")
    ui.add_argument("--watch", action="store_const", const=True, default=None,
                    help="kiosk for wall screens: read-only, large overview, never a prompt")
    ui.add_argument("--rotate", type=float, metavar="SECONDS", help="with --watch: cycle panes every SECONDS")
    out = p.add_argument_group("one shot")
    out.add_argument("--once", action="store_true", help="print one snapshot and exit (see the exit codes below)")
    out.add_argument("--json", action="store_true", help="with --once: JSON instead of tables")
    return p


def make_source(settings: Settings, password: str | None = None) -> Source:
    if settings.embedded:
        return EmbeddedSource(settings.data, settings.demo, settings.seed, settings.sessions, settings.read_only)
    return RemoteSource(settings.url or "", Credentials(token=settings.token, api_key=settings.api_key),
                        settings.user, password)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json and not args.once:
        parser.error("--json goes with --once")
    if args.rotate is not None and args.rotate <= 0:
        parser.error("--rotate needs a positive number of seconds")
    cli = {k: v for k, v in vars(args).items() if k not in ("profile", "once", "json")}
    try:
        settings = resolve(cli, dict(os.environ), args.profile)
    except ConfigError as exc:
        print(f"rdbtop: {exc}", file=sys.stderr)
        return 2
    if settings.rotate is not None and not settings.watch:  # a profile may set either
        parser.error("--rotate goes with --watch")
    password = None
    if settings.user and not settings.embedded:
        try:
            password = getpass.getpass(f"password for {settings.user} at {settings.url}: ")
        except (EOFError, KeyboardInterrupt):
            return 1
    source = make_source(settings, password)
    if args.once:
        from .once import run_once

        return asyncio.run(run_once(source, args.json, settings.embedded))
    from .app import RdbTop

    app = RdbTop(settings, source)
    try:
        app.run()
    finally:
        source.shutdown()
    return app.return_code or 0
