"""`rdbtop-engine`: run the engine's demo workload (and, later, serve its API)."""

from __future__ import annotations

import argparse
import logging
import sys


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(data_dir=args.data, sessions=args.sessions, seed=args.seed, seconds=args.seconds)
    print(summary.table())
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
