"""The local stack's server base (`datahub.stack.process.ManagedServer`): a server that
never gets ready is stopped, not left behind; waits run in turn; ``with`` starts and
stops; stop is safe to repeat. Its process is a real ``sleep``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datahub.stack.process import ManagedProcess, ManagedServer, ProcessError


class Sleeper(ManagedServer):
    """``sleep 60`` as a server, ready once each of ``checks`` has passed in turn."""

    stop_timeout = 5

    def __init__(self, state_dir: Path, *checks) -> None:
        self.state_dir = state_dir
        self.checks = checks or (lambda: True,)
        self.starts = 0

    def start(self, timeout: float = 0.5) -> Sleeper:
        if self.running:
            return self
        self.starts += 1
        process = ManagedProcess("sleeper", ["sleep", "60"], log_file=self.state_dir / "log")
        self._launch(
            process, *((check, timeout, f"check {i}") for i, check in enumerate(self.checks))
        )
        return self


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_server_that_never_gets_ready_is_stopped_and_the_error_names_the_wait(tmp_path):
    asked: list[str] = []

    def first():
        asked.append("first")
        return True

    def never():
        asked.append("never")
        return False

    server = Sleeper(tmp_path, first, never)
    with pytest.raises(ProcessError, match="Timed out after 0.5s waiting for check 1"):
        server.start()
    assert asked[0] == "first" and set(asked[1:]) == {"never"}
    assert not server.running and server._process is None


def test_the_process_of_a_failed_start_is_gone(tmp_path, monkeypatch):
    started: list[ManagedProcess] = []
    original = ManagedProcess.start

    def recording(self):
        started.append(self)
        original(self)

    monkeypatch.setattr(ManagedProcess, "start", recording)
    with pytest.raises(ProcessError):
        Sleeper(tmp_path, lambda: False).start()
    (process,) = started
    assert gone(process.pid)


def test_with_starts_once_and_stops_and_stop_is_safe_to_repeat(tmp_path):
    server = Sleeper(tmp_path)
    with server as entered:
        assert entered is server and server.running
        pid = server._process.pid
        assert server.start() is server and server.starts == 1
    assert not server.running and gone(pid)
    server.stop()
    server.stop(timeout=1)
    assert not server.running
