"""Is the database ready to serve: reachable, and its schema at the newest revision?

`/readyz` asks this (`/healthz` only says the process answers). A load balancer or an
orchestrator keeps traffic away from a worker whose database is down or not yet migrated
(`telbill init` not run after an upgrade), instead of letting every request fail.
"""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from telbill.adapters.db.engine import MIGRATIONS_DIR


@cache
def head_revisions() -> frozenset[str]:
    """The newest revision(s) of the migrations shipped with this code."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def not_ready_reason(engine: Engine) -> str | None:
    """Why the database cannot serve (unreachable, not migrated, behind), or None when ready.

    The reason names no URL or password: it is shown to whoever asks `/readyz`.
    """
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return "the database has no schema: run `telbill init`"
            versions = sa.table("alembic_version", sa.column("version_num"))
            current = frozenset(
                str(v) for v in conn.execute(sa.select(versions.c.version_num)).scalars()
            )
    except (SQLAlchemyError, OSError) as exc:
        return f"the database is not reachable ({type(exc).__name__})"
    heads = head_revisions()
    if current != heads:
        return (
            f"the schema is at revision {', '.join(sorted(current)) or 'none'}, the code needs "
            f"{', '.join(sorted(heads))}: run `telbill init`"
        )
    return None


__all__ = ["head_revisions", "not_ready_reason"]
