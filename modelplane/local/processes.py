"""Processes the local environment starts: detached, logged to files, remembered by PID, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ManagedProcess:
    name: str
    pid: int
    command: list[str]
    log: str
    port: int | None = None
    started_at: float = field(default_factory=time.time)


@dataclass
class LocalState:
    """What `up` started, so `status` and `down` find it again."""

    processes: list[ManagedProcess] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> LocalState | None:
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls([ManagedProcess(**p) for p in data.get("processes", [])], data.get("details", {}))

    def process(self, name: str) -> ManagedProcess | None:
        return next((p for p in self.processes if p.name == name), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    name: str, command: list[str], log: Path, env: dict[str, str] | None = None, port: int | None = None
) -> ManagedProcess:
    """Start `command` in its own session (so `down` stops its children too), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return ManagedProcess(name=name, pid=process.pid, command=command, log=str(log), port=port)


def is_alive(pid: int) -> bool:
    try:
        waited_pid, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited_pid = 0  # not our child (started by an earlier `up`): ask the kernel instead
    if waited_pid == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.read_text().splitlines())
    except (OSError, IndexError):
        return False


def stop(process: ManagedProcess, timeout_seconds: float = 20.0) -> bool:
    """SIGTERM the process group, then SIGKILL what is left after `timeout_seconds`; True when it had been running."""
    if not is_alive(process.pid):
        return False
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not is_alive(process.pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while is_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def wait_for(process: ManagedProcess, timeout_seconds: float) -> int | None:
    """Wait for a child started by this process to exit; its exit code, or None if it is still running."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            waited_pid, status = os.waitpid(process.pid, os.WNOHANG)
        except ChildProcessError:
            return None if is_alive(process.pid) else 0
        if waited_pid == process.pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.2)
    return None
