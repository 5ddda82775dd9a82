"""The `ebtk` command line. User mistakes print one `error:` line and exit with code 2."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from ebtk.errors import EbtkError, one_line

RESUME_HINT = "interrupted; re-run the same command to resume from the last checkpoint"


def _train(args: argparse.Namespace) -> int:
    from ebtk.train.trainer import train

    overrides = list(args.overrides)
    for flag, key in (("steps", "train.steps"), ("seed", "train.seed"), ("device", "train.device")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    from ebtk.io import check_output_dir

    out = args.out or f"runs/{args.task}-{args.objective}"
    check_output_dir(out, "--out")
    metrics = train(args.task, args.objective, out, args.config, overrides, progress=not args.quiet,
                    restart=args.restart)
    if metrics:
        print(json.dumps(metrics, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ebtk.io import lock_run_dir
    from ebtk.train.trainer import evaluate_run, load_run, write_metrics

    with lock_run_dir(args.run_dir, create=False):  # load_run refuses a dir without config.yaml
        config, task, model, objective, step = load_run(args.run_dir, args.device)
        metrics = evaluate_run(task, model, objective, Path(args.run_dir), config, step)
        old = Path(args.run_dir) / "metrics.json"
        if old.exists():  # keep training-time facts (wall time) that evaluation cannot recompute
            prev = json.loads(old.read_text())
            for k in ("train_seconds", "steps_per_second"):
                if k in prev:
                    metrics.setdefault(k, prev[k])
        write_metrics(Path(args.run_dir), metrics)
    print(json.dumps(metrics, indent=2))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from ebtk.io import check_output_file
    from ebtk.train.trainer import load_run

    if args.n <= 0:
        raise EbtkError("--n must be positive")
    check_output_file(args.out)
    _, task, model, _, _ = load_run(args.run_dir, args.device)
    x = task.sample(model, args.n, torch.Generator().manual_seed(args.seed))
    task.save_samples(x, Path(args.out))
    print(args.out)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ebtk.io import check_output_file
    from ebtk.report.compare import compare_runs

    if args.out:
        check_output_file(args.out)
    table = compare_runs([Path(p) for p in args.run_dirs], Path(args.out) if args.out else None)
    print(table)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ebtk.demo import run_demo
    from ebtk.io import check_output_dir

    check_output_dir(args.out)
    path = run_demo(Path(args.out), size=args.size, parts=args.parts)
    print(f"report: {path}")
    return 0


def _synthesize(args: argparse.Namespace) -> int:
    from ebtk.io import check_output_dir, check_output_file
    from ebtk.tts.synthesize import synthesize, synthesize_lines

    if (args.text is None) == (args.file is None):
        raise EbtkError("give --text with --out, or --file with --out-dir")
    if args.text is not None and args.out:
        check_output_file(args.out)
    elif args.file is not None and args.out_dir:
        check_output_dir(args.out_dir, "--out-dir")
    kw = {"steps": args.steps, "step_size": args.step_size, "length_scale": args.length_scale,
          "write_hypothesis": args.hypothesis, "device": args.device}
    if args.text is not None:
        if not args.out:
            raise EbtkError("--text needs --out FILE.wav")
        synthesize(args.model, args.text, args.out, **kw)
    else:
        if not args.out_dir:
            raise EbtkError("--file needs --out-dir DIR")
        synthesize_lines(args.model, args.file, args.out_dir, batch_size=args.batch_size, **kw)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ebtk.io import check_output_file, lock_run_dir
    from ebtk.tts.bundle import export

    check_output_file(args.file, "FILE")
    with lock_run_dir(args.run_dir, create=False):
        path = export(args.run_dir, args.file)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ebtk import __version__

    p = argparse.ArgumentParser(prog="ebtk", description="Energy-based model toolkit")
    p.add_argument("--version", action="version", version=f"ebtk {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train TASK with an objective into a run dir (resumes if present)")
    t.add_argument("task")
    t.add_argument("--objective", required=True)
    t.add_argument("--config", help="YAML file merged over the defaults")
    t.add_argument("--steps", type=int)
    t.add_argument("--out", help="run dir (default runs/TASK-OBJECTIVE)")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=["cpu", "cuda"])
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--restart", action="store_true",
                   help="discard the run dir's checkpoint, metrics and logs and start over (else a run dir whose "
                        "checkpoint has another config is refused)")
    t.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    t.set_defaults(func=_train, on_interrupt=RESUME_HINT)

    e = sub.add_parser("evaluate", help="(re)write RUN_DIR/metrics.json and print it")
    e.add_argument("run_dir")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=_evaluate)

    s = sub.add_parser("sample", help="draw samples from a trained run into a PNG")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=_sample)

    c = sub.add_parser("compare", help="one table (mean ± std over seeds) and plots across run dirs")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("--out", help="report.html or table.md")
    c.set_defaults(func=_compare)

    d = sub.add_parser("demo", help="small end-to-end run of the studies on built-in data, writes report.html")
    d.add_argument("--out", default="demo_out")
    d.add_argument("--size", choices=["tiny", "small", "full"], default="small")
    d.add_argument("--parts", default="toy2d,ksweep,digits,tts", help="comma-separated parts to run")
    d.set_defaults(func=_demo, on_interrupt=RESUME_HINT)

    y = sub.add_parser("synthesize", help="text → hypothesis → refined mel → HiFi-GAN wav (prints the RTF)")
    y.add_argument("model", metavar="MODEL_FILE|RUN_DIR", nargs="?", default=None,
                   help="a bundle from `ebtk export`, or a tts run dir (refiner, acoustic or fm); default: the "
                        "model shipped with ebtk")
    y.add_argument("--text", help="the sentence to speak (with --out)")
    y.add_argument("--out", help="output .wav")
    y.add_argument("--file", help="a text file, one sentence per line (with --out-dir)")
    y.add_argument("--out-dir", help="folder for --file's wavs: line n → n.wav (0001.wav, 0002.wav, ...)")
    y.add_argument("--batch-size", type=int, default=8, help="--file lines synthesized together (default 8)")
    y.add_argument("--steps", type=int, help="refinement steps, Euler steps for fm (default: the model's)")
    y.add_argument("--step-size", type=float,
                   help="refinement step size η (default: the model's, the η its refiner was trained for)")
    y.add_argument("--length-scale", type=float,
                   help="speaking rate as a duration multiplier: > 1 slower, < 1 faster (default: the model's)")
    y.add_argument("--hypothesis", action="store_true",
                   help="also write the unrefined hypothesis wav (<stem>_hyp.wav)")
    y.add_argument("--device", default="cpu")
    y.set_defaults(func=_synthesize, on_interrupt="interrupted; the wavs already written are complete (with "
                                                  "--file: lines 1, 2, … in order up to the last one written)")

    x = sub.add_parser("export", help="write a tts run's one-file inference bundle (weights_only-loadable)")
    x.add_argument("run_dir", help="a tts run dir (refiner, acoustic or fm)")
    x.add_argument("file", help="the bundle file to write, e.g. model.pt")
    x.set_defaults(func=_export)

    for mod in ("ebtk.tts.cli",):
        _plugin(mod, lambda m: m.add_cli(sub))
    return p


def _plugin(module: str, attach: Callable) -> None:
    """Attach optional subcommands (the TTS ones need the `tts` extra)."""
    import importlib

    try:
        attach(importlib.import_module(module))
    except ModuleNotFoundError:
        pass


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    """Warnings read like errors on the command line: one `warning:` line, no source excerpt."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    bad = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if bad:
        print(f"error: unrecognized arguments: {' '.join(bad)} (see ebtk {args.command} --help)", file=sys.stderr)
        return 2
    if extra:
        args.overrides = list(args.overrides) + extra
    warnings.formatwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except EbtkError as e:
        print(f"error: {one_line(e, 2000)}", file=sys.stderr)
        return 2
    except OSError as e:  # an OS error on a path the user gave (the checks above catch most before any work)
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot use{where}: {e.strerror or one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"error: {getattr(args, 'on_interrupt', 'interrupted')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
