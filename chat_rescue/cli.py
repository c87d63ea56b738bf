"""The `chat-rescue` command line: run, demo, check, stats, report, whatif, migrate, copy-db."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence

from chat_rescue.bot.policy import TIMERS


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `chat-rescue` console script."""
    parser = argparse.ArgumentParser(prog="chat-rescue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve every platform whose token is set")
    demo = commands.add_parser("demo", help="a scripted support day against the sandbox")
    demo.add_argument("--platform", choices=["console", "slack", "telegram"], default="console")
    demo.add_argument("--speed", type=float, default=500.0,
                      help="how much faster than real time the day runs (default 500)")
    commands.add_parser("check", help="validate the configuration and reach each platform")
    stats = commands.add_parser("stats", help="first-response and reply figures per team")
    stats.add_argument("--days", type=float, default=7.0, help="how far back (default 7)")
    stats.add_argument("--team", default=None, help="only this team")
    whatif = commands.add_parser(
        "whatif", help="replay recorded days through the engine with other thresholds")
    whatif.add_argument("--days", type=float, default=30.0, help="how far back (default 30)")
    whatif.add_argument("--team", default=None, help="only this team")
    whatif.add_argument("--check", action="store_true",
                        help="replay today's thresholds too, beside the record (twice the work)")
    whatif.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="processes to replay in (default: the cores, at most 4)")
    for timer in TIMERS:
        whatif.add_argument(f"--{timer.replace('_', '-')}", dest=timer, metavar="DURATION",
                            help=f"{timer} for the replay (e.g. 7m, 45s, off)")
    report = commands.add_parser("report", help="the charts of /rescue report, as a PNG or "
                                 "an HTML page with them embedded")
    report.add_argument("--days", type=int, default=30, help="how far back (default 30)")
    report.add_argument("--out", required=True, help="report.png or report.html")
    report.add_argument("--team", default=None, help="only this team")
    commands.add_parser("migrate", help="bring the database DATABASE_URL names to the newest "
                        "schema (run does it too; this does it on purpose, before a rollout)")
    copy = commands.add_parser("copy-db", help="copy every conversation, deadline, setting and "
                               "queued message from one database into another")
    copy.add_argument("source", help="e.g. sqlite:///chat-rescue.db")
    copy.add_argument("destination", help="e.g. postgresql://user:password@host:5432/db")
    copy.add_argument("--replace", action="store_true",
                      help="delete what the destination already holds (refused otherwise)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(asyncio.run(_dispatch(args)))


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        if args.platform == "telegram":
            from chat_rescue.sandbox.telegram_demo import play_telegram

            await play_telegram(speed=args.speed)
        elif args.platform == "slack":
            from chat_rescue.sandbox.slack_demo import play_slack

            await play_slack(speed=args.speed)
        else:
            from chat_rescue.demo import play

            await play(speed=args.speed)
        return 0
    if args.command == "report":
        from chat_rescue.reports.command import report

        return report(args.days, args.out, args.team)
    if args.command in ("migrate", "copy-db"):
        from chat_rescue import dbops

        if args.command == "migrate":
            return dbops.migrate()
        return dbops.copy_db(args.source, args.destination, replace=args.replace)
    from chat_rescue import ops

    if args.command == "run":
        return await ops.run()
    if args.command == "check":
        return await ops.check()
    if args.command == "whatif":
        return _whatif(args, ops.whatif)
    return ops.stats(days=args.days, team=args.team)


def _whatif(args: argparse.Namespace, whatif: Callable[..., int]) -> int:
    from chat_rescue.bot.durations import DurationError, parse_duration

    changes: dict[str, float | None] = {}
    for timer in TIMERS:
        written = getattr(args, timer)
        if written is None:
            continue
        try:
            changes[timer] = parse_duration(written)
        except DurationError as bad:
            print(f"--{timer.replace('_', '-')}: {bad}", file=sys.stderr)
            return 2
    if not changes:
        print("Name at least one threshold to try, e.g. chat-rescue whatif --idle 7m "
              "--first-response 45s", file=sys.stderr)
        return 2
    if args.days <= 0:
        print("--days must be more than 0", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("--workers must be 1 or more", file=sys.stderr)
        return 2
    return whatif(days=args.days, team=args.team, changes=changes, check=args.check,
                  workers=args.workers)
