"""Child processes of the local stack: start, wait until ready, stop, and report progress."""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Self, TextIO


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The port is only reserved until this returns, so start the server on it promptly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_private(path: Path, content: str | bytes) -> None:
    """Write ``content`` to ``path`` readable by its owner only (0600 from the start)."""
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(file.fileno(), 0o600)  # the file may have existed with wider permissions
        file.write(data)


class Progress:
    """Prints one ``==> message`` line per step, so a long install or start shows where it is.

    Servers starting side by side (:func:`start_together`) report from their own threads;
    each line is printed whole.
    """

    _lock = threading.Lock()

    def __init__(self, stream: TextIO | None = None, prefix: str = "==> ") -> None:
        self.stream = stream
        self.prefix = prefix

    def step(self, message: str) -> None:
        """Print ``message`` as the start of a new step."""
        stream = self.stream or sys.stderr
        with self._lock:
            print(f"{self.prefix}{message}", file=stream, flush=True)

    __call__ = step


class ProcessError(RuntimeError):
    """A managed process failed to start or to become ready."""


class ManagedProcess:
    """A server process in its own session, logging to a file in a state directory.

    Running it in a new session lets :meth:`stop` signal the whole process group, so
    wrapper scripts (Trino's launcher, for example) never leave orphans behind.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str | os.PathLike[str]],
        *,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = [os.fspath(part) for part in command]
        self.log_file = Path(log_file)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id, or None when not started."""
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Start the process; its stdout and stderr are appended to :attr:`log_file`."""
        if self.running:
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        """True while the process has been started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log file (empty if there is none)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(
        self,
        check: Callable[[], bool],
        timeout: float,
        what: str | None = None,
        interval: float = 0.2,
    ) -> None:
        """Poll ``check`` until it returns True.

        Raises ProcessError if the process exits first or ``timeout`` seconds pass; the
        message names ``what`` is awaited and ends with the tail of the log. ``check`` may
        raise OSError-like exceptions while the server is coming up; they count as "not yet".
        """
        what = what or f"{self.name} to become ready"
        deadline = time.monotonic() + timeout
        last_error = ""
        while True:
            if self.process is None:
                raise ProcessError(f"{self.name} was never started.")
            code = self.process.poll()
            if code is not None:
                raise ProcessError(
                    f"{self.name} exited with status {code} while waiting for {what}; "
                    f"log {self.log_file}:\n{self.log_tail()}"
                )
            try:
                if check():
                    return
            except Exception as error:  # a server still starting refuses or errors
                last_error = f" (last check failed: {type(error).__name__}: {error})"[:500]
            if time.monotonic() >= deadline:
                raise ProcessError(
                    f"Timed out after {timeout:g}s waiting for {what}{last_error}; "
                    f"log {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def stop(self, timeout: float = 15) -> None:
        """Stop the process group: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Safe to call more than once and on a process that already exited.
        """
        process = self.process
        if process is None:
            return
        if process.poll() is not None:
            return
        self._signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(process, signal.SIGKILL)
            process.wait(10)
        else:
            # Children that outlived their leader must not linger.
            self._signal_group(process, signal.SIGKILL)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # The session id equals the leader's pid because of start_new_session=True.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid}>"


#: One readiness wait of :meth:`ManagedServer._launch`: the check, its timeout in seconds,
#: and what is awaited (for the error message).
Wait = tuple[Callable[[], bool], float, str]


class ManagedServer(abc.ABC):
    """A server of the local stack: one :class:`ManagedProcess` on 127.0.0.1.

    Subclasses define :meth:`start`, which prepares what the server needs and hands its
    process to :meth:`_launch`; this class owns the rest: waiting until the server is
    ready (stopping it when it is not), :meth:`stop`, :attr:`running`, and ``with``.
    """

    #: The address the server listens on and clients connect to (loopback only).
    host = "127.0.0.1"
    #: Seconds :meth:`stop` gives the server to exit after SIGTERM, by default.
    stop_timeout: float = 15
    _process: ManagedProcess | None = None

    @abc.abstractmethod
    def start(self) -> Self:
        """Start the server (nothing if it runs) and wait until it is ready; subclasses
        take the seconds to wait as ``timeout``."""

    def _launch(self, process: ManagedProcess, *waits: Wait, interval: float = 0.2) -> None:
        """Start ``process`` as this server's and wait for each of ``waits`` in turn
        (:meth:`ManagedProcess.wait_ready`); if one fails, stop the server and raise."""
        process.start()
        # Published once running: a stop from another thread (`start_together`) in
        # between would find a process not yet started, drop it, and leave it running.
        self._process = process
        try:
            for check, timeout, what in waits:
                process.wait_ready(check, timeout, what, interval=interval)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds
        (:attr:`stop_timeout` by default). Safe to call more than once."""
        # Read once: start_together may stop a server while its starting thread does.
        process = self._process
        if process is not None:
            process.stop(self.stop_timeout if timeout is None else timeout)
            if self._process is process:
                self._process = None

    @property
    def running(self) -> bool:
        """True while the server's process runs."""
        return self._process is not None and self._process.running

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_together(servers: Mapping[str, ManagedServer], progress: Progress | None = None) -> None:
    """Start ``servers`` (``{what: server}``, e.g. ``{"Trino cluster trino": trino}``) side
    by side, each :meth:`~ManagedServer.start` in a thread of its own, and wait until all
    are ready; ``progress`` says when each is.

    Only for servers that need nothing of one another to start. If one fails to start,
    or the wait is interrupted (Ctrl-C), every one of them is stopped, again until no
    thread is left that could still launch one, and then the first failure (whose message
    names its server) or the interruption is raised: none is left running.
    """
    progress = progress or Progress()
    started = time.monotonic()
    failures: list[BaseException] = []
    failed = threading.Event()

    def start(what: str, server: ManagedServer) -> None:
        try:
            server.start()
        except BaseException as error:
            failures.append(error)
            failed.set()
        else:
            progress.step(f"Ready: {what}, after {time.monotonic() - started:.0f} s")

    threads = [
        threading.Thread(target=start, args=item, name=f"start {item[0]}", daemon=True)
        for item in servers.items()
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive() and not failed.is_set():
                thread.join(0.1)
        if failures:
            raise failures[0]
    except BaseException:
        _stop_all(servers.values(), threads)
        raise


def _stop_all(servers: Iterable[ManagedServer], threads: Sequence[threading.Thread]) -> None:
    """Stop ``servers`` until none of ``threads``, which start them, is left: a thread
    still preparing its server launches it after a first stop (which the next one ends)."""
    while True:
        starting = [thread for thread in threads if thread.is_alive()]
        for server in servers:
            server.stop()
        if not starting:
            return
        starting[0].join(0.1)
