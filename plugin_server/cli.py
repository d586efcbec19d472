"""`plugin-server`: the command line. Parses arguments, builds Settings, dispatches.

Exit codes: 0 success; 1 failure (a service unreachable, a command that failed, a mode with
nothing to run yet); 2 bad usage or a bad setting (one line naming it, no traceback).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar

import trio

from plugin_server import __version__
from plugin_server.app.components import runnable
from plugin_server.app.config import MODES, Settings, describe
from plugin_server.core import aio, logs
from plugin_server.core.errors import ConfigError, PluginServerError, leaves
from plugin_server.ops import dlq, tools

P = ParamSpec("P")
T = TypeVar("T")

NOT_YET = {
    "jobs": "the job queue runner arrives with the jobs issue",
    "scheduler": "scheduled plugin tasks arrive with the jobs issue",
    "api": "the plugin upload API arrives with the API issue",
}


def _settings_help() -> str:
    lines = ["settings (environment variables, with defaults):"]
    for name, default, help_text in describe():
        lines.append(f"  {name} (default: {default})")
        lines.extend("      " + line for line in textwrap.wrap(help_text, 74))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plugin-server",
        description="Ingest PostHog events from Kafka through plugins and persons into ClickHouse.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"plugin-server {__version__}")
    parser.add_argument("--mode", choices=MODES, help="capabilities to run (overrides PLUGIN_SERVER_MODE)")
    parser.add_argument(
        "--migrate", action="store_true", help="apply Postgres and ClickHouse migrations, create topics, exit"
    )
    parser.add_argument(
        "--healthcheck", action="store_true", help="exit 0 if the server on HTTP_PORT is healthy, else 1"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the embedded stack, migrations and every mode in the foreground")
    dev.add_argument(
        "--data-dir", type=Path, default=Path(".data"), help="where the stack keeps its data (default .data)"
    )

    teams = commands.add_parser("teams", help="manage teams")
    teams_commands = teams.add_subparsers(dest="teams_command", metavar="ACTION", required=True)
    create = teams_commands.add_parser("create", help="create a team; prints JSON with its id and api_token")
    create.add_argument("name")

    synth = commands.add_parser("synth", help="produce realistic synthetic capture messages to Kafka")
    synth.add_argument("--token", required=True, help="the team's api token")
    synth.add_argument("--events", type=_non_negative_int, required=True, help="how many events")
    synth.add_argument("--rate", type=_positive_float, help="events per second (default: as fast as possible)")
    synth.add_argument("--persons", type=_positive_int, default=100, help="distinct people (default 100)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: same seed, same messages (default 0)")
    synth.add_argument("--topic", help="topic (default KAFKA_CONSUMPTION_TOPIC)")

    query = commands.add_parser("query", help="run a read-only ClickHouse query; prints JSON lines")
    query.add_argument("sql")

    dead = commands.add_parser("dlq", help="inspect and replay the dead letter queue (KAFKA_DEAD_LETTER_TOPIC)")
    dead_commands = dead.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    listing = dead_commands.add_parser("list", help="print matching dead letters as JSON lines; a summary on stderr")
    replay = dead_commands.add_parser(
        "replay", help="produce matching dead letters' payloads back to KAFKA_CONSUMPTION_TOPIC, each once"
    )
    for action in (listing, replay):
        action.add_argument("--reason", metavar="R", help="only dead letters with this reason (e.g. unknown_token)")
        action.add_argument(
            "--since", metavar="T", type=_since, help="only those at or after T: ISO-8601, or an age like 30m, 2h, 7d"
        )
    listing.add_argument("--limit", metavar="N", type=_positive_int, help="at most N dead letters, in topic order")
    replay.add_argument("--dry-run", action="store_true", help="count what would be replayed; change nothing")

    status = commands.add_parser(
        "status", help="consumer lag per partition, writer backlog, job queue, plugin errors (read only)"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    status.add_argument(
        "--timeout", metavar="S", type=_positive_float, default=10.0, help="give up after S seconds in all (default 10)"
    )

    plugins = commands.add_parser("plugins", help="install and update plugins, read their logs (no HTTP API needed)")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", metavar="ACTION", required=True)
    install = plugin_commands.add_parser(
        "install", help="validate a plugin folder or archive, install it with a config for a team; prints JSON"
    )
    install.add_argument("path", type=Path, help="folder with plugin.json and .py files, or a .zip/.tar.gz of one")
    install.add_argument("--team", type=_positive_int, required=True, help="team id")
    install.add_argument("--config", action="append", metavar="KEY=VALUE", help="a config value (repeatable)")
    install.add_argument("--attachment", action="append", metavar="KEY=PATH", help="an attachment file (repeatable)")
    install.add_argument("--order", type=int, default=0, help="position in the team's chain (default 0)")
    update = plugin_commands.add_parser("update", help="replace an installed plugin's sources and reload; prints JSON")
    update.add_argument("path", type=Path)
    update.add_argument("--plugin", type=_positive_int, required=True, help="plugin id")
    plugin_commands.add_parser("reload", help="ask every running server to reload plugins (publishes reload-plugins)")
    plugin_logs = plugin_commands.add_parser("logs", help="print a plugin config's log entries as JSON lines")
    plugin_logs.add_argument("--config", type=_positive_int, required=True, help="plugin config id")
    plugin_logs.add_argument("--since", metavar="T", type=_since, help="ISO-8601, or an age like 30m, 2h, 7d")
    plugin_logs.add_argument("--limit", metavar="N", type=_positive_int, default=1000, help="at most N (default 1000)")
    return parser


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def _since(text: str) -> dt.datetime:
    try:
        return dlq.parse_since(text, now=dt.datetime.now(dt.UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_async(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    async def main() -> T:
        async with aio.open_loop():
            return await fn(*args, **kwargs)

    return trio.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ, plugin_server_mode=args.mode)
    except ConfigError as exc:
        print(f"plugin-server: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    try:
        return _dispatch(args, settings)
    except (PluginServerError, BaseExceptionGroup) as exc:
        # trio nurseries wrap errors in groups; ours carry the message a user needs, alone.
        found = leaves(exc)
        if not all(isinstance(e, PluginServerError) for e in found):
            raise
        for error in found:
            print(f"plugin-server: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.healthcheck:
        return 0 if tools.healthcheck(settings) else 1
    if args.migrate:
        tools.print_migrate_report(_run_async(tools.migrate, settings))
        return 0
    if args.command == "dev":
        from plugin_server.ops.dev import run_dev

        return run_dev(os.environ, args.data_dir)
    if args.command == "teams":
        print(json.dumps(_run_async(tools.create_team, settings, args.name)))
        return 0
    if args.command == "synth":
        _run_async(
            tools.produce_synth, settings, token=args.token, events=args.events, persons=args.persons,
            seed=args.seed, rate=args.rate, topic=args.topic,
        )  # fmt: skip
        return 0
    if args.command == "query":
        sys.stdout.buffer.write(_run_async(tools.query, settings, args.sql))
        sys.stdout.flush()
        return 0
    if args.command == "dlq" and args.dlq_command == "list":
        lines = _run_async(dlq.list_dead_letters, settings, reason=args.reason, since=args.since, limit=args.limit)
        sys.stdout.writelines(json.dumps(line) + "\n" for line in lines)
        sys.stdout.flush()
        print(json.dumps(dlq.list_summary(lines)), file=sys.stderr)
        return 0
    if args.command == "dlq":
        print(json.dumps(_run_async(dlq.replay, settings, reason=args.reason, since=args.since, dry_run=args.dry_run)))
        return 0
    if args.command == "plugins":
        return _plugins(args, settings)
    if args.command == "status":
        from plugin_server.ops import status

        report = _run_async(status.gather, settings, timeout=args.timeout)
        print(json.dumps(status.as_json(report)) if args.json else status.render(report))
        return 0
    return _run_server(settings)


def _plugins(args: argparse.Namespace, settings: Settings) -> int:
    from plugin_server.ops import plugin_admin

    if args.plugins_command == "install":
        result = _run_async(
            plugin_admin.install, settings, args.path, team_id=args.team, order=args.order,
            config=plugin_admin.parse_assignments(args.config, "--config"),
            attachments=plugin_admin.parse_assignments(args.attachment, "--attachment"),
        )  # fmt: skip
    elif args.plugins_command == "update":
        result = _run_async(plugin_admin.update, settings, args.path, plugin_id=args.plugin)
    elif args.plugins_command == "reload":
        result = {"listeners": _run_async(plugin_admin.reload, settings)}
    else:
        rows = _run_async(plugin_admin.logs, settings, config_id=args.config, since=args.since, limit=args.limit)
        sys.stdout.writelines(json.dumps(row) + "\n" for row in rows)
        sys.stdout.flush()
        return 0
    print(json.dumps(result))
    return 0


def _run_server(settings: Settings) -> int:
    mode = settings.plugin_server_mode
    if not runnable(mode):
        print(f"plugin-server: mode {mode!r} has nothing to run yet: {NOT_YET[mode]}", file=sys.stderr)
        return 1
    from plugin_server.app.runner import run_foreground
    from plugin_server.app.server import Server

    run_foreground(Server(settings))
    return 0
