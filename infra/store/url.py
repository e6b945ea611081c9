"""`CRM_STORE_URL` parsing: the one place that knows the URL forms (DESIGN.md, "Store")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from infra.errors import ConfigurationError

DEFAULT_STORE_URL = "sqlite:///crm.db"


class BadStoreURL(ConfigurationError):
    code = "bad_store_url"


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A parsed store URL. `target` is a file path (SQLite) or a libpq URL (PostgreSQL)."""

    scheme: str
    target: str
    schema: str = ""
    synchronous: str = (
        "full"  # SQLite: `?synchronous=normal` trades the last commits on power loss for speed
    )

    @property
    def path(self) -> Path:
        return Path(self.target)


def parse_store_url(url: str) -> StoreURL:
    """`sqlite:///rel/path.db`, `sqlite:////abs/path.db`, `sqlite:///:memory:` or a PostgreSQL URL.

    As in SQLAlchemy, what follows `sqlite:///` is the path: relative unless it starts with `/`.
    A PostgreSQL URL may carry `?schema=NAME` to keep the tables in a schema of their own.
    A SQLite URL may carry `?synchronous=normal` (default `full`): with the write-ahead log a
    commit then skips its fsync, so a power loss (never a crashed process) may undo the last
    commits; for a store that can be rebuilt, such as the demo's.
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise BadStoreURL(
            f"CRM_STORE_URL {url!r} has no scheme; use sqlite:///crm.db or postgresql://..."
        )
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/"):
            raise BadStoreURL(
                f"{url!r}: a SQLite URL is sqlite:///relative.db or sqlite:////absolute.db"
            )
        path, _, options = rest[1:].partition("?")
        if not path:
            raise BadStoreURL(f"{url!r} names no database file")
        query = dict(parse_qsl(options, keep_blank_values=True))
        synchronous = query.pop("synchronous", "full").lower()
        if synchronous not in {"full", "normal"} or query:
            raise BadStoreURL(
                f"{url!r}: a SQLite URL takes only ?synchronous=full or ?synchronous=normal"
            )
        return StoreURL("sqlite", path, synchronous=synchronous)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        parts = urlsplit("postgresql://" + rest)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "")
        kept = urlencode([(k, v) for k, v in query if k != "schema"])
        return StoreURL("postgresql", urlunsplit(parts._replace(query=kept)), schema)
    raise BadStoreURL(f"CRM_STORE_URL scheme {scheme!r} is not supported (sqlite or postgresql)")
