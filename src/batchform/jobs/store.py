"""Models and jobs, kept with SQLAlchemy: SQLite in BATCHFORM_HOME by default, or any URL.

Rows are plain dicts keyed by column name. Schema changes are versioned migrations
(migrations/versions), applied when a store is opened.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from batchform import config
from batchform.errors import BatchformError
from batchform.jobs import schema

Row = dict[str, Any]
POOL_SIZE = 48


class StoreError(BatchformError):
    """The database could not be reached or refused an operation."""


class AlreadyExists(BatchformError):
    """A row with this name is already stored."""


@dataclass(frozen=True)
class ListQuery:
    """What the SageMaker List* operations can ask for, as column conditions."""

    name_contains: str | None = None
    status: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    modified_after: float | None = None
    modified_before: float | None = None
    sort_by: str = "created_at"
    descending: bool = True
    offset: int = 0
    limit: int = 10


def default_url() -> str:
    return f"sqlite:///{config.home() / 'batchform.db'}"


class Store:
    """One database; safe to share between threads."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = url or default_url()
        self.engine = _create_engine(self.url)
        self._migrate_lock = threading.Lock()
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Bring the schema to the newest version (idempotent)."""
        from alembic import command
        from alembic.config import Config

        folder = resources.files("batchform.jobs") / "migrations"
        alembic_config = Config()
        alembic_config.set_main_option("script_location", str(folder))
        with self._migrate_lock, self._connect() as connection:
            alembic_config.attributes["connection"] = connection
            command.upgrade(alembic_config, "head")

    def schema_version(self) -> str | None:
        with self._connect() as connection:
            row = connection.execute(sa.text("SELECT version_num FROM alembic_version")).first()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self.engine.dispose()

    def insert(self, table: sa.Table, row: Row) -> None:
        try:
            with self._connect() as connection:
                connection.execute(table.insert().values(**row))
        except IntegrityError as exc:
            raise AlreadyExists(f"{table.name} '{row.get('name')}' already exists") from exc

    def get(self, table: sa.Table, name: str) -> Row | None:
        with self._connect() as connection:
            found = connection.execute(table.select().where(table.c.name == name)).first()
        return None if found is None else dict(found._mapping)

    def delete(self, table: sa.Table, name: str) -> bool:
        with self._connect() as connection:
            return connection.execute(table.delete().where(table.c.name == name)).rowcount > 0

    def update(
        self, table: sa.Table, name: str, values: Mapping[str, Any], **expected: Any
    ) -> bool:
        """Set `values` on row `name` if its columns still hold `expected` (compare-and-set)."""
        condition = sa.and_(table.c.name == name, *_equal_to(table, expected))
        with self._connect() as connection:
            return connection.execute(table.update().where(condition).values(**values)).rowcount > 0

    def rows(
        self, table: sa.Table, query: ListQuery, columns: Sequence[str] | None = None
    ) -> list[Row]:
        """One page of rows; `columns` keeps List answers from decoding what they never show."""
        chosen = [table.c[name] for name in columns] if columns else list(table.c)
        statement = sa.select(*chosen).where(*_conditions(table, query))
        order = table.c[query.sort_by]
        ordering = order.desc() if query.descending else order.asc()
        statement = statement.order_by(ordering, table.c.name).offset(query.offset)
        with self._connect() as connection:
            found = connection.execute(statement.limit(query.limit)).all()
        return [dict(row._mapping) for row in found]

    def select(self, table: sa.Table, *conditions: Any) -> list[Row]:
        with self._connect() as connection:
            found = connection.execute(table.select().where(*conditions)).all()
        return [dict(row._mapping) for row in found]

    def count(self, table: sa.Table, *conditions: Any) -> int:
        statement = sa.select(sa.func.count()).select_from(table).where(*conditions)
        with self._connect() as connection:
            return int(connection.execute(statement).scalar_one())

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.engine.url!r}: {exc}") from exc


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return _checked(
            lambda: sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30), url
        )
    # A pool as large as the server's request threads: opening SQLite connections under
    # load costs more than the queries themselves.
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    with engine.connect() as connection:
        # WAL is a property of the database file: set once, readers (Describe, List) then
        # never wait for a job's heartbeat write.
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    return engine


def _checked(create: Any, url: str) -> Engine:
    try:
        engine: Engine = create()
    except (SQLAlchemyError, ImportError) as exc:
        hint = " (pip install 'batchform[postgres]')" if "postgres" in url else ""
        raise StoreError(f"cannot open database {url!r}: {exc}{hint}") from exc
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _equal_to(table: sa.Table, expected: Mapping[str, Any]) -> Sequence[Any]:
    return [
        table.c[column].is_(None) if value is None else table.c[column] == value
        for column, value in expected.items()
    ]


def _conditions(table: sa.Table, query: ListQuery) -> list[Any]:
    conditions: list[Any] = []
    if query.name_contains:
        conditions.append(table.c.name.contains(query.name_contains, autoescape=True))
    if query.status:
        conditions.append(table.c.status == query.status)
    bounds = [
        ("created_at", query.created_after, query.created_before),
        (
            "modified_at" if "modified_at" in table.c else "created_at",
            query.modified_after,
            query.modified_before,
        ),
    ]
    for column, after, before in bounds:
        if after is not None:
            conditions.append(table.c[column] > after)
        if before is not None:
            conditions.append(table.c[column] < before)
    return conditions


MODELS = schema.models
TRANSFORM_JOBS = schema.transform_jobs
TRAINING_JOBS = schema.training_jobs
ENDPOINT_CONFIGS = schema.endpoint_configs
ENDPOINTS = schema.endpoints
