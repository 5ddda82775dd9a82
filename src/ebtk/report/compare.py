"""`ebtk compare`: one table (mean ± std over seeds) across run dirs, grouped by what differs."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from ebtk.errors import EbtkError

_IGNORED = {"train.seed", "train.device", "train.threads", "train.log_every", "train.ckpt_every", "train.eval_every",
            "train.eval_split"}
_NON_METRICS = {"task", "objective", "steps", "data", "seed", "train_seconds"}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def load_runs(run_dirs: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for d in run_dirs:
        m, c = Path(d) / "metrics.json", Path(d) / "config.yaml"
        if not m.is_file():
            raise EbtkError(f"{d} has no metrics.json (train or `ebtk evaluate` it first)")
        try:
            metrics = json.loads(m.read_text())
        except json.JSONDecodeError as e:
            raise EbtkError(f"{m} is not valid JSON: {e.msg}") from None
        config = yaml.safe_load(c.read_text()) if c.is_file() else {}
        runs.append({"dir": Path(d), "metrics": metrics, "config": _flatten(config or {})})
    return runs


def group_label(run: dict[str, Any], varying: list[str]) -> str:
    m = run["metrics"]
    parts = [m.get("task", "?")]
    if m.get("data"):
        parts.append(str(m["data"]))
    parts.append(str(m.get("objective", "?")))
    extra = [f"{k.split('.', 1)[-1]}={run['config'].get(k)}" for k in varying]
    return " / ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


def summarise(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]], dict[str, dict[str, list[float]]]]:
    """Rows of `label, n, metric mean ± std...`; also returns the raw values per group and metric."""
    # A run's label adds only the settings that vary among runs of the *same* task/data/objective (e.g. the
    # SA-NCE interval in a K-sweep); settings that merely differ between objectives would be noise.
    base: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        m = r["metrics"]
        base[(m.get("task"), m.get("data"), m.get("objective"))].append(r)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for members in base.values():
        keys = sorted({k for r in members for k in r["config"]} - _IGNORED)
        varying = [
            k
            for k in keys
            if k not in ("task", "objective.name", "data.name")
            and len({json.dumps(r["config"].get(k), sort_keys=True) for r in members}) > 1
        ]
        for r in members:
            groups[group_label(r, varying)].append(r)
    metric_names: list[str] = []
    for r in runs:
        for k, v in r["metrics"].items():
            if (
                k not in _NON_METRICS
                and isinstance(v, int | float)
                and not isinstance(v, bool)
                and k not in metric_names
            ):
                metric_names.append(k)
    values: dict[str, dict[str, list[float]]] = {}
    rows = []
    for label, rs in groups.items():
        values[label] = {}
        row = [label, str(len(rs))]
        for name in metric_names:
            vs = [float(r["metrics"][name]) for r in rs if isinstance(r["metrics"].get(name), int | float)]
            values[label][name] = vs
            row.append(_fmt(vs))
        rows.append(row)
    return ["run", "seeds", *metric_names], rows, values


def _fmt(vs: list[float]) -> str:
    if not vs:
        return "–"
    mean = sum(vs) / len(vs)
    if len(vs) == 1:
        return f"{mean:.4g}"
    std = math.sqrt(sum((v - mean) ** 2 for v in vs) / (len(vs) - 1))
    return f"{mean:.4g} ± {std:.2g}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def compare_runs(run_dirs: list[Path], out: Path | None = None) -> str:
    """Markdown table across runs; `out` *.md writes it, *.html writes a report with each run's plots."""
    runs = load_runs(run_dirs)
    header, rows, _ = summarise(runs)
    table = markdown_table(header, rows)
    if out is not None:
        from ebtk.io import atomic_write_text

        if out.suffix == ".md":
            atomic_write_text(out, table + "\n")
        else:
            from ebtk.report.html import Report

            rep = Report("ebtk comparison")
            rep.table(header, rows)
            for r in runs:
                for png in sorted(r["dir"].glob("*.png")):
                    rep.image(png, f"{r['dir'].name}: {png.stem}")
            rep.save(out)
    return table
