"""A real PostgreSQL server on loopback: a throwaway cluster made by initdb, run by the test.

The server listens on 127.0.0.1 only, on a free port, with its unix socket inside the
cluster folder, so it never meets a system PostgreSQL (or another test run's). Auth is
trust: nothing but this machine can reach it, and the data is deleted on exit.

PostgreSQL refuses to run as root. As root, initdb and postgres run as the unprivileged
`postgres` user (created by Debian's postgresql package) in a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

_START_TIMEOUT_SECONDS = 30.0
_STOP_TIMEOUT_SECONDS = 10.0
_SUPERUSER = "batchform"
_DATABASE = "batchform"
_SERVER_USER_WHEN_ROOT = "postgres"
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")
_INSTALL_HINT = "run `bash scripts/test-deps.sh` to install PostgreSQL"


@dataclass(frozen=True)
class _RunAs:
    """Who runs initdb and postgres: None means this process's own user."""

    uid: int | None = None
    gid: int | None = None


@contextmanager
def running_postgres(folder: Path) -> Iterator[str]:
    """Run a fresh PostgreSQL cluster on loopback; yield a SQLAlchemy URL to a fresh database.

    The server's log is written to `folder` (the caller's, so it outlives a failure); the
    cluster itself lives in a new folder under the system temp dir, because a short path
    keeps the unix socket under its 107-byte limit and, as root, the `postgres` user must
    be able to reach it (pytest's own temp dirs are private to the user running pytest).
    """
    bindir = _find_binaries()
    run_as = _server_user()
    cluster = _make_cluster_folder(run_as)
    log_path = folder / "postgres.log"
    try:
        _initdb(bindir, cluster / "data", run_as, log_path)
        port = _free_port()
        process = _start(bindir, cluster, port, run_as, log_path)
        try:
            _wait_until_accepting(port, process, log_path)
            _create_database(port)
            yield f"postgresql+psycopg://{_SUPERUSER}@127.0.0.1:{port}/{_DATABASE}"
        finally:
            _stop(process)
    finally:
        shutil.rmtree(cluster, ignore_errors=True)


def _find_binaries() -> Path:
    """The folder holding initdb and postgres: PATH first, then Debian's newest version."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(initdb).resolve().parent
    candidates = [p for p in _DEBIAN_BINARIES.glob("*/bin") if _has_server(p)]
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL server binaries (initdb, postgres) not found: {_INSTALL_HINT}"
        )
    return max(candidates, key=_version_key)


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def _version_key(bindir: Path) -> tuple[int, ...]:
    # "16" must beat "9.6": compare version folders as numbers, not as strings.
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))


def _server_user() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    try:
        entry = pwd.getpwnam(_SERVER_USER_WHEN_ROOT)
    except KeyError:
        raise RuntimeError(
            f"running as root, PostgreSQL needs the unprivileged `{_SERVER_USER_WHEN_ROOT}` "
            f"user, which does not exist: {_INSTALL_HINT}"
        ) from None
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _make_cluster_folder(run_as: _RunAs) -> Path:
    # mkdtemp makes it 0700; handing it to the server user keeps it private to that user.
    cluster = Path(tempfile.mkdtemp(prefix="batchform-pg-"))
    if run_as.uid is not None and run_as.gid is not None:
        os.chown(cluster, run_as.uid, run_as.gid)
    return cluster


def _initdb(bindir: Path, data: Path, run_as: _RunAs, log_path: Path) -> None:
    command = [
        str(bindir / "initdb"),
        f"--pgdata={data}",
        f"--username={_SUPERUSER}",
        "--auth=trust",
        "--encoding=UTF8",
        # The C locale exists everywhere; the machine's LANG may name one that is not installed.
        "--no-locale",
        # A throwaway cluster need not survive a power cut; skipping fsync saves seconds.
        "--no-sync",
    ]
    with log_path.open("wb") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, **_as(run_as))
    if result.returncode != 0:
        raise RuntimeError(f"initdb exited with {result.returncode}:\n{_tail(log_path)}")


def _start(
    bindir: Path, cluster: Path, port: int, run_as: _RunAs, log_path: Path
) -> subprocess.Popen[bytes]:
    # postgres itself, not `pg_ctl start`: the test owns the process and can signal it.
    command = [
        str(bindir / "postgres"),
        "-D", str(cluster / "data"),
        "-p", str(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={cluster}",
        # Durability is pointless for test data and costs time on every commit.
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
    ]  # fmt: skip
    # The log goes to a file opened here (as root, too), not a pipe nobody reads.
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **_as(run_as))


def _as(run_as: _RunAs) -> dict[str, Any]:
    """Popen arguments that run the child as the server user, in its folder, with a clean env."""
    # PG* variables from a developer's shell (PGDATA, PGPORT, ...) must not steer the server.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    settings: dict[str, Any] = {"env": env}
    if run_as.uid is not None:
        # Python switches user in the child before exec: no runuser/sudo process in between,
        # so signals sent to the Popen reach postgres itself.
        settings.update(user=run_as.uid, group=run_as.gid, extra_groups=[], cwd="/")
    return settings


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_accepting(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgres exited with {process.returncode}:\n{_tail(log)}")
        if _accepts(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"postgres did not accept connections on port {port}:\n{_tail(log)}")


def _accepts(port: int) -> bool:
    try:
        with _connect(port, "postgres"):
            return True
    except psycopg.OperationalError:
        return False  # not listening yet, or still starting up


def _create_database(port: int) -> None:
    with _connect(port, "postgres") as connection:
        connection.execute(f'CREATE DATABASE "{_DATABASE}"')


def _connect(port: int, database: str) -> psycopg.Connection[Any]:
    # autocommit: CREATE DATABASE cannot run inside a transaction.
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user=_SUPERUSER,
        dbname=database,
        connect_timeout=2,
        autocommit=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGINT is PostgreSQL's "fast" shutdown: abort sessions, then exit cleanly.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGQUIT is "immediate" shutdown: the postmaster still takes its children down.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
