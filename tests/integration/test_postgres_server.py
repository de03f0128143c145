"""The `postgres_url` fixture: a real PostgreSQL server, on loopback, that SQLAlchemy can use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy.engine import Engine


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = sqlalchemy.create_engine(postgres_url)
    yield engine
    engine.dispose()


def test_url_points_at_loopback(postgres_url: str) -> None:
    url = sqlalchemy.engine.make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"


def test_round_trip_through_a_table(engine: Engine) -> None:
    table = sqlalchemy.Table(
        "fixture_check",
        sqlalchemy.MetaData(),
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("name", sqlalchemy.Text, nullable=False),
    )
    table.create(engine)
    try:
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.select(table).order_by(table.c.id)).all()
        assert [tuple(row) for row in rows] == [(1, "a"), (2, "b")]
    finally:
        table.drop(engine)


def test_server_listens_on_loopback_only(engine: Engine) -> None:
    with engine.connect() as connection:
        # The address this connection reached the server on, and all it listens on.
        server_address = connection.execute(sqlalchemy.text("SELECT host(inet_server_addr())"))
        listen = connection.execute(sqlalchemy.text("SHOW listen_addresses"))
        assert server_address.scalar_one() == "127.0.0.1"
        assert listen.scalar_one() == "127.0.0.1"


def test_is_postgresql(engine: Engine) -> None:
    assert engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        version = connection.execute(sqlalchemy.text("SELECT version()")).scalar_one()
    assert version.startswith("PostgreSQL ")
