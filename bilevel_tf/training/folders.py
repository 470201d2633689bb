"""The rules that keep a run folder honest, without TensorFlow (a runner checks its folder before it loads).

:class:`FolderLock` keeps a second process out of a folder in use: an exclusive ``fcntl.flock`` on the
folder's ``.lock`` file, held for the run's lifetime. The kernel grants it to one open file at a time and
drops it when its process dies, so taking the lock is atomic and a killed run's lock is free at once (no
staleness guess). The file names the holder (host and pid) for the message a refused process prints.

:func:`remove_partial_files` deletes what a kill can leave behind (TensorFlow's ``*_temp`` checkpoint folders,
``.tmp_*`` files of atomic writes); :func:`config_differences` compares two configurations for the messages
of :class:`ResumeMismatchError`.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

#: solver options that change how a step is computed, not what it computes: allowed to differ on resume
EXECUTION_OPTIONS = ("jit_compile", "unroll", "hvp")


class ResumeMismatchError(ValueError):
    """A checkpoint (or run folder) exists for another configuration than the one asked for."""


class CheckpointError(RuntimeError):
    """Checkpoints exist but none of them can be restored."""


class FolderLockedError(RuntimeError):
    """Another live process is using the folder."""


def config_differences(saved: Any, now: Any, prefix: str = "") -> List[str]:
    """Human-readable differences ``key: saved -> now`` between two configurations, ignoring execution
    options and Keras' auto-generated optimizer names (which depend on how many optimizers a process made)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for key in sorted(set(saved) | set(now)):
            if key in EXECUTION_OPTIONS or (key == "name" and prefix.endswith("config")):
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in saved or key not in now:
                out.append(f"{path}: {saved.get(key, '(absent)')!r} -> {now.get(key, '(absent)')!r}")
            else:
                out += config_differences(saved[key], now[key], path)
        return out
    return [] if saved == now else [f"{prefix}: {saved!r} -> {now!r}"]


def remove_partial_files(folder: str, checkpoint_temps: bool = True) -> List[str]:
    """Delete what an interrupted write leaves in ``folder``: ``.tmp_*`` files of atomic writes and (with
    ``checkpoint_temps``, for checkpoint folders only: elsewhere the name may be a user's) TensorFlow's
    ``*_temp`` checkpoint folders. Only call this while holding the folder's lock. Returns the removed paths."""
    removed = []
    patterns = [".tmp_*"] + (["*_temp"] if checkpoint_temps else [])
    for path in [p for pattern in patterns for p in glob.glob(os.path.join(folder, pattern))]:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
        removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------- the record
#: the run folder's record: its configuration, budget, the files and folders the run wrote ("outputs") and the
#: command line that ran it (bilevel_tf.runner.run_folder writes it)
RECORD = "run.json"
#: what a run folder always holds of the run's own (the record, the results, fit's checkpoints and TensorBoard
#: logs): --fresh deletes them even when the record cannot say more (unreadable, or from an earlier version)
OWN_OUTPUTS = (RECORD, "results.json", "checkpoints", "tensorboard")


