"""Helpers for tests on the real PostgreSQL server: every test gets a schema of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import psycopg
from psycopg.sql import SQL, Identifier

PG_URL = os.environ.get("CRM_TEST_PG_URL", "postgresql://127.0.0.1:5432/test")


def pg_url_with_schema(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"


def create_schema(prefix: str = "t") -> str:
    name = f"{prefix}_{uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(SQL("CREATE SCHEMA {0}").format(Identifier(name)))
    return name


def drop_schema(name: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {0} CASCADE").format(Identifier(name)))


@contextmanager
def fresh_schema(prefix: str = "t") -> Iterator[str]:
    name = create_schema(prefix)
    try:
        yield name
    finally:
        drop_schema(name)
