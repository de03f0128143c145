"""The store on SQLite and on a real PostgreSQL server: migrations, queries, the lifecycle."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from batchform.jobs import lifecycle
from batchform.jobs.lifecycle import IllegalTransition, JobStatus
from batchform.jobs.store import MODELS, TRANSFORM_JOBS, AlreadyExists, ListQuery, Store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = _fresh_database(request.getfixturevalue("postgres_url"))
    opened = Store(url)
    yield opened
    opened.close()


def _fresh_database(server_url: str) -> str:
    name = f"store_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.engine.make_url(server_url).set(database=name).render_as_string(False))


def job_row(name: str, created: float, status: str = "InProgress") -> dict[str, Any]:
    return {
        "name": name,
        "arn": f"arn:aws:sagemaker:us-east-1:0:transform-job/{name}",
        "status": status,
        "model_name": "m",
        "request": {"TransformJobName": name, "Nested": {"List": [1, 2]}},
        "model": {"image": "/x"},
        "created_at": created,
        "modified_at": created,
        "attempts": 0,
        "resume": False,
    }


def test_migrations_are_versioned_and_idempotent(store: Store) -> None:
    assert store.schema_version() == "0003"
    store.migrate()  # opening an up-to-date store again changes nothing
    assert store.schema_version() == "0003"


def test_rows_round_trip_with_json_and_duplicates_are_refused(store: Store) -> None:
    store.insert(
        MODELS, {"name": "m", "arn": "a", "request": {"X": [1, {"y": None}]}, "created_at": 1.5}
    )
    assert store.get(MODELS, "m") == {
        "name": "m",
        "arn": "a",
        "request": {"X": [1, {"y": None}]},
        "created_at": 1.5,
    }
    with pytest.raises(AlreadyExists):
        store.insert(MODELS, {"name": "m", "arn": "b", "request": {}, "created_at": 2.0})
    assert store.delete(MODELS, "m") and not store.delete(MODELS, "m")


def test_list_queries_filter_sort_and_page(store: Store) -> None:
    for index, name in enumerate(["beta", "alpha", "gamma", "alphabet"]):
        status = "Completed" if index % 2 else "InProgress"
        store.insert(TRANSFORM_JOBS, job_row(name, 100.0 + index, status))
    names = lambda rows: [row["name"] for row in rows]  # noqa: E731
    assert names(store.rows(TRANSFORM_JOBS, ListQuery(name_contains="alpha"))) == [
        "alphabet",
        "alpha",
    ]
    assert names(store.rows(TRANSFORM_JOBS, ListQuery(status="Completed"))) == ["alphabet", "alpha"]
    by_name = ListQuery(sort_by="name", descending=False, limit=2)
    assert names(store.rows(TRANSFORM_JOBS, by_name)) == ["alpha", "alphabet"]
    second_page = ListQuery(sort_by="name", descending=False, limit=2, offset=2)
    assert names(store.rows(TRANSFORM_JOBS, second_page)) == ["beta", "gamma"]
    window = ListQuery(created_after=100.5, created_before=102.5, descending=False)
    assert names(store.rows(TRANSFORM_JOBS, window)) == ["alpha", "gamma"]
    # LIKE wildcards in NameContains are plain characters, as in SageMaker
    assert store.rows(TRANSFORM_JOBS, ListQuery(name_contains="%")) == []


def test_lifecycle_allows_sagemakers_transitions_only(store: Store) -> None:
    store.insert(TRANSFORM_JOBS, job_row("job", time.time()))
    lifecycle.transition(store, TRANSFORM_JOBS, "job", JobStatus.STOPPING)
    lifecycle.transition(store, TRANSFORM_JOBS, "job", JobStatus.STOPPED)
    row = store.get(TRANSFORM_JOBS, "job")
    assert row is not None and row["status"] == "Stopped" and row["ended_at"] is not None
    with pytest.raises(IllegalTransition) as raised:
        lifecycle.transition(store, TRANSFORM_JOBS, "job", JobStatus.COMPLETED)
    assert "Stopped" in str(raised.value) and "Completed" in str(raised.value)


def test_compare_and_set_lets_exactly_one_claimant_win(store: Store) -> None:
    store.insert(TRANSFORM_JOBS, job_row("contested", time.time()))
    winners: list[str] = []

    def claim(owner: str) -> None:
        if store.update(TRANSFORM_JOBS, "contested", {"owner": owner}, owner=None):
            winners.append(owner)

    threads = [threading.Thread(target=claim, args=(f"server-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    row = store.get(TRANSFORM_JOBS, "contested")
    assert row is not None and row["owner"] == winners[0]


def test_server_runs_jobs_with_its_state_in_postgresql(postgres_url: str, tmp_path: Path) -> None:
    from tests.integration.test_server_api import create_model, job_request, make_inputs, wait_done
    from tests.serverproc import running_server

    url = _fresh_database(postgres_url)
    with running_server(tmp_path / "home", "--database-url", url) as server:
        sm = server.client()
        create_model(sm, "pg-model")
        source = make_inputs(tmp_path / "in", objects=2)
        sm.create_transform_job(**job_request("pg-job", "pg-model", source, tmp_path / "out"))
        assert wait_done(sm, "pg-job")["TransformJobStatus"] == "Completed"
    stored = Store(url)
    try:
        row = stored.get(TRANSFORM_JOBS, "pg-job")
        assert row is not None and row["status"] == "Completed"
        assert row["settings"]["BatchStrategy"] == "MultiRecord"
    finally:
        stored.close()
    assert not (tmp_path / "home" / "batchform.db").exists()
