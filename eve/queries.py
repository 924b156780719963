"""Named SQL queries, loaded once from `sql/queries*.sql` (package `eve.sql`).

`queries.sql` holds the queue's statements; a component may keep its own file beside it
(`queries_worker.sql`, `queries_api.sql`). Each file is a list of blocks that start with
`-- name: <query_name>`; everything up to the next such line is the statement. Names are
global across files (a duplicate is an error). Code refers to queries by name (`Q.claim_batch`),
so there is no SQL assembled from strings anywhere in the platform.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split a queries file into {name: sql}; duplicate names are a bug, so they raise."""
    out: dict[str, str] = {}
    matches = list(_NAME.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end() : end].strip()
        name = m.group(1)
        if name in out:
            raise ValueError(f"query {name!r} defined twice")
        if not body:
            raise ValueError(f"query {name!r} is empty")
        out[name] = body
    return out


def read_sql(name: str) -> str:
    """Text of a file shipped in the eve.sql package (works from a wheel and editable installs)."""
    return resources.files("eve.sql").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def load() -> dict[str, str]:
    out: dict[str, str] = {}
    files = sorted(e.name for e in resources.files("eve.sql").iterdir()
                   if e.name.startswith("queries") and e.name.endswith(".sql"))
    for name in files:
        for qname, sql in parse(read_sql(name)).items():
            if qname in out:
                raise ValueError(f"query {qname!r} defined twice (again in {name})")
            out[qname] = sql
    return out


class _Queries:
    """Attribute access to the named queries: `Q.claim_batch`."""

    def __getattr__(self, name: str) -> str:
        try:
            return load()[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r} in sql/queries.sql") from None


Q = _Queries()
