"""Command line: `metarl train | resume | eval | adapt | plot | list | download`.

Bad input ends with one line on stderr and exit code 2; a non-finite loss ends with exit
code 1 and the last good checkpoint intact.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import typing
from pathlib import Path

from metarl.errors import (
    EveryRankError,
    NonFiniteError,
    RankLost,
    RunInterrupted,
    StoppedByRank0,
    UsageError,
)

_OS_HINTS = {
    errno.ENOSPC: "free disk space or choose another folder",
    errno.EDQUOT: "free disk space or choose another folder",
    errno.EFBIG: "the file grew past the size allowed (ulimit -f); raise the limit or free space",
    errno.EACCES: "choose a folder you can write to, or fix its permissions",
    errno.EPERM: "choose a folder you can write to, or fix its permissions",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.ENOTDIR: "a part of that path is a file, not a folder; choose another path",
    errno.EISDIR: "that path is a folder; give a file",
    errno.EEXIST: "that path exists and is in the way; choose another path",
    errno.ENOENT: "it does not exist; check the path",
    errno.ENAMETOOLONG: "shorten the path",
}


def describe_os_error(exc: OSError) -> str:
    """An OSError (file, folder, disk) as one line: the path, the reason and what to do."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1, "check the path and the disk")
    return f"{where + ': ' if where else ''}{reason}; {hint}"


def _train(args: argparse.Namespace) -> None:
    from metarl.registry import load_config
    from metarl.trainer import train

    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"task.data_dir={args.data_dir}")
    cfg = load_config(args.config, overrides)
    run_dir = Path(args.run_dir or Path("runs") / cfg.name)
    progress = None if not args.no_progress else False
    results = train(cfg, run_dir, progress=progress, threads=args.threads)
    if _speaker() == "":  # under torchrun, rank 0 reports
        _report(results, run_dir)


def _resume(args: argparse.Namespace) -> None:
    from metarl.config import RunConfig, from_dict, load_yaml
    from metarl.registry import validate
    from metarl.trainer import train

    run_dir = Path(args.run_dir)
    config_file = run_dir / "config.yaml"
    if not (run_dir / "checkpoints" / "last.pt").is_file() or not config_file.is_file():
        raise UsageError(
            f"{run_dir} holds no run to resume (it needs config.yaml and checkpoints/last.pt); "
            f"start one with `metarl train CONFIG --run-dir {run_dir}`"
        )
    cfg = from_dict(RunConfig, load_yaml(config_file), "")
    validate(cfg)
    progress = None if not args.no_progress else False
    results = train(cfg, run_dir, progress=progress, threads=args.threads)
    if _speaker() == "":  # under torchrun, rank 0 reports
        _report(results, run_dir)


def _report(results: dict, run_dir: Path) -> None:
    from metarl.evaluation import format_curve

    if "curve" in results:
        c = results["curve"]
        print(
            f"\nAdaptation curve of {results['name']} on {c['num_tasks']} held-out "
            f"{c['split']} tasks (mean and 95% confidence interval):"
        )
        print(format_curve(c))
    if "within_episode" in results:  # learners that adapt inside episode 1
        w = results["within_episode"]
        steps = w.get("window_steps", 1)
        print(f"\nReturn per window of {steps} steps of episode 1 (the agent adapting inside it):")
        for b, m, ci in zip(w["budgets"], w["mean"], w["ci95"], strict=True):
            print(f"  steps {b * steps:>4}-{(b + 1) * steps - 1:<4} | {m:>10.4f} | +-{ci:.4f}")
    print(f"\nRun directory: {run_dir}  (config.yaml, checkpoints/, results.json, curves.png)")
    print(
        f"TensorBoard:   tensorboard --logdir {run_dir}   then open http://127.0.0.1:6006 "
        "(SCALARS: adapt/, final/, meta/; CUSTOM SCALARS: the curves; IMAGES: adapt/curve, "
        "final/curve" + (", adapt/video)" if results.get("video") == "adapted.gif" else ")")
    )
    if results.get("figure"):
        print(
            f"Tasks:         {run_dir / results['figure']}  (held-out tasks before / after adapting)"
        )
    if results.get("video"):
        print(f"Video:         {run_dir / results['video']}  (a held-out task: before | after)")