def read_record(folder: str) -> Optional[Dict[str, Any]]:
    """The folder's run.json ({"config", "budget", "outputs", "command"}), None when there is none; raises
    :class:`ResumeMismatchError` naming the file when it cannot be read."""
    path = os.path.join(folder, RECORD)
    if not os.path.exists(path):
        return None
    try:
        record = json.loads(Path(path).read_text())
        if not isinstance(record["config"], dict):
            raise TypeError(f"config is {type(record['config']).__name__}, expected an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ResumeMismatchError(f"{path} is unreadable ({_one_line(e)}); pass --fresh to start over") from None
    outputs = record.get("outputs")
    record["outputs"] = [o for o in outputs if _plain_name(o)] if isinstance(outputs, list) else []
    return record


def delete_outputs(folder: str) -> List[str]:
    """Delete what the folder's record says its run wrote (plus :data:`OWN_OUTPUTS`), nothing else: a user's
    files, or the input data when --data-dir is --out, stay. Returns the deleted names."""
    try:
        recorded = (read_record(folder) or {}).get("outputs", [])
    except ResumeMismatchError:  # unreadable: only the names every run owns
        recorded = []
    deleted = []
    for name in dict.fromkeys(list(recorded) + list(OWN_OUTPUTS)):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        else:
            continue
        deleted.append(name)
    return deleted


def _plain_name(name: Any) -> bool:
    """An entry directly inside the folder (a record never sends --fresh elsewhere)."""
    return isinstance(name, str) and name not in ("", ".", "..") and os.sep not in name and "/" not in name


def budget_excess(done: Mapping[str, Any], asked: Mapping[str, Any]) -> List[str]:
    """The budget flags (``name: done -> asked``) a finished run exceeds: ``asked`` is smaller than what
    was run. A flag left unset on either side (None, e.g. no --upper-iterations, whose count then follows from
    --epochs) has no size to compare; ``bl.fit`` still refuses to resume past the steps asked for."""
    excess = []
    for key, value in asked.items():
        if done.get(key) is None or value is None:
            continue
        try:
            if float(done[key]) > float(value):
                excess.append(f"{key}: {done[key]} -> {value}")
        except (TypeError, ValueError):
            continue  # not a number: the caller's comparison for equality decides
    return excess


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ---------------------------------------------------------------------------------------------- the lock
#: locks this process holds: lock file path -> [open descriptor, depth] (flock is per open file, so a second
#: acquire of the same folder in one process, e.g. two phases of one run, must reuse the first descriptor)
_HELD: Dict[str, List[int]] = {}
_HELD_GUARD = threading.Lock()


class FolderLock:
    """An exclusive lock on a folder for the lifetime of a run (``flock`` on ``<folder>/.lock``).

    It covers the folder's subfolders too: taking it is refused while another process holds the lock of a
    folder enclosing it (a runner's run folder holds ``bl.fit``'s checkpoints under its one lock), and
    :func:`refuse_if_locked` lets the holder of an enclosing lock check a subfolder. Re-entrant within one
    process; released (and its file removed) by :meth:`release` or by the end of the process, whatever ends it.
    Use as a context manager or call :meth:`acquire` / :meth:`release`.
    """

    def __init__(self, folder: str, name: str = ".lock"):
        self.folder, self.name = folder, name
        self.path = os.path.join(folder, name)
        self._key = os.path.abspath(self.path)
        self._held = False

    def acquire(self) -> "FolderLock":
        os.makedirs(self.folder, exist_ok=True)
        with _HELD_GUARD:
            if self._key in _HELD:
                _HELD[self._key][1] += 1
                self._held = True
                return self
            for _ in range(100):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    owner = _read_owner(fd)
                    os.close(fd)
                    raise FolderLockedError(_in_use(self.folder, owner)) from None
                except BaseException:
                    os.close(fd)
                    raise
                if _is_current(fd, self.path):
                    try:
                        for parent in _enclosing(self.folder):
                            refuse_if_locked(parent, self.name)
                    except BaseException:
                        os.unlink(self.path)
                        os.close(fd)
                        raise
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{socket.gethostname()} {os.getpid()}".encode())
                    _HELD[self._key] = [fd, 1]
                    self._held = True
                    return self
                os.close(fd)  # the previous holder removed this file while we opened it: lock the new one
        raise FolderLockedError(f"could not lock {self.folder}; other processes keep taking it")

    @property
    def held(self) -> bool:
        """This object holds the lock (acquired and not yet released)."""
        return self._held

    def covers(self, path: str) -> bool:
        """``path`` is the locked folder or lies inside it (what one lock keeps a second process out of)."""
        folder = os.path.realpath(self.folder)
        return os.path.commonpath([folder, os.path.realpath(path)]) == folder

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        with _HELD_GUARD:
            entry = _HELD.get(self._key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _HELD[self._key]
            try:  # removed while still locked: a process waiting on this file sees it is gone and retries
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(entry[0])

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def refuse_if_locked(folder: str, name: str = ".lock") -> None:
    """Raise :class:`FolderLockedError` when another process holds ``folder``'s lock (this process's locks,
    and a lock file nobody holds, pass). Probing holds the lock for an instant, never while anyone waits."""
    path = os.path.join(folder, name)
    if os.path.abspath(path) in _HELD:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: nobody holds it
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FolderLockedError(_in_use(folder, _read_owner(fd))) from None
    finally:
        os.close(fd)  # also releases the probe's shared lock


def _enclosing(folder: str) -> List[str]:
    """The folders enclosing ``folder`` (its parent, the parent's parent, ... up to the root)."""
    parents, here = [], os.path.abspath(folder)
    while os.path.dirname(here) != here:
        here = os.path.dirname(here)
        parents.append(here)
    return parents


def _is_current(fd: int, path: str) -> bool:
    """The locked descriptor is still the file at ``path`` (not one a releasing holder has just removed)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _read_owner(fd: int) -> Tuple[str, str]:
    """(host, pid) written by the holder; empty strings while it has not written them yet."""
    try:
        parts = os.pread(fd, 200, 0).decode(errors="replace").split()
    except OSError:
        parts = []
    return (parts[0], parts[1]) if len(parts) == 2 else ("", "")


def _in_use(folder: str, owner: Tuple[str, str]) -> str:
    host, pid = owner
    who = f"process {pid} on {host}" if pid else "another process"
    return f"{folder} is in use by {who}; wait for it to finish or choose another output folder"
