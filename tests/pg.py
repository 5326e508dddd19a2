"""A real, throwaway PostgreSQL server for tests.

``postgres_url`` (session scope) yields a ``postgresql://`` URL:

- ``LOOPML_TEST_POSTGRES_URL`` set: that server is used as is (nothing is started);
- otherwise the Debian binaries under ``/usr/lib/postgresql/*/bin`` make a fresh cluster
  in a temporary folder, start it on a free port (its unix socket in the same folder, so
  it never meets a system cluster), create a database, and remove everything at the end.
  ``initdb`` refuses to run as root, so under root the server runs as ``postgres``.

No PostgreSQL: the tests that need it are skipped with the reason, unless
``LOOPML_REQUIRE_POSTGRES=1`` (CI) turns the skip into a failure.

``postgres_schema_url`` (function scope) gives each test its own empty schema in that
database, through the URL's ``options=-csearch_path=...``, and drops it afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import pytest

DATABASE = "loopml_test"
USER = "loopml"
SERVER_USER = "postgres"  # who runs the server when the tests run as root


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("LOOPML_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (LOOPML_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


def _bin_dir() -> Path | None:
    """The newest installed server's bin folder, e.g. /usr/lib/postgresql/15/bin."""
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    return max(found, key=lambda p: int(p.parent.name)) if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Cluster:
    """initdb + pg_ctl start/stop in ``base``, as ``postgres`` when we are root."""

    def __init__(self, bin_dir: Path, base: Path) -> None:
        self.bin_dir = bin_dir
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                _unavailable("running as root and 'runuser' is missing (initdb refuses root)")
            self.prefix = [runuser, "-u", SERVER_USER, "--"]
            shutil.chown(base, user=SERVER_USER, group=None)

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.prefix, str(self.bin_dir / tool), *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.base)
        if proc.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            _unavailable(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        command = [*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data)]
        subprocess.run([*command, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"


def _create_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A ``postgresql://`` URL to an empty database on a real server (see module doc)."""
    given = os.environ.get("LOOPML_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    bin_dir = _bin_dir()
    if bin_dir is None:
        _unavailable("no /usr/lib/postgresql/*/bin/initdb (apt-get install -y postgresql)")
    # A short path: the unix socket path must stay under ~107 bytes.
    base = Path(tempfile.mkdtemp(prefix="loopml-pg-"))
    cluster = _Cluster(bin_dir, base)
    try:
        cluster.start()
        _create_database(cluster.url("postgres"))
        yield cluster.url(DATABASE)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` with its own fresh schema first on the search path."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_url else "?"
    yield f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