def _one_process(command: str) -> None:
    """`metarl eval` and `adapt` run in one process: under torchrun each rank would write."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise UsageError(
            f"metarl {command} runs in one process; run it without torchrun (only train and "
            "resume split their work across processes)"
        )


def _eval(args: argparse.Namespace) -> None:
    _one_process("eval")
    from metarl.config import PositiveInt, coerce, parse_override
    from metarl.rundir import locked
    from metarl.trainer import final_evaluation, load_run

    overrides = list(args.overrides)
    if args.num_tasks is not None:  # parsed and range-checked like the config field
        num_tasks = coerce(parse_override(f"x={args.num_tasks}")[1], PositiveInt, "--num-tasks")
        overrides.append(f"eval.final_num_tasks={num_tasks}")
    run_dir = Path(args.run_dir)
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a JSON file path")
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(
            f"{run_dir} is not a run directory (no config.yaml); give the folder `metarl train` "
            "wrote"
        )
    # Writing into the run directory takes its lock: never beside a running train or eval.
    with locked(run_dir) if out is None else contextlib.nullcontext():
        run = load_run(run_dir, overrides, threads=args.threads)
        run.progress = None
        results = final_evaluation(run, None, args.split, out=out)
    _report(results, run.run_dir)
    if out is not None:
        print(f"Results:       {out}")


def _adapt(args: argparse.Namespace) -> None:
    _one_process("adapt")
    from metarl.adapt import run_adapt

    run_adapt(args)


def _plot(args: argparse.Namespace) -> None:
    from metarl.logger import save_curve_png
    from metarl.rundir import read_results

    path = Path(args.run_dir) / "results.json"
    if not path.is_file():
        raise UsageError(f"{path} does not exist; run `metarl eval {args.run_dir}` first")
    results = read_results(path, need_curve=True)
    out = Path(args.out) if args.out else Path(args.run_dir) / "curves.png"
    save_curve_png(results["curve"], out, f"{results['name']}: {results['curve']['split']}")
    print(out)


def _list(args: argparse.Namespace) -> None:
    from metarl.config import config_path, load_yaml, shipped_configs

    for name in shipped_configs():
        data = load_yaml(config_path(name))
        task, learner = data.get("task", {}), data.get("learner", {})
        print(f"{name:<32} task={task.get('kind', '?'):<14} learner={learner.get('kind', '?')}")


def _download(args: argparse.Namespace) -> None:
    from metarl.fewshot.download import OMNIGLOT_BASE_URL, download_omniglot

    for path in download_omniglot(Path(args.dest), args.url or OMNIGLOT_BASE_URL):
        print(path)


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line errors of the rest of the CLI (exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="metarl",
        description=__doc__.split("\n")[0],
        epilog="Several processes or machines: `torchrun --nproc-per-node N -m metarl train "
        "CONFIG ...` (and resume) splits every meta-batch across them; rank 0 writes the run "
        "directory (README: Training on several processes and machines).",
    )
    threads_help = (
        "CPU threads for torch (default: 1 for models under a million numbers, which only "
        "slow down with more; torch's default for larger ones or when OMP_NUM_THREADS is set)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train", help="meta-train a config (resumes if --run-dir holds the same run)"
    )
    t.add_argument("config", help="shipped config name (see `metarl list`) or a YAML file")
    t.add_argument(
        "overrides",
        nargs="*",
        help="dotted overrides, e.g. train.iterations=100 learner.inner_lr=0.1",
    )
    t.add_argument("--run-dir", help="run directory (default runs/<config name>)")
    t.add_argument("--data-dir", help="dataset folder (same as task.data_dir=...)")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    t.add_argument("--threads", type=int, help=threads_help)
    t.set_defaults(func=_train)

    r = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    r.add_argument("run_dir")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--threads", type=int, help=threads_help)
    r.set_defaults(func=_resume)

    e = sub.add_parser("eval", help="adaptation curve of a run's last checkpoint on held-out tasks")
    e.add_argument("run_dir")
    e.add_argument(
        "overrides",
        nargs="*",
        help="task.* / eval.* overrides, e.g. task.ways=20 eval.final_num_tasks=600",
    )
    e.add_argument(
        "--out", help="write the results to this JSON file instead of RUN_DIR/results.json"
    )
    e.add_argument("--split", help="split to evaluate (default: eval.final_split)")
    e.add_argument(
        "--num-tasks", help="held-out tasks, >= 1 (same as eval.final_num_tasks=N, the default)"
    )
    e.add_argument("--threads", type=int, help=threads_help)
    e.set_defaults(func=_eval)

    a = sub.add_parser(
        "adapt",
        help="classify your own images: adapt a trained learner to a support folder",
        description="Adapt a trained few-shot learner to SUPPORT (one sub-folder of images per "
        "class) and print, for every query image, the predicted class and its probability.",
    )
    a.add_argument("run_dir", help="a run directory written by `metarl train`")
    a.add_argument("--support", required=True, help="folder of class folders: DIR/<class>/<image>")
    a.add_argument(
        "--query",
        required=True,
        nargs="+",
        help="query image files or folders (searched recursively)",
    )
    a.add_argument("--out", help="write a CSV: query,class,probability[,class_2,probability_2,...]")
    a.add_argument(
        "--top", type=int, default=1, help="classes per query, most probable first (default 1)"
    )
    a.add_argument(
        "--sheet",
        help="write a PNG grid of the queries labelled with their class (wrong ones marked in red "
        "where a query's folder names its true class)",
    )
    a.add_argument("--batch-size", type=int, default=50, help="query images per batch (default 50)")
    a.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
    a.set_defaults(func=_adapt)

    pl = sub.add_parser("plot", help="redraw curves.png from results.json")
    pl.add_argument("run_dir")
    pl.add_argument("--out", help="output PNG (default RUN_DIR/curves.png)")
    pl.set_defaults(func=_plot)

    ls = sub.add_parser("list", help="list the shipped configs")
    ls.set_defaults(func=_list)

    d = sub.add_parser("download", help="download a dataset (only when you ask)")
    d.add_argument("dataset", choices=["omniglot"])
    d.add_argument("dest", help="folder to put the official zip files in")
    d.add_argument("--url", help="base URL (default: the official Omniglot repository)")
    d.set_defaults(func=_download)
    return p


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (`timeout`, a scheduler) stops a run like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _speaker() -> str | None:
    """How this process prefixes its error line: "" alone or as rank 0 of torchrun,
    "rank R/N: " on another rank once it joined the others, and None (it stays quiet: rank 0
    says the same) on another rank before, where every rank read the same command line."""
    rank, size = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    if rank in ("", "0") or size in ("", "1"):
        return ""
    dist = sys.modules.get("metarl.distributed")
    joined = dist is not None and dist.get_world().size > 1
    return f"rank {rank}/{size}: " if joined else None


def _say(text: str, every_rank: bool = False) -> None:
    """Print the error line (`every_rank`: an error every rank raised alike, which rank 0
    alone prints)."""
    prefix = _speaker()
    if prefix is not None and not (every_rank and prefix):
        print(f"metarl: {prefix}{text}", file=sys.stderr)


def _main(argv: list[str] | None) -> int:
    code = _run(argv)
    dist = sys.modules.get("metarl.distributed")
    if dist is not None and code == 0:  # leave the process group of a torchrun run
        dist.close_world()
    return code


def _run(argv: list[str] | None) -> int:
    p = parser()
    # Overrides may also come after options (`train CFG --run-dir D a=1`), which argparse
    # alone rejects once the positionals are consumed.
    args, extra = p.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(x.startswith("-") for x in extra):
            p.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    try:
        args.func(args)
    except UsageError as exc:
        _say(f"error: {exc}", every_rank=isinstance(exc, EveryRankError))
        return 2
    except (NonFiniteError, RankLost) as exc:
        _say(f"stopped: {exc}")
        return 1
    except StoppedByRank0 as exc:  # rank 0 said why
        return exc.code
    except BrokenPipeError:  # e.g. `metarl list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0
    except OSError as exc:  # files, folders, disks: expected failures, not bugs
        _say(f"error: {describe_os_error(exc)}")
        return 2
    except RunInterrupted as exc:
        _say(str(exc))
        return 130
    except KeyboardInterrupt:
        _say("interrupted; no file was left half-written")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
