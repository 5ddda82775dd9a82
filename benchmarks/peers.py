"""ebtk against its peers torchebm 0.8.9 and ebmkit 0.16.0: step time, peak memory and fit quality.

Every case trains the *same* network (``ebtk.nets.mlp.MLPEnergy``, hidden 128, depth 3, identical initial
weights) with the same Adam optimiser, and times one full training step (loss + backward + optimiser step)
per library, with the formula settings matched to the peer's (see `SETTINGS`). Timings interleave ebtk and
the peer (A B A B …) so that load from other processes hits both alike; the table reports medians and the
ebtk/peer ratio (< 1: ebtk is faster).

Peak memory: the growth of the process's peak RSS over two training steps (median of several runs), and the
peak of torch's live allocations over one step (torch.profiler memory events), each in a fresh subprocess per
(library, case), measured after the model, optimiser and data exist.

Quality: each library's CD, PCD and SSM trains on 8-gaussians (``ebtk.tasks.toy2d``) for the same steps
and batches; every trained energy is scored by ebtk's exact normaliser over the plane (``ebtk.metrics.density``).

    python benchmarks/peers.py            # full tables -> benchmarks/results/peers.md
    python benchmarks/peers.py --quick    # one small case per objective, no memory / quality
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ebtk.io import atomic_write_text
from ebtk.report.machine import cpu_model

THREADS = 1
HIDDEN, DEPTH = 128, 3
K_STEPS, STEP_SIZE = 20, 0.01  # Langevin steps per CD/PCD update and η (x ← x − η∇E + √(2η)ξ)
ALPHA = 0.001  # CD energy regulariser (torchebm's default), set on every side
SIGMA = 0.1  # DSM noise level
BUFFER, REINIT = 10_000, 0.05
LR = 1e-3

# (objective, peer): the settings both sides use, as stated in the table.
SETTINGS: dict[tuple[str, str], str] = {
    ("cd", "torchebm"): f"K={K_STEPS}, η={STEP_SIZE}, chains start at the batch, α={ALPHA}",
    ("cd", "ebmkit"): f"K={K_STEPS}, η={STEP_SIZE}, chains start at the batch, α={ALPHA}",
    ("pcd", "torchebm"): f"K={K_STEPS}, η={STEP_SIZE}, buffer {BUFFER}, 5% refresh, α={ALPHA}",
    ("pcd", "ebmkit"): f"K={K_STEPS}, η={STEP_SIZE}, buffer {BUFFER}, 5% reinit, α={ALPHA}",
    ("ssm", "torchebm"): "1 Rademacher projection, ½(vᵀs)² (no variance reduction)",
    ("ssm-vr", "ebmkit"): "1 Gaussian projection, variance-reduced ½‖s‖²",
    ("dsm", "torchebm"): f"σ={SIGMA}, one level",
    ("dsm", "ebmkit"): f"σ={SIGMA}, one level",
    ("nce", "ebmkit"): "ν=1, noise N(0, I) (full-covariance log-density on both sides)",
}
PAIRS = list(SETTINGS)


# -- shared pieces ---------------------------------------------------------------------------------------
def make_net(dim: int, seed: int = 0) -> torch.nn.Module:
    from ebtk.nets.mlp import MLPEnergy

    torch.manual_seed(seed)
    return MLPEnergy(dim, hidden=HIDDEN, depth=DEPTH)


@dataclass
class Setup:
    """A ready training step for one library: `step(x)` does loss, backward and optimiser step."""

    step: Callable[[torch.Tensor], None]
    net: torch.nn.Module


def ebtk_setup(obj: str, dim: int, net: torch.nn.Module) -> Setup:
    """ebtk's step through its public library API (`ebtk.objective`), as a user would write it.

    CD chains start at the current batch (torchebm's CD-k); other inits (PCD buffer fill and restarts) are
    N(0, I), as in ebmkit. NCE's noise is N(0, I), given as data=(mean, cov)."""
    import ebtk

    current: list[torch.Tensor] = []

    def init(n: int, device: torch.device) -> torch.Tensor:
        if obj == "cd" and current and n == len(current[0]):
            return current[0].detach().clone()
        return torch.randn(n, dim, device=device)

    sampler = {"steps": K_STEPS, "step_size": STEP_SIZE, "buffer_size": BUFFER, "reinit": REINIT}
    options: dict[str, object] = {
        "cd": {"alpha": ALPHA}, "pcd": {"alpha": ALPHA},
        "ssm": {"n_projections": 1, "projection": "rademacher"},
        "ssm-vr": {"n_projections": 1, "projection": "gaussian", "variance_reduced": True},
        "dsm": {"sigmas": [SIGMA]}, "nce": {"nu": 1},
    }[obj]
    name = "ssm" if obj == "ssm-vr" else obj
    data = (torch.zeros(dim), torch.eye(dim)) if obj == "nce" else None
    loss_fn = ebtk.objective(name, sampler=sampler, init=init, data=data, **options)
    opt = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=LR)

    def step(x: torch.Tensor) -> None:
        current[:] = [x]
        out = loss_fn(net, x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        loss_fn.after_step(net)

    return Setup(step, net)


def torchebm_model(net: torch.nn.Module) -> torch.nn.Module:
    """`net` as a torchebm model: its samplers call model.gradient, which torchebm's BaseModel provides."""
    from torchebm.core import BaseModel

    class Wrapped(BaseModel):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    return Wrapped(net)


def torchebm_setup(obj: str, dim: int, net: torch.nn.Module) -> Setup:
    from torchebm.losses import ContrastiveDivergence, DenoisingScoreMatching, SlicedScoreMatching
    from torchebm.samplers import LangevinDynamics

    model = torchebm_model(net)
    if obj in ("cd", "pcd"):
        sampler = LangevinDynamics(model, step_size=STEP_SIZE, noise_scale=1.0)
        loss_fn = ContrastiveDivergence(model, sampler, k_steps=K_STEPS, persistent=obj == "pcd",
                                        buffer_size=BUFFER, new_sample_ratio=REINIT, energy_reg_weight=ALPHA)
    elif obj == "ssm":
        loss_fn = SlicedScoreMatching(model, n_projections=1, projection_type="rademacher")
    elif obj == "dsm":
        loss_fn = DenoisingScoreMatching(model, noise_scale=SIGMA)
    else:
        raise ValueError(obj)
    opt = torch.optim.Adam(net.parameters(), lr=LR)

    def step(x: torch.Tensor) -> None:
        out = loss_fn(x)
        loss = out[0] if isinstance(out, tuple) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Setup(step, net)


def ebmkit_setup(obj: str, dim: int, net: torch.nn.Module) -> Setup:
    import ebm

    current: list[torch.Tensor] = []
    if obj in ("cd", "pcd"):
        sampler = ebm.LangevinDynamics(step_size=STEP_SIZE, steps=K_STEPS)  # noise √(2η), as ebtk's
        if obj == "cd":
            loss_fn = ebm.ContrastiveDivergence(sampler, energy_reg=ALPHA,
                                                init_fn=lambda shape: current[0].detach().clone())
        else:
            loss_fn = ebm.ContrastiveDivergence(sampler, buffer=ebm.ReplayBuffer(BUFFER, (dim,), REINIT),
                                                energy_reg=ALPHA)
    elif obj == "ssm-vr":
        loss_fn = ebm.SlicedScoreMatching(n_projections=1, vr=True)
    elif obj == "dsm":
        loss_fn = ebm.DenoisingScoreMatching(sigma=SIGMA)
    elif obj == "nce":
        noise = torch.distributions.MultivariateNormal(torch.zeros(dim), scale_tril=torch.eye(dim))
        loss_fn = ebm.NoiseContrastiveEstimation(noise_dist=noise, noise_ratio=1)
    else:
        raise ValueError(obj)
    opt = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=LR)

    def step(x: torch.Tensor) -> None:
        current[:] = [x]
        out = loss_fn(net, x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    return Setup(step, net)


SETUPS = {"ebtk": ebtk_setup, "torchebm": torchebm_setup, "ebmkit": ebmkit_setup}


def batch_pool(dim: int, batch: int, n: int = 4, seed: int = 1) -> list[torch.Tensor]:
    """n fixed batches: 8-gaussians for 2-D, N(0, I) for higher dimensions (timing only)."""
    gen = torch.Generator().manual_seed(seed)
    if dim == 2:
        from ebtk.tasks.toy2d import EightGaussians

        return [EightGaussians().sample(gen, batch) for _ in range(n)]
    return [torch.randn(batch, dim, generator=gen) for _ in range(n)]


# -- timing ----------------------------------------------------------------------------------------------
def time_pair(obj: str, peer: str, dim: int, batch: int, repeats: int, warmup: int) -> tuple[float, float]:
    """Median step seconds (ebtk, peer), measured interleaved from identical initial weights."""
    a = ebtk_setup(obj, dim, make_net(dim))
    b = SETUPS[peer](obj, dim, make_net(dim))
    xs = batch_pool(dim, batch)
    for i in range(warmup):
        a.step(xs[i % len(xs)])
        b.step(xs[i % len(xs)])
    ta, tb = [], []
    for i in range(repeats):
        x = xs[i % len(xs)]
        for s, acc in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            t0 = time.process_time()
            s.step(x)
            acc.append(time.process_time() - t0)
    return statistics.median(ta), statistics.median(tb)


# -- memory (fresh subprocess per case) --------------------------------------------------------------------
def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def mem_case(lib: str, obj: str, dim: int, batch: int) -> float:
    """Peak RSS above the starting RSS (MiB) over two training steps, model/optimiser/data already built.

    Free heap pages are returned to the OS first (malloc_trim) and the kernel's peak-RSS mark is reset
    (/proc/self/clear_refs ← 5), so the peak (VmHWM) is that of the steps, not of the imports.
    """
    import ctypes

    torch.set_num_threads(THREADS)
    s = SETUPS[lib](obj, dim, make_net(dim))
    xs = batch_pool(dim, batch, n=2)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    for x in xs:
        s.step(x)
    return (_status_kib("VmHWM") - before) / 1024


def mem_profile_case(lib: str, obj: str, dim: int, batch: int) -> float:
    """Peak of the bytes torch holds allocated (MiB) over one training step, after one warm-up step (Adam's
    state exists), relative to the start: torch.profiler's memory events (`profile_memory=True`), i.e. the
    live tensors alone, without the allocator's free-but-resident pages that the RSS also counts."""
    import json
    import tempfile

    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(THREADS)
    s = SETUPS[lib](obj, dim, make_net(dim))
    xs = batch_pool(dim, batch, n=2)
    s.step(xs[0])
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        s.step(xs[1])
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = [e for e in json.loads(path.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    total = [e["args"]["Total Allocated"] for e in events]
    start = total[0] - events[0]["args"]["Bytes"]
    return (max(total) - start) / 2**20


def mem_subprocess(lib: str, obj: str, dim: int, batch: int, kind: str = "rss") -> float:
    """`kind` rss: `mem_case`; live: `mem_profile_case`; each in a fresh process."""
    cmd = [sys.executable, __file__, "--mem-case", lib, obj, str(dim), str(batch)]
    if kind == "live":
        cmd.append("--mem-live")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


# -- quality on 8-gaussians -------------------------------------------------------------------------------
def train_quality(lib: str, obj: str, steps: int, batch: int, seed: int) -> float:
    """Test NLL (nats) of `lib`'s `obj` after `steps` steps on 8-gaussians, by ebtk's exact normaliser
    (Z over the plane: a flat CD/PCD energy has mass outside the data box)."""
    from ebtk.metrics.density import nll, normalize
    from ebtk.tasks.toy2d import EightGaussians

    net = make_net(2, seed)
    torch.manual_seed(10_000 + seed)
    s = SETUPS[lib](obj, 2, net)
    ds, gen = EightGaussians(), torch.Generator().manual_seed(20_000 + seed)
    for _ in range(steps):
        s.step(ds.sample(gen, batch))
    test = ds.sample(torch.Generator().manual_seed(1_000_003), 5000)
    net.eval()
    return nll(net, test, normalize(net, -4.5, 4.5, 180).log_z)


def true_nll() -> float:
    from ebtk.tasks.toy2d import EightGaussians

    ds = EightGaussians()
    return float(-ds.log_prob(ds.sample(torch.Generator().manual_seed(1_000_003), 5000)).mean())


# -- report -----------------------------------------------------------------------------------------------
def machine() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} logical cores (shared with other jobs), torch {torch.__version__}, "
            f"torch.set_num_threads({THREADS}), Python {platform.python_version()}")


def speed_rows(dims: list[int], batches: list[int], repeats: int, warmup: int,
               pairs: list[tuple[str, str]], log: Callable[[str], None] = print) -> list[dict]:
    rows = []
    for obj, peer in pairs:
        for dim in dims:
            for batch in batches:
                te, tp = time_pair(obj, peer, dim, batch, repeats, warmup)
                row = {"objective": obj, "peer": peer, "dim": dim, "batch": batch, "ebtk_ms": te * 1e3,
                       "peer_ms": tp * 1e3, "ratio": te / tp}
                rows.append(row)
                log(f"{obj:7s} vs {peer:9s} d={dim:3d} B={batch:5d}: ebtk {te * 1e3:8.2f} ms, "
                    f"peer {tp * 1e3:8.2f} ms, ratio {te / tp:.2f}")
    return rows


def speed_table(rows: list[dict]) -> str:
    lines = ["| objective | peer | settings (both sides) | D | B | ebtk ms | peer ms | ebtk/peer |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        settings = SETTINGS[(r["objective"], r["peer"])]
        lines.append(f"| {r['objective']} | {r['peer']} | {settings} | {r['dim']} | {r['batch']} | "
                     f"{r['ebtk_ms']:.2f} | {r['peer_ms']:.2f} | **{r['ratio']:.2f}** |")
    return "\n".join(lines)


def memory_table(dim: int, batch: int, log: Callable[[str], None] = print, repeats: int = 5,
                 pairs: list[tuple[str, str]] | None = None) -> str:
    lines = [f"## Peak memory, D = {dim}, B = {batch}", "",
             "Two measures, each in a fresh subprocess per library and case, model/optimiser/data already built:",
             "",
             "* **RSS**: peak RSS above the starting RSS over two training steps (MiB): free heap returned first "
             "(`malloc_trim`), the kernel's peak mark reset (`/proc/self/clear_refs`), then VmHWM − VmRSS. "
             f"Median [min–max] of {repeats} runs, ebtk and peer alternating: the allocator's free-but-resident "
             "pages make it move by ±10–15 % from run to run. (tracemalloc does not see torch's CPU tensors.)",
             "* **live**: the peak of the bytes torch holds allocated over one step after a warm-up step, from "
             "torch.profiler's memory events (`profile_memory=True`): the tensors alone, deterministic.",
             "",
             "| objective | peer | ebtk RSS MiB | peer RSS MiB | ebtk/peer RSS | ebtk live MiB | peer live MiB "
             "| ebtk/peer live |", "|---|---|---|---|---|---|---|---|"]
    for obj, peer in pairs or PAIRS:
        rss: dict[str, list[float]] = {"ebtk": [], peer: []}
        for _ in range(repeats):
            for lib in rss:
                rss[lib].append(mem_subprocess(lib, obj, dim, batch))
        me, mp = statistics.median(rss["ebtk"]), statistics.median(rss[peer])
        le, lp = mem_subprocess("ebtk", obj, dim, batch, "live"), mem_subprocess(peer, obj, dim, batch, "live")
        log(f"memory {obj} vs {peer}: RSS {me:.1f} / {mp:.1f} MiB, live {le:.1f} / {lp:.1f} MiB")

        def cell(v: list[float]) -> str:
            return f"{statistics.median(v):.1f} [{min(v):.1f}–{max(v):.1f}]"

        lines.append(f"| {obj} | {peer} | {cell(rss['ebtk'])} | {cell(rss[peer])} | {me / mp:.2f} | {le:.1f} | "
                     f"{lp:.1f} | {le / lp:.2f} |")
    return "\n".join(lines)


QUALITY_RUNS = [("cd", ["ebtk", "torchebm", "ebmkit"]), ("pcd", ["ebtk", "torchebm", "ebmkit"]),
                ("ssm", ["ebtk", "torchebm"]), ("ssm-vr", ["ebtk", "ebmkit"])]


def quality_table(steps: int, batch: int, seeds: list[int], log: Callable[[str], None] = print) -> str:
    lines = [f"True NLL of the test set (the floor): **{true_nll():.3f}** nats.", "",
             "| objective | settings | ebtk | torchebm | ebmkit |", "|---|---|---|---|---|"]
    for obj, libs in QUALITY_RUNS:
        cells = []
        for lib in ["ebtk", "torchebm", "ebmkit"]:
            if lib not in libs:
                cells.append("—")
                continue
            v = [train_quality(lib, obj, steps, batch, s) for s in seeds]
            log(f"quality {obj} {lib}: {v}")
            m = statistics.mean(v)
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{m:.3f} ± {sd:.3f}" if math.isfinite(m) else "diverged")
        peer = "ebmkit" if obj == "ssm-vr" else "torchebm"
        lines.append(f"| {obj} | {SETTINGS[(obj, peer)]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2-D, batch 256, 3 repeats; no memory or quality")
    p.add_argument("--part", choices=["all", "speed", "memory", "quality", "report"], default="all",
                   help="what to (re)measure (report: none); the other part's last tables are kept")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--no-mem", action="store_true")
    p.add_argument("--quality-steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "peers.md"))
    p.add_argument("--mem-repeats", type=int, default=5, help="RSS runs per library and case")
    p.add_argument("--mem-objectives", nargs="+", help="memory: only these objectives (default: every pair)")
    p.add_argument("--mem-case", nargs=4, metavar=("LIB", "OBJ", "DIM", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--mem-live", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    if a.mem_case:
        lib, obj, dim, batch = a.mem_case
        print((mem_profile_case if a.mem_live else mem_case)(lib, obj, int(dim), int(batch)))
        return
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    speed_file, quality_file = out.with_suffix(".speed.md"), out.with_suffix(".quality.md")
    memory_file = out.with_suffix(".memory.md")
    if a.quick or a.part in ("all", "speed"):
        reps = 3 if a.quick else a.repeats
        rows = (speed_rows([2], [256], reps, 1, PAIRS) if a.quick
                else speed_rows([2, 64], [256, 4096], reps, 2, PAIRS))
        speed = [f"Machine: {machine()}.", "",
                 f"Network: `MLPEnergy` (hidden {HIDDEN}, depth {DEPTH}, SiLU), identical initial weights; "
                 f"Adam lr {LR}. One training step (loss + backward + Adam step), median over {reps} repeats "
                 "after warm-up, ebtk and peer interleaved (A B B A …), timed by process CPU time "
                 "(`time.process_time`, robust to the time-slicing of a shared machine).", "",
                 speed_table(rows)]
        atomic_write_text(Path(a.out) if a.quick else speed_file, "\n".join(speed) + "\n")
        if a.quick:
            print(f"wrote {a.out}")
            return
    if a.part in ("all", "memory") and not a.no_mem:
        pairs = [pp for pp in PAIRS if not a.mem_objectives or pp[0] in a.mem_objectives]
        atomic_write_text(memory_file, memory_table(64, 4096, repeats=a.mem_repeats, pairs=pairs) + "\n")
    if a.part in ("all", "quality"):
        quality = [f"## Quality: 8-gaussians, {a.quality_steps} steps, batch 256, {a.seeds} seeds", "",
                   "Test NLL (nats, lower is better; mean ± std over seeds) by ebtk's exact grid normaliser "
                   "([−4.5, 4.5]², 180² cells) on the toy2d test sample (5000 points).", "",
                   quality_table(a.quality_steps, 256, list(range(a.seeds)))]
        atomic_write_text(quality_file, "\n".join(quality) + "\n")
    text = [f"# ebtk vs torchebm {_version('torchebm')} and ebmkit {_version('ebmkit')}", "",
            "Generated by `python benchmarks/peers.py`; the notes at the end are hand-written "
            f"(`{out.with_suffix('.notes.md').name}`).", ""]
    for f in (speed_file, memory_file, quality_file, out.with_suffix(".notes.md")):
        if f.exists():
            text += [f.read_text(), ""]
    atomic_write_text(out, "\n".join(text))
    print(f"wrote {out}")


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "(not installed)"


if __name__ == "__main__":
    main()
