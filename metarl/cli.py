"""Command line: `metarl train | resume | eval | plot | list | download`.

Bad input ends with one line on stderr and exit code 2; a non-finite loss ends with exit
code 1 and the last good checkpoint intact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from metarl.errors import NonFiniteError, UsageError


def _train(args: argparse.Namespace) -> None:
    from metarl.registry import load_config
    from metarl.trainer import train

    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"task.data_dir={args.data_dir}")
    cfg = load_config(args.config, overrides)
    run_dir = Path(args.run_dir or Path("runs") / cfg.name)
    results = train(cfg, run_dir, progress=None if not args.no_progress else False)
    _report(results, run_dir)


def _resume(args: argparse.Namespace) -> None:
    from metarl.trainer import load_run, train

    run = load_run(Path(args.run_dir))
    _report(
        train(run.cfg, run.run_dir, progress=None if not args.no_progress else False), run.run_dir
    )


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
        "(SCALARS: adapt/, meta/; CUSTOM SCALARS: the curve; IMAGES: adapt/curve"
        + (", adapt/video)" if results.get("video") == "adapted.gif" else ")")
    )
    if results.get("video"):
        print(f"Video:         {run_dir / results['video']}  (a held-out task: before | after)")


def _eval(args: argparse.Namespace) -> None:
    from metarl.trainer import final_evaluation, load_run

    run = load_run(Path(args.run_dir), args.overrides)
    out = Path(args.out) if args.out else None
    results = final_evaluation(run, None, args.split, args.num_tasks, out=out)
    _report(results, run.run_dir)
    if out is not None:
        print(f"Results:       {out}")


def _plot(args: argparse.Namespace) -> None:
    from metarl.logger import save_curve_png

    path = Path(args.run_dir) / "results.json"
    if not path.exists():
        raise UsageError(f"{path} does not exist; run `metarl eval {args.run_dir}` first")
    results = json.loads(path.read_text())
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metarl", description=__doc__.split("\n")[0])
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
    t.set_defaults(func=_train)

    r = sub.add_parser("resume", help="continue a stopped run from its last checkpoint")
    r.add_argument("run_dir")
    r.add_argument("--no-progress", action="store_true")
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
    e.add_argument("--num-tasks", type=int, help="held-out tasks (default: eval.final_num_tasks)")
    e.set_defaults(func=_eval)

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


def main(argv: list[str] | None = None) -> int:
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
        print(f"metarl: error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteError as exc:
        print(f"metarl: stopped: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `metarl list | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print(
            "metarl: interrupted; the last checkpoint is intact (metarl resume RUN_DIR)",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
