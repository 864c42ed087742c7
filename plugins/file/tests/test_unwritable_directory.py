"""A cache directory this process cannot write (read-only permissions, a read-only mount, a
full disk) still serves what it holds to a new process, and failed opens leak nothing.

How each is made for real here: permissions with ``chmod a-w`` when not root, and with the
immutable attribute (``chattr +i``, which stops root too) when root; a read-only mount and a
full disk with a small tmpfs (mounting needs root, as on CI machines). A method the machine
does not allow is a skip that says why."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import dspy
import pytest

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo_file import FileBackend, FileOptions

QUESTIONS = [f"Which line serves station {i}?" for i in range(5)]


def _config(directory: Path, shards: int = 1) -> dict:
    return {"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(directory), "shards": shards}]}}


def _fill(directory: Path, lm, shards: int = 1) -> list[str]:
    """Answers to QUESTIONS, stored in ``directory`` by a Turbo that is closed again."""
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(_config(directory, shards)):
        answers = [program(question=q).answer for q in QUESTIONS]
    assert lm.engine.calls == len(QUESTIONS)
    return answers


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture
def tmpfs(tmp_path):
    """Factory: ``tmpfs(size)`` mounts a tmpfs of that size and returns its path; unmounted after."""
    mounts = []

    def mount(size: str = "4m") -> Path:
        path = tmp_path / f"mount-{len(mounts)}"
        path.mkdir()
        done = _run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        _run(["umount", "-l", str(path)])


def _read_only_permissions(directory: Path) -> callable:
    """No write permission on the directory and its files; returns the undo."""
    if os.geteuid() != 0:
        for path in (directory, *directory.rglob("*")):
            path.chmod(path.stat().st_mode & ~0o222)
        return lambda: [p.chmod(p.stat().st_mode | 0o200) for p in (directory, *directory.rglob("*"))]
    # root writes through any mode bits; the immutable attribute stops root as well
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to take write permission away")
    done = _run(["chattr", "-R", "+i", str(directory)])
    if done.returncode != 0:
        pytest.skip(f"running as root and chattr +i is refused here: {done.stderr.strip()}")
    return lambda: _run(["chattr", "-R", "-i", str(directory)])


def _new_process_serves(workers, directory: Path, answers: list[str], shards: int = 1) -> None:
    got = workers.run(_config(directory, shards), QUESTIONS)
    assert got["answers"] == answers
    assert got["lm_calls"] == 0, got["stats"]["errors"]
    assert got["stats"]["hits"] == {"file": len(QUESTIONS)}


@pytest.mark.parametrize("shards", [1, 4])
def test_a_directory_without_write_permission_serves_a_new_process(tmp_path, lm, workers, shards):
    directory = tmp_path / "cache"
    answers = _fill(directory, lm, shards)
    undo = _read_only_permissions(directory)
    try:
        _new_process_serves(workers, directory, answers, shards)
    finally:
        undo()


def test_a_read_only_mount_serves_a_new_process_and_writes_resume_when_it_is_writable_again(tmpfs, lm, workers):
    mount = tmpfs()
    directory = mount / "cache"
    answers = _fill(directory, lm)
    assert _run(["mount", "-o", "remount,ro", str(mount)]).returncode == 0
    _new_process_serves(workers, directory, answers)
    backend = FileBackend(FileOptions(directory=str(directory)))
    try:
        assert backend.read_only and len(backend) == len(QUESTIONS)
        with pytest.raises((OSError, sqlite3.Error)):  # the engine makes it an error event
            backend.set("ns:v1:new", Entry.create({"v": 1}))
        assert _run(["mount", "-o", "remount,rw", str(mount)]).returncode == 0
        backend.set("ns:v1:new", Entry.create({"v": 1}))  # the next write opens it writable
        assert not backend.read_only and backend.get("ns:v1:new").value == {"v": 1}
    finally:
        backend.close()


def test_a_full_disk_serves_a_new_process(tmpfs, lm, workers):
    mount = tmpfs("4m")
    directory = mount / "cache"
    answers = _fill(directory, lm)
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError:
        pass  # ENOSPC: the disk is full
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        (mount / "probe").write_bytes(b"\0" * 65536)
    _new_process_serves(workers, directory, answers)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("state", ["read-only, with entries", "read-only, empty"])
def test_failed_opens_leak_no_file_descriptors(tmpfs, shards, state):
    mount = tmpfs()
    directory = mount / "cache"
    if state == "read-only, with entries":
        backend = FileBackend(FileOptions(directory=str(directory), shards=shards))
        backend.set("ns:v1:a", Entry.create({"v": 1}))
        backend.close()
    else:
        directory.mkdir()
    assert _run(["mount", "-o", "remount,ro", str(mount)]).returncode == 0
    backend = FileBackend(FileOptions(directory=str(directory), shards=shards))
    try:
        def attempt():
            for call in (lambda: backend.get("ns:v1:a"), lambda: backend.set("ns:v1:b", Entry.create({"v": 2}))):
                try:
                    call()
                except Exception:
                    pass  # the engine turns these into error events; here only the descriptors matter

        attempt()
        before = _open_fds()
        for _ in range(25):  # each get (when nothing is open) and each set tries to open it again
            attempt()
        assert _open_fds() == before
        if state == "read-only, with entries":
            assert backend.get("ns:v1:a").value == {"v": 1}
    finally:
        backend.close()
