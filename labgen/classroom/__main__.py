"""`python3 -m labgen.classroom ACTION ...`: the classroom's tasks as root, for the sudo rerun of room.as_root."""

from __future__ import annotations

import argparse

from ..cli import call


def main() -> None:
    p = argparse.ArgumentParser(prog="labgen.classroom")
    sub = p.add_subparsers(dest="action", required=True)
    for action in ("up", "down", "status", "reset", "exercise", "cards", "serve"):
        a = sub.add_parser(action)
        a.add_argument("--config", required=True)
        if action == "up":
            a.add_argument("--seats", type=int, required=True)
            a.add_argument("--demo", action="store_true")
            a.add_argument("--engine")
            a.add_argument("--target")
        if action == "serve":
            a.add_argument("--port", type=int)
            a.add_argument("--tls", action="store_true")
        if action == "status":
            a.add_argument("--json", action="store_true")
        if action == "exercise":
            a.add_argument("name")
        if action in ("reset", "exercise"):
            a.add_argument("seat", nargs="?")
            a.add_argument("--all", action="store_true")
    args = p.parse_args()
    action = f"labgen.classroom.actions:{args.action}"
    if args.action == "up":
        call(action, args.config, args.seats, demo=args.demo, engine=args.engine, member=args.target)
    elif args.action == "status":
        call(action, args.config, as_json=args.json)
    elif args.action == "reset":
        call(action, args.config, args.seat, all_=args.all)
    elif args.action == "serve":
        call(action, args.config, args.port, https=args.tls)
    elif args.action == "exercise":
        call(action, args.config, args.name, args.seat, all_=args.all)
    else:
        call(action, args.config)


if __name__ == "__main__":
    main()
