"""The run folder's lock (bilevel_tf.training.folders.FolderLock): one holder at a time, whatever the timing; a killed
holder's lock is free at once; re-entrant within one process."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from bilevel_tf.training.folders import FolderLock, FolderLockedError
from runner_utils import ROOT

# Each racer takes the lock at the same instants as the others (one round every PERIOD seconds); a holder
# marks itself inside the critical section, looks for another holder's mark, holds a while and leaves.
RACER = textwrap.dedent("""
    import os, sys, time
    from bilevel_tf.training.folders import FolderLock, FolderLockedError
    folder, inside, clashes = sys.argv[1:4]
    start, rounds, period = float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    held = 0
    for r in range(rounds):
        time.sleep(max(0.0, start + r * period - time.time()))
        lock = FolderLock(folder)
        try:
            lock.acquire()
        except FolderLockedError:
            continue
        held += 1
        mark = os.path.join(inside, str(os.getpid()))
        open(mark, "w").close()
        others = [name for name in os.listdir(inside) if name != str(os.getpid())]
        time.sleep(period / 3)
        others += [name for name in os.listdir(inside) if name != str(os.getpid())]
        if others:
            open(os.path.join(clashes, f"{r}-{os.getpid()}"), "w").close()
        os.unlink(mark)
        lock.release()
    print(held)
""")


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def test_racing_processes_never_hold_the_lock_together(tmp_path):
    folder, inside, clashes = (tmp_path / name for name in ("run", "inside", "clashes"))
    for path in (inside, clashes):
        path.mkdir()
    processes, rounds, period = 6, 50, 0.03
    start = time.time() + 1.5  # every racer has started (no TensorFlow: ~0.1 s each) before the first round
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(folder), str(inside), str(clashes), str(start), str(rounds), str(period)],
            env=_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    held = [int(r.communicate(timeout=120)[0]) for r in racers]
    assert all(r.returncode == 0 for r in racers)
    assert sorted(os.listdir(clashes)) == []  # never two holders at once
    assert sum(held) >= rounds // 2, held  # and the lock was taken (one winner in most rounds)
    assert not (folder / ".lock").exists()  # the last holder removed the file


def test_a_live_holder_is_named_and_a_killed_one_frees_the_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bilevel_tf.training.folders import FolderLock\n"
            "FolderLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(60)",
            str(tmp_path),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=f"{tmp_path} is in use by process {holder.pid} on "):
            FolderLock(str(tmp_path)).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with FolderLock(str(tmp_path)):  # no cleanup needed: the kernel dropped the dead process's lock
            assert (tmp_path / ".lock").read_text().split()[1] == str(os.getpid())
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / ".lock").exists()


def test_an_empty_or_foreign_lock_file_is_not_a_holder(tmp_path):
    (tmp_path / ".lock").write_text("")  # e.g. left by a process killed between creating and writing it
    with FolderLock(str(tmp_path)):
        pass
    (tmp_path / ".lock").write_text("otherhost 1")  # a file nobody holds a lock on
    with FolderLock(str(tmp_path)):
        pass


def test_reentrant_within_one_process(tmp_path):
    outer = FolderLock(str(tmp_path)).acquire()
    inner = FolderLock(str(tmp_path)).acquire()  # e.g. two phases of one run
    inner.release()
    assert (tmp_path / ".lock").exists()  # still held by the outer one
    outer.release()
    assert not (tmp_path / ".lock").exists()
    outer.release()  # a second release is harmless
