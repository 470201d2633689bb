"""Run a paper table's rows through the experiment runners, then print it next to the paper's.

    python -m bilevel_tf.paper.reproduce TABLE --profile cpu|paper --seeds N --out DIR [--dry-run] [-- RUNNER FLAGS]

TABLE is one of table2 (data denoising), table3 (few-shot), supp4 (synthetic timing), supp5 (poisoning),
small_scale (supp. D.1.1). Every row of the table runs once per seed 0..N-1 as its own subprocess, one after the
other, in DIR/<table>/<row>/seed<k> (its log in log.txt there); a finished run (results.json, and the folder's
run.json naming the same command) is skipped and an interrupted one resumes from its checkpoints, so rerunning
the same command continues where it stopped. At the end the aggregator (python -m bilevel_tf.paper.tables DIR)
prints every table filled by runs under DIR and writes DIR/tables.md, DIR/tables.csv and the PNGs.

--profile paper uses the paper's data and settings (a GPU job; the estimated run time, from seconds per
iteration measured on a 2-core CPU, is printed first); --profile cpu a scaled setting that finishes on a
2-core CPU (the bundled digits for table2, small_scale and supp5, rotated digits for table3; supp4 runs at
the paper's sizes). Flags after "--" are appended to every runner command (e.g. -- --epochs 2).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from typing import Collection, List, Optional, Sequence, Tuple

from . import plans
from .plans import Row
from ..runner.run_folder import REPO_ROOT, command_line
from ..training.folders import RECORD, ResumeMismatchError, read_record

LOG = "log.txt"


class ReproduceError(RuntimeError):
    """A runner failed or a run folder belongs to another command: reported as one line, exit status 2."""


def run_dir(out: str, table: str, row: Row, seed: int) -> str:
    return os.path.join(out, table, row.name, f"seed{seed}")


def command(row: Row, seed: int, folder: str, extra: Sequence[str] = ()) -> List[str]:
    """The runner command line of one (row, seed): script, row flags, extra flags, --seed, --out."""
    return [
        sys.executable,
        os.path.join(REPO_ROOT, row.runner),
        *row.args,
        *extra,
        "--seed",
        str(seed),
        "--out",
        folder,
    ]


def status(folder: str, argv: Sequence[str]) -> str:
    """'done' (the folder's run.json names this command and its results.json is finished), 'resume' (run.json
    names this command, or no command: the runner's own check of its configuration decides), 'new', or 'other'
    (run.json names another command or cannot be read, or a results.json no run.json accounts for).

    The runner writes run.json (:class:`bilevel_tf.runner.run_folder.Run`) with its command line as
    :func:`~bilevel_tf.runner.run_folder.command_line` puts it, which is how ``argv[1:]`` is compared here."""
    try:
        record = read_record(folder)
    except ResumeMismatchError:
        return "other"
    if record is None:
        return "other" if os.path.exists(os.path.join(folder, "results.json")) else "new"
    recorded = record.get("command")
    if recorded is not None and recorded != command_line(argv[1], argv[2:]):
        return "other"
    return "done" if recorded is not None and _finished(os.path.join(folder, "results.json")) else "resume"


def _finished(path: str) -> bool:
    """A results.json the runner finished writing: its metrics and configuration (a damaged one is redone)."""
    try:
        with open(path) as f:
            result = json.load(f)
        return isinstance(result["metrics"], dict) and isinstance(result["config"], dict)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _hours(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def estimate(rows: Sequence[Row], seeds: int, done: Collection[Tuple[str, int]] = ()) -> str:
    """The expected wall-clock of the rows on a 2-core CPU, from the measurements in :mod:`.plans`; ``done``:
    the (row name, seed) pairs already finished, whose time is subtracted from what is left."""
    total = seeds * sum(r.seconds for r in rows if r.seconds is not None)
    where = (
        "seconds per upper iteration at the paper's sizes x iterations: bilevel phase only"
        if any(r.per_iteration for r in rows)
        else "measured whole runs"
    )
    text = f"estimated time on a 2-core CPU ({where}): {_hours(total)} for {seeds} seed(s)"
    if done:
        left = total - sum(
            r.seconds for r in rows for seed in range(seeds) if (r.name, seed) in done and r.seconds is not None
        )
        text += f" ({len(done)} of {seeds * len(rows)} run(s) done, {_hours(left)} left)"
    missing = [r.name for r in rows if r.seconds is None]
    if missing:
        text += f"; not measured: {', '.join(missing)}"
    if total > 86400:
        text += (
            ". A GPU job: the paper's TITAN RTX took about 0.6 s per MNIST denoising iteration at T = 50 and "
            "2.4 s per Omniglot 20-way 5-shot iteration at T = 20 with Penalty (supp. fig. 5, read off the plot)"
        )
    return text


def _runner_error(folder: str) -> str:
    """The runner's one-line error (run_main prints 'error: ...'), else the end of its log."""
    try:
        with open(os.path.join(folder, LOG)) as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("error:")]
    if errors:
        return errors[-1]
    return "last lines of the log:\n    " + "\n    ".join(lines[-8:])


