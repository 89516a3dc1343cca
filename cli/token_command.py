"""`pruneboard token create | list | revoke`: API tokens straight in the database.

It talks to the database, not the API, so it works before any token exists (the first admin
token of a production install is made this way, on a host with the service's settings).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from cli.errors import UsageError

SCOPES = ("read", "submit", "admin")
WHERE = ("the database named by PRUNEBOARD_DATABASE_URL (or PRUNEBOARD_DATA_DIR's SQLite "
         "file)")


def register(commands) -> None:
    parser = commands.add_parser("token", help="make, list and revoke API tokens (direct "
                                               "database access)",
                                 description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a token and print it once",
        description=f"Create a token in {WHERE} and print it; only its hash is kept.")
    create.add_argument("--name", required=True,
                        help="who or what uses it; jobs it submits are owned by this name")
    create.add_argument("--scope", required=True, choices=SCOPES,
                        help="read: view; submit: also submit and change own jobs; admin: all")
    create.add_argument("--expires-in-days", type=_whole_number, metavar="DAYS",
                        help="the token stops working after this many days (default: never)")
    create.set_defaults(run=run_create)

    listing = actions.add_parser(
        "list", help="list tokens (never their secrets)",
        description=f"List the tokens in {WHERE}: name, scope, when made, last used, expiry.")
    listing.add_argument("--json", action="store_true", help="one JSON array, for scripts")
    listing.set_defaults(run=run_list)

    revoke = actions.add_parser(
        "revoke", help="revoke a token and end its browser sessions",
        description=f"Delete a token from {WHERE}: it stops working at once, and so do the "
                    f"browsers signed in with it. Jobs it submitted stay.")
    revoke.add_argument("name", metavar="NAME", help="the token's name (see `token list`)")
    revoke.set_defaults(run=run_revoke)


def run_create(args) -> int:
    from backend.auth import TokenError, create_token, token_expiry

    def create(session) -> tuple[str, Any]:
        expires_at = token_expiry(days=args.expires_in_days)
        return create_token(session, name=args.name, scope=args.scope,
                            expires_at=expires_at), expires_at

    try:
        (token, expires_at), where = _in_database("create the token", create)
    except TokenError as error:
        raise UsageError(_flag_message(error)) from None
    print(token)
    until = f", valid until {_moment(expires_at)}" if expires_at else ""
    print(f"token {args.name!r} ({args.scope}{until}) created in {where}; it is shown only "
          f"this once", file=sys.stderr)
    return 0


def run_list(args) -> int:
    from backend.auth import expired, list_tokens

    def rows(session) -> list[dict[str, Any]]:
        return [{"name": r.name, "scope": r.scope, "created_at": _utc(r.created_at),
                 "last_used_at": _utc(r.last_used_at), "expires_at": _utc(r.expires_at),
                 "expired": expired(r)} for r in list_tokens(session)]

    tokens, where = _in_database("list the tokens", rows)
    if args.json:
        print(json.dumps([{key: value.isoformat() if hasattr(value, "isoformat") else value
                           for key, value in t.items()} for t in tokens], indent=2))
        return 0
    if not tokens:
        print(f"no tokens in {where}; make one with `pruneboard token create`", file=sys.stderr)
        return 0
    table = [("NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES")] + [
        (t["name"], t["scope"], _moment(t["created_at"]), _moment(t["last_used_at"], "never"),
         _moment(t["expires_at"], "never") + (" (expired)" if t["expired"] else ""))
        for t in tokens]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
    return 0


def run_revoke(args) -> int:
    from backend.auth import revoke_token

    ended, where = _in_database("revoke the token", lambda s: revoke_token(s, args.name))
    if ended is None:
        raise UsageError(f"no token named {args.name!r} in {where}; `pruneboard token list` "
                         f"shows them")
    print(f"token {args.name!r} revoked in {where}; {ended} browser session"
          f"{'' if ended == 1 else 's'} ended", file=sys.stderr)
    return 0


def _in_database(doing: str, work: Callable[[Any], Any]) -> tuple[Any, str]:
    """``work(session)`` in one committed transaction on the service's database, and where that
    is (password hidden); a database that cannot be reached or is not migrated is a UsageError."""
    from sqlalchemy.exc import SQLAlchemyError

    from backend.db import session_scope
    from backend.settings import Settings

    url = Settings().resolved_database_url
    where = _redacted(url)
    try:
        with session_scope(url) as session:
            return work(session), where
    except SQLAlchemyError as error:
        reason = _first_line(error)
        hint = ("is the database migrated? `pruneboard up` or `alembic upgrade head` does it"
                if "no such table" in reason or "does not exist" in reason else
                "check PRUNEBOARD_DATABASE_URL, or PRUNEBOARD_DATA_DIR for the embedded one")
        raise UsageError(f"cannot {doing} in {where}: {reason} ({hint})") from None


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"must be a whole number of days, got {text!r}"
                                         ) from None


def _flag_message(error) -> str:
    # backend.auth names the API's fields; here they are flags.
    message = str(error)
    if message.startswith(f"{error.field} "):
        return f"--{error.field.replace('_', '-')}{message.removeprefix(error.field)}"
    return message


def _utc(moment):
    from backend.models import as_utc

    return None if moment is None else as_utc(moment)


def _moment(moment, missing: str = "") -> str:
    return missing if moment is None else f"{moment:%Y-%m-%d %H:%M UTC}"


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).splitlines()[0]


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
