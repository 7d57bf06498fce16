"""The inspection log's backends for every test folder (tests/inspect_log, tests/serve): a SQLite file and a real
PostgreSQL server, started here in a temporary data directory on a unix socket (no TCP port), one fresh database
per test. Every test taking `log_url` runs on both."""


from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

START_DEADLINE_S = 30


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_server_user(argv: list[str]) -> list[str]:
    """postgres refuses to run as root: run it as the postgres system user then."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no postgres system user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--", *argv]


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for this test session: yields (socket folder, superuser). Skipped with the reason when
    the binaries are missing or the server does not start in time."""
    pytest.importorskip("psycopg", reason="psycopg (the db extra) is not installed")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql (make system-deps)")
    # Not under pytest's tmp_path: its parents are private to the user running pytest, the server's user must
    # reach the folder; a short path also keeps the socket's path under the 107-byte limit.
    root = Path(tempfile.mkdtemp(prefix="steelinspect-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, user = root / "data", "steelinspect"
    try:
        subprocess.run(_as_server_user([initdb, "-D", str(data), "-A", "trust", "-U", user, "-E", "UTF8",
                                        "--no-sync"]), check=True, capture_output=True, timeout=START_DEADLINE_S)
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w",
                                        "-t", str(START_DEADLINE_S), "-o",
                                        f"-k {root} -c listen_addresses='' -c fsync=off", "start"]),
                       check=True, capture_output=True, timeout=START_DEADLINE_S + 5)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = (root / "server.log").read_text()[-500:] if (root / "server.log").exists() else ""
        stderr = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {exc}; {stderr.decode(errors='replace')[-300:]} {log}")
    try:
        import psycopg

        deadline = time.monotonic() + START_DEADLINE_S
        while True:  # pg_ctl -w waited already; this proves a client gets in
            try:
                psycopg.connect(host=str(root), user=user, dbname="postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    pytest.skip("PostgreSQL started but accepts no connection")
                time.sleep(0.2)
        yield root, user
    finally:
        subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


_databases = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def log_url(request, tmp_path) -> str:
    """A database URL with nothing in it yet: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs' / 'inspections.db'}"
    import psycopg

    socket_dir, user = request.getfixturevalue("postgres_server")
    name = f"t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(host=str(socket_dir), user=user, dbname="postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://{user}@/{name}?host={socket_dir}"
