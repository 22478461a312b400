"""The ``rtc-server`` command: ``serve`` (the default), ``team add`` and ``agent add``.

Every subcommand takes ``--data-dir`` and ``--store`` like ``serve``, so an operator needs no SQL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rtc_server.config import Config, ensure_secret, load_config


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", dest="data_dir", help="where the embedded store and uploads live")
    parser.add_argument("--store", help="sqlite:///path (default, in the data dir) or redis://host:port/db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtc-server", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the server (the default)")
    _serve_flags(serve)
    team = sub.add_parser("team", help="manage teams").add_subparsers(dest="action", required=True)
    team_add = team.add_parser("add", help="create a team")
    team_add.add_argument("name")
    team_add.add_argument("--routing", choices=("manual", "auto"), default="manual")
    _common(team_add)
    agent = sub.add_parser("agent", help="manage agents").add_subparsers(dest="action", required=True)
    agent_add = agent.add_parser("add", help="create an agent")
    agent_add.add_argument("email")
    agent_add.add_argument("--password", required=True)
    agent_add.add_argument("--name", default="")
    agent_add.add_argument("--team", required=True, action="append", help="team name (repeatable)")
    agent_add.add_argument("--admin", action="store_true")
    agent_add.add_argument("--capacity", type=int, default=5)
    agent_add.add_argument("--locale", default="en")
    _common(agent_add)
    return parser


def _serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--secret", help="signs tokens (default: one kept in the data dir)")
    parser.add_argument("--log-level", dest="log_level")
    parser.add_argument("--demo", action="store_true", default=None, help="create the demo workspace")
    parser.add_argument("--node-id", dest="node_id")
    parser.add_argument("--media-host-address", dest="media_host_addresses", action="append",
                        help="address the server's WebRTC peers offer (repeatable)")
    parser.add_argument("--no-media", dest="media", action="store_false", default=None,
                        help="run without the aiortc media plane")
    _common(parser)


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items()
                                 if k in Config.__dataclass_fields__ and v is not None}
    return load_config(overrides=overrides)


def setup_logging(config: Config) -> None:
    from rtc_server.logs import configure

    configure(config.log_level, json_lines=config.log_json)


def serve(config: Config) -> None:
    from aiohttp import web

    from rtc_server.app import create_app, freeze_startup_heap

    setup_logging(config)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = create_app(config)
    app.on_startup.append(freeze_startup_heap)
    print(f"rtc-server listening on http://{config.host}:{config.port}  (store: {config.store_url})",
          flush=True)
    web.run_app(app, host=config.host, port=config.port, print=None, access_log=None)


async def _admin(args: argparse.Namespace, config: Config) -> int:
    from rtc_server.stores import make_store
    from signaling.domain.auth import hash_password
    from signaling.domain.errors import DomainError
    from signaling.domain.models import Agent, Team, new_id

    store = make_store(config)
    await store.open()
    try:
        if args.command == "team":
            team = await store.create_team(Team(id=new_id("tm"), name=args.name, routing=args.routing))
            print(f"team {team.name} ({team.routing}) created: {team.id}")
            return 0
        team_ids = []
        for name in args.team:
            found = await store.get_team_by_name(name)
            if found is None:
                print(f"error: no team named {name!r} (create it with: rtc-server team add {name})",
                      file=sys.stderr)
                return 2
            team_ids.append(found.id)
        agent = await store.create_agent(Agent(
            id=new_id("ag"), email=args.email.strip(), name=args.name or args.email.split("@")[0],
            password_hash=hash_password(args.password), team_ids=team_ids, is_admin=args.admin,
            capacity=args.capacity, locale=args.locale, status="online"))
        print(f"agent {agent.email} created: {agent.id}")
        return 0
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        if args.command is None:
            args = build_serve_default(argv)
        serve(config_from_args(args))
        return 0
    config = ensure_secret(config_from_args(args))
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_admin(args, config))


def build_serve_default(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rtc-server")
    _serve_flags(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