def _summary(folder: str) -> str:
    """The runner's one-line summary without the results path."""
    try:
        with open(os.path.join(folder, LOG)) as f:
            lines = [line.strip() for line in f if line.startswith("[")]
    except OSError:
        return ""
    return lines[-1].split(" -> ")[0] if lines else ""


def run_one(argv: List[str], folder: str) -> None:
    """Run one runner command with its output in <folder>/log.txt; raises ReproduceError on failure."""
    os.makedirs(folder, exist_ok=True)
    env = dict(os.environ)  # the runners import the same bilevel_tf as this process
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(os.path.join(folder, LOG), "a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        code = _Runner(argv, log, env).wait()
    if code != 0:
        raise ReproduceError(f"{folder}: the runner exited with status {code}: {_runner_error(folder)}")


class _Runner:
    """A runner subprocess that an interrupt stops the way Ctrl-C stops a runner on its own: it saves its
    checkpoint and releases its folder, and the interrupt is raised here once it has exited.

    The runner gets its own session, so the terminal's Ctrl-C (SIGINT to the foreground process group) reaches
    only this process (else it would get every Ctrl-C twice); each SIGINT, SIGTERM or SIGHUP received here is
    passed on to it as one SIGINT, so a second Ctrl-C stops it at once, as it would a runner on its own."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, argv: List[str], log, env: dict):
        self.argv, self.log, self.env = argv, log, env
        self.child: Optional[subprocess.Popen] = None
        self.received = self.forwarded = 0

    def _on_signal(self, signum, frame) -> None:
        self.received += 1
        self._forward()

    def _forward(self) -> None:
        while self.child is not None and self.forwarded < self.received and self.child.poll() is None:
            self.forwarded += 1
            self.child.send_signal(signal.SIGINT)

    def wait(self) -> int:
        """Run the command to its end; its exit status, or KeyboardInterrupt if a signal came meanwhile."""
        # (a signal this process ignores, e.g. SIGHUP under nohup, stays ignored here and in the runner)
        previous = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS if signal.getsignal(s) != signal.SIG_IGN}
        try:
            self.child = subprocess.Popen(
                self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)  # (the handler forwards too)
            try:
                self._forward()  # a signal that came while it started
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            code = self.child.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self.received:
            raise KeyboardInterrupt
        return code


def run_rows(
    table: str, rows: Sequence[Row], seeds: int, out: str, extra: Sequence[str], *, keep_going: bool = False, log=print
) -> List[str]:
    """Run every (row, seed) not done yet; returns the failures (raises on the first one unless keep_going)."""
    jobs = [(row, seed) for row in rows for seed in range(seeds)]
    failures = []
    for i, (row, seed) in enumerate(jobs, 1):
        folder = run_dir(out, table, row, seed)
        argv = command(row, seed, folder, extra)
        state = status(folder, argv)
        prefix = f"[{i}/{len(jobs)}] {table}/{row.name} seed {seed}"
        if state == "done":
            log(f"{prefix}: done ({_summary(folder)})")
            continue
        if state == "other":
            raise ReproduceError(
                f"{folder} holds a run of another command (see the command in its {RECORD}); choose another "
                "--out, or delete that folder to run it again"
            )
        log(f"{prefix}: {'resuming' if state == 'resume' else 'running'} ...", flush=True)
        start = time.perf_counter()
        try:
            run_one(argv, folder)
        except ReproduceError as e:
            if not keep_going:
                raise
            failures.append(str(e))
            log(f"{prefix}: FAILED: {e}")
            continue
        log(f"{prefix}: {time.perf_counter() - start:.0f} s  {_summary(folder)}")
    return failures


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bilevel_tf.paper.reproduce",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "table", metavar="TABLE", choices=plans.TABLE_NAMES, help="which table: " + ", ".join(plans.TABLE_NAMES)
    )
    p.add_argument(
        "--profile",
        choices=plans.PROFILES,
        default="cpu",
        help="cpu: scaled rows that finish on a 2-core CPU (default); paper: the paper's data and "
        "settings (the GPU job)",
    )
    p.add_argument(
        "--seeds", type=int, default=5, help="runs per row, seeds 0..N-1 (default 5, the paper's number of trials)"
    )
    p.add_argument(
        "--out",
        default=os.path.join("runs", "reproduce"),
        help="output folder (default runs/reproduce): runs go to OUT/<table>/<row>/seed<k>, the tables "
        "to OUT/tables.md, OUT/tables.csv and OUT/<table>.png",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="solvers to run (default: the table's columns: "
        + "; ".join(f"{t} {' '.join(m)}" for t, m in plans.DEFAULT_METHODS.items())
        + ")",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="run only the rows whose name matches one of these shell patterns, e.g. 'digits_noise25_*' "
        "(--dry-run lists the names)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="pass --smoke to every runner (tiny sizes: checks the pipeline, numbers meaningless)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="pass --tensorboard to every runner (TensorBoard logs in each run's folder)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and the commands; run nothing")
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failed run, continue with the next ones (default: stop at the first failure)",
    )
    return p


def split_argv(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(reproduce's own flags, the runner flags after '--')."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def select(rows: Sequence[Row], names: Optional[Sequence[str]]) -> List[Row]:
    if not names:
        return list(rows)
    return [r for r in rows if any(fnmatch.fnmatchcase(r.name, n) for n in names)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    own, runner_flags = split_argv(sys.argv[1:] if argv is None else argv)
    p = build_parser()
    args = p.parse_args(own)
    if args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    try:
        rows = select(plans.plan(args.table, args.profile, args.methods), args.rows)
    except ValueError as e:
        p.error(str(e))
    if not rows:
        p.error(f"--rows {' '.join(args.rows)} matches no row of {args.table}")
    extra = (["--smoke"] if args.smoke else []) + (["--tensorboard"] if args.tensorboard else []) + runner_flags
    try:
        return _run(args, rows, extra)
    except KeyboardInterrupt:  # a running runner saved its checkpoint first (see _Runner)
        print("interrupted: rerun the same command to continue", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, rows: Sequence[Row], extra: Sequence[str]) -> int:
    print(
        f"{args.table}, profile {args.profile}: {len(rows)} row(s) x {args.seeds} seed(s) -> "
        f"{os.path.join(args.out, args.table)}"
    )
    done = {
        (row.name, seed)
        for row in rows
        for seed in range(args.seeds)
        if status(
            run_dir(args.out, args.table, row, seed),
            command(row, seed, run_dir(args.out, args.table, row, seed), extra),
        )
        == "done"
    }
    print(estimate(rows, args.seeds, done), flush=True)
    if args.dry_run:
        for row in rows:
            for seed in range(args.seeds):
                argv = command(row, seed, run_dir(args.out, args.table, row, seed), extra)
                print(" ".join(["python", os.path.relpath(argv[1], REPO_ROOT), *argv[2:]]))
        return 0
    try:
        failures = run_rows(
            args.table,
            rows,
            args.seeds,
            args.out,
            extra,
            keep_going=args.keep_going,
            log=lambda *a, **k: print(*a, **{"flush": True, **k}),
        )
    except ReproduceError as e:
        print(f"error: {e}\nrerun the same command to continue (finished runs are kept)", file=sys.stderr)
        return 2
    from . import tables

    text, results = tables.render(args.out)
    print(text)
    try:
        tables.write_files(args.out, text, results)
    except OSError as e:
        print(f"error: {e.strerror}", file=sys.stderr)
        return 2
    if failures:
        print(f"error: {len(failures)} run(s) failed:\n" + "\n".join(failures), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
