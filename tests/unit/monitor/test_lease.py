"""Leases in the monitor store: one holder at a time across threads, processes and
databases; a dead holder's lease expires; a live one is renewed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from loopml.monitor.lease import LeaseBusy
from loopml.monitor.store import MonitorStore

pytestmark = pytest.mark.unit
URL = "sqlite:///monitor.db"


def open_store(root: Path, url: str = URL) -> MonitorStore:
    return MonitorStore.open(url, root)


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    with open_store(tmp_path) as a, open_store(tmp_path) as b:
        with a.lease("run:m"):
            with pytest.raises(LeaseBusy, match="another process is running 'run:m'") as info:
                b.lease("run:m").__enter__()
            assert "held by" in info.value.detail and info.value.fix
        with b.lease("run:m") as lease:
            assert not lease.lost


def test_different_names_do_not_exclude_each_other(tmp_path: Path) -> None:
    with open_store(tmp_path) as store, store.lease("run:a"), store.lease("run:b"):
        pass


def test_a_waiting_holder_gets_it_when_it_is_released(tmp_path: Path) -> None:
    with open_store(tmp_path) as a, open_store(tmp_path) as b:
        first = a.lease("run:m").__enter__()
        started = time.monotonic()
        threading.Timer(0.3, lambda: first.__exit__(None, None, None)).start()
        with b.lease("run:m", wait=10):
            assert time.monotonic() - started >= 0.25


def test_an_expired_lease_is_taken_over(tmp_path: Path) -> None:
    with open_store(tmp_path) as a, open_store(tmp_path) as b:
        stale = a.lease("run:m", ttl=0.2)
        stale.__enter__()
        stale._stop.set()  # a holder that stopped beating (as if killed)
        time.sleep(0.3)
        with b.lease("run:m") as taken:
            assert not taken.lost


def test_a_live_holder_keeps_its_lease_past_its_time_to_live(tmp_path: Path) -> None:
    with open_store(tmp_path) as a, open_store(tmp_path) as b, a.lease("run:m", ttl=0.3):
        time.sleep(0.8)  # the heartbeat renews it every 0.1 s
        with pytest.raises(LeaseBusy):
            b.lease("run:m").__enter__()


def test_a_lease_held_by_another_process_is_refused_then_expires(tmp_path: Path) -> None:
    holder = textwrap.dedent(
        f"""
        import os, sys, pathlib
        from loopml.monitor.store import MonitorStore
        store = MonitorStore.open({URL!r}, pathlib.Path({str(tmp_path)!r}))
        lease = store.lease("run:m", ttl=1.0)
        lease.__enter__()
        print("held", flush=True)
        sys.stdin.readline()
        os._exit(9)  # dies holding it: no release
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with open_store(tmp_path) as store:
            with pytest.raises(LeaseBusy):
                store.lease("run:m").__enter__()
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(10)
            with store.lease("run:m", wait=10):
                pass
    finally:
        proc.kill()


def test_leases_hold_on_postgresql_across_connections(
    tmp_path: Path, postgres_schema_url: str
) -> None:
    with (
        open_store(tmp_path, postgres_schema_url) as a,
        open_store(tmp_path, postgres_schema_url) as b,
    ):
        with a.lease("run:m"), pytest.raises(LeaseBusy):
            b.lease("run:m").__enter__()
        with b.lease("run:m"):
            pass
