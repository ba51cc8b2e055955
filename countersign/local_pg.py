"""An embedded PostgreSQL 16 from the ``pgserver`` package, for tests and local use.

What pgserver does (0.1.4, checked by reading its source and running it):
- ``data_dir`` is the PGDATA directory: ``initdb`` runs on first use, ``pg_ctl start`` when
  no server runs there; a running server (found through ``postmaster.pid``) is reused, from
  any process. Startup takes about half a second.
- The server listens on a unix socket only, in ``data_dir`` (or, when that path is too long
  for a socket, in ``$XDG_RUNTIME_DIR/python_PostgresServer/<hash>``): no TCP port. The URL
  is ``postgresql://postgres@/countersign?host=<socket dir>``, which asyncpg accepts. Auth is
  ``trust`` for local connections.
- Lifetime: pgserver registers an ``atexit`` hook per process and keeps the list of handle
  PIDs in ``data_dir/.handle_pids.json``. With ``cleanup_mode="stop"`` (its default) the
  server is stopped when the *last* such process exits normally; a process killed by a
  signal skips ``atexit`` and leaves its PID in that list, after which no later process
  stops the server either. With ``cleanup_mode=None`` the server outlives every process.
  :func:`start_embedded` uses ``None`` by default (like the local Kafka broker: it runs until
  :func:`stop_embedded`), or ``"stop"`` with ``stop_at_exit=True`` as a fallback for tests.
- As root, pgserver creates a system user ``pgserver`` to run the server, chowns
  ``data_dir`` to it and adds ``o+rx`` to *every ancestor directory* of ``data_dir`` (and
  of its own binaries): put the data dir somewhere that is acceptable.
- Who may stop a server that a command started: every process that uses it holds a shared
  ``flock`` on ``.<data dir name>.users.lock`` beside the data dir (:func:`share`) while it
  does; :func:`stop_if_unused` stops the server only under the exclusive lock, and only if no
  client is connected either. A process that starts using the server while another stops it
  waits for the stop, then starts the server again itself. Counting connections alone was not
  enough: a worker that had found the server running but not yet connected lost it to the
  command that had started it.
- Importing pgserver warns (``RuntimeDirWarning``) when ``XDG_RUNTIME_DIR`` is unset; the
  import is deferred to first use and that warning silenced.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import structlog

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import PostmasterInfo

__all__ = [
    "DATABASE",
    "LocalPostgresError",
    "is_running",
    "other_clients",
    "share",
    "start_embedded",
    "stop_embedded",
    "stop_if_unused",
]

DATABASE = "countersign"
_USER = "postgres"
_TAIL = 30

log = structlog.get_logger(__name__)


class LocalPostgresError(Exception):
    """The embedded PostgreSQL could not be started or prepared; read the message."""


def start_embedded(data_dir: Path, *, database: str = DATABASE, stop_at_exit: bool = False) -> str:
    """Start (or reuse) the server of ``data_dir``; return a URL for ``database``.

    The database is created if missing. The server keeps running after this process
    exits unless ``stop_at_exit`` (see the module docstring for pgserver's semantics).
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(exist_ok=True)
    try:
        # The constructor, not get_server(): get_server() caches a handle per process and
        # would hand back a stale one after stop_embedded().
        server = _server_class()(data_dir, cleanup_mode="stop" if stop_at_exit else None)
    except (subprocess.SubprocessError, OSError, AssertionError) as error:
        raise LocalPostgresError(
            f"embedded PostgreSQL in {data_dir} did not start ({error!r}); "
            f"see {data_dir / 'log'}:\n{_log_tail(data_dir)}"
        ) from error
    info = server.get_postmaster_info()
    if info.socket_dir is None:
        raise LocalPostgresError(f"embedded PostgreSQL in {data_dir} has no unix socket")
    socket_dir = str(info.socket_dir)
    _ensure_database(socket_dir, database)
    url = f"postgresql://{_USER}@/{quote(database)}?host={quote(socket_dir, safe='/')}"
    log.debug("postgres_ready", data_dir=str(data_dir), pid=info.pid, database=database)
    return url


def stop_embedded(data_dir: Path, *, timeout_s: float = 30.0) -> bool:
    """Stop the server of ``data_dir`` (fast shutdown); ``True`` if one was running."""
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    pg_ctl = str(_bin_dir() / "pg_ctl")
    # pg_ctl refuses to run as root; run it as the data dir's owner (pgserver's system user).
    owner = data_dir.stat().st_uid if os.geteuid() == 0 else None
    result = subprocess.run(
        [pg_ctl, "-D", str(data_dir), "-w", "-t", str(int(timeout_s)), "-m", "fast", "stop"],
        capture_output=True,
        text=True,
        check=False,
        user=owner,
    )
    if result.returncode != 0:
        if "Is server running?" in result.stderr:  # a stale postmaster.pid
            return False
        raise LocalPostgresError(
            f"pg_ctl stop failed for {data_dir} (exit {result.returncode}); "
            f"stop the server by hand:\n{result.stderr.strip()}"
        )
    log.info("postgres_stopped", data_dir=str(data_dir))
    return True


def share(data_dir: Path) -> int:
    """Take a share in the server of ``data_dir`` for as long as the returned descriptor is
    open (close it with ``os.close``; a process's exit closes it too, even on SIGKILL).
    Waits while another process stops the server, so that this one starts it afresh rather
    than finding it running and losing it a moment later."""
    descriptor = os.open(_users_path(data_dir), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def stop_if_unused(data_dir: Path) -> bool:
    """Stop the server of ``data_dir`` if no process holds a share in it (:func:`share`) and
    no client is connected; ``True`` if it was stopped. Call it after closing your own share."""
    descriptor = os.open(_users_path(data_dir), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.debug("postgres_left_running", data_dir=str(data_dir), why="in use")
            return False
        clients = other_clients(data_dir)
        if clients:
            log.debug("postgres_left_running", data_dir=str(data_dir), clients=clients)
            return False
        return stop_embedded(data_dir)
    finally:
        os.close(descriptor)  # releases the lock: a process waiting in share() goes on


def _users_path(data_dir: Path) -> Path:
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return data_dir.with_name(f".{data_dir.name}.users.lock")


def is_running(data_dir: Path) -> bool:
    """Whether a server runs on ``data_dir`` now (its ``postmaster.pid`` names a live process),
    or is being started by another process (the file is written line by line)."""
    try:
        info = _postmaster(data_dir)
    except _Starting:
        return True
    return info is not None and info.is_running()


def other_clients(data_dir: Path) -> int:
    """Client connections to the server of ``data_dir`` other than this question's own
    (0 when no server runs): a command that started the server stops it only when idle."""
    try:
        info = _postmaster(data_dir)
    except _Starting:
        return 1  # another process is starting it again: it is theirs now
    if info is None or not info.is_running() or info.socket_dir is None:
        return 0
    sql = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    return int(_psql(str(info.socket_dir), sql) or 0)


class _Starting(Exception):
    """``postmaster.pid`` is still being written."""


def _postmaster(data_dir: Path) -> PostmasterInfo | None:
    _import_pgserver()
    from pgserver.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(data_dir.expanduser().resolve())
    except (AssertionError, ValueError, IndexError) as partial:  # pgserver asserts on it
        raise _Starting from partial


def _ensure_database(socket_dir: str, database: str) -> None:
    literal = "'" + database.replace("'", "''") + "'"
    exists_sql = f"SELECT 1 FROM pg_database WHERE datname = {literal}"
    if _psql(socket_dir, exists_sql) == "1":
        return
    quoted = '"' + database.replace('"', '""') + '"'
    try:
        _psql(socket_dir, f"CREATE DATABASE {quoted}")
    except LocalPostgresError:
        if _psql(socket_dir, exists_sql) != "1":  # not a lost creation race
            raise
    log.info("postgres_database_created", database=database)


def _psql(socket_dir: str, sql: str) -> str:
    psql = str(_bin_dir() / "psql")
    command = [psql, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
               "-h", socket_dir, "-U", _USER, "-d", "postgres", "-c", sql]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalPostgresError(f"psql failed running {sql!r}: {result.stderr.strip()}")
    return result.stdout.strip()


def _server_class() -> type[PostgresServer]:
    _import_pgserver()
    from pgserver.postgres_server import PostgresServer

    return PostgresServer


def _bin_dir() -> Path:
    _import_pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _import_pgserver() -> None:
    """Import pgserver on first use, without its warning about an unset XDG_RUNTIME_DIR."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver  # noqa: F401  (imported for its side effect: loading it quietly)


def _log_tail(data_dir: Path) -> str:
    path = data_dir / "log"
    if not path.exists():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-_TAIL:])
