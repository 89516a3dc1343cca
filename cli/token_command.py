"""`pruneboard token create`: make an API token straight in the database.

It talks to the database, not the API, so it works before any token exists (the first admin
token of a production install is made this way, on a host with the service's settings).
"""

from __future__ import annotations

import sys

from cli.errors import UsageError

SCOPES = ("read", "submit", "admin")


def register(commands) -> None:
    parser = commands.add_parser("token", help="make API tokens (direct database access)",
                                 description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a token and print it once",
        description="Create a token in the database named by PRUNEBOARD_DATABASE_URL (or "
                    "PRUNEBOARD_DATA_DIR's SQLite file) and print it; only its hash is kept.")
    create.add_argument("--name", required=True,
                        help="who or what uses it; jobs it submits are owned by this name")
    create.add_argument("--scope", required=True, choices=SCOPES,
                        help="read: view; submit: also submit and change own jobs; admin: all")
    create.set_defaults(run=run_create)


def run_create(args) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from backend.auth import TokenError, create_token
    from backend.db import session_scope
    from backend.settings import Settings

    settings = Settings()
    url = settings.resolved_database_url
    try:
        with session_scope(url) as session:
            token = create_token(session, name=args.name, scope=args.scope)
    except TokenError as error:
        raise UsageError(str(error)) from None
    except SQLAlchemyError as error:
        reason = _first_line(error)
        hint = ("is the database migrated? `pruneboard up` or `alembic upgrade head` does it"
                if "no such table" in reason or "does not exist" in reason else
                "check PRUNEBOARD_DATABASE_URL, or PRUNEBOARD_DATA_DIR for the embedded one")
        raise UsageError(f"cannot create the token in {_redacted(url)}: {reason} ({hint})"
                         ) from None
    print(token)
    print(f"token {args.name!r} ({args.scope}) created in {_redacted(url)}; it is shown only "
          f"this once", file=sys.stderr)
    return 0


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).splitlines()[0]


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
