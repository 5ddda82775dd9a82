"""Opt-in compiled training (`train.compile=true`) against eager ebtk and ebmkit 0.16: CD and SA-NCE steps at
D = 64, B = 4096, compile time included; the break-even run length.

Every side trains the same network (``MLPEnergy``, hidden 128, depth 3, identical initial weights) with Adam,
K = 20 Langevin steps of η = 0.01 from the current batch (benchmarks/peers.py's CD settings). The compiled side
is what `train.compile=true` builds: the loss calls ``torch.compile(net, dynamic=False)`` and the objective's
Langevin samplers compile their ∇ₓE step (`ebtk.sampling.langevin.compile_samplers`).

ebmkit has no SA-NCE. Its nearest step is its CD with the same chains (ν = 1: the same B × K Langevin
evaluations, then a loss over 2B points), so SA-NCE is set against ebmkit's CD and the table says so.

Timing: the three sides take steps interleaved in rotating order (A B C, B C A, …), so load from other
processes hits all alike; per-step cost is the median of process CPU time (``time.process_time``, robust to
time-slicing on a shared machine) and, for reference, wall-clock. Each objective runs in a fresh process.
Compile time is the first compiled step's time less a steady compiled step, in CPU seconds of this process plus
its C++ compiler children (inductor runs with ``compile_threads = 1``, so no worker pool escapes the count) and
in wall-clock. Inductor's on-disk caches are off unless ``--warm-cache``: the number is a cold compile, what a
user's first run pays.

A 3000-step run is measured directly with ``--steps 3000``; by default a shorter run (``--steps 150``) is
measured and the 3000-step totals and the break-even lengths are extrapolated from it (compile + n · step),
and the table says so.

    python benchmarks/compile_speed.py [--steps 150] [--objectives cd sa-nce]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

if "--warm-cache" not in sys.argv:
    os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch

sys.path.insert(0, str(Path(__file__).parent))
import peers  # noqa: E402  (same net, settings and ebmkit driver as the peers table)

from ebtk.io import atomic_write_text  # noqa: E402

DIM, BATCH, RUN = 64, 4096, 3000


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (inductor's gcc runs)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def ebtk_step(obj: str, net: torch.nn.Module, compiled: bool) -> Callable[[torch.Tensor], None]:
    """One ebtk training step via the library API; `compiled`: what train.compile=true builds."""
    import ebtk
    from ebtk.sampling.langevin import compile_samplers

    current: list[torch.Tensor] = []

    def init(n: int, device: torch.device) -> torch.Tensor:
        if current and n == len(current[0]):
            return current[0].detach().clone()
        return torch.randn(n, DIM, device=device)

    sampler = {"steps": peers.K_STEPS, "step_size": peers.STEP_SIZE, "persistent": False}
    options = {"cd": {"alpha": peers.ALPHA}, "sa-nce": {"alpha": peers.ALPHA, "nu": 1}}[obj]
    loss_fn = ebtk.objective(obj, sampler=sampler, init=init, **options)
    opt = torch.optim.Adam([*net.parameters(), *loss_fn.parameters()], lr=peers.LR)
    model = net
    if compiled:
        compile_samplers(loss_fn)
        model = torch.compile(net, dynamic=False)

    def step(x: torch.Tensor) -> None:
        current[:] = [x]
        out = loss_fn(model, x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        loss_fn.after_step(net)

    return step


def measure(obj: str, steps: int, log: Callable[[str], None]) -> dict:
    import torch._inductor.config as ind

    ind.compile_threads = 1
    torch.set_num_threads(peers.THREADS)
    sides = {
        "ebtk eager": ebtk_step(obj, peers.make_net(DIM), False),
        "ebtk compiled": ebtk_step(obj, peers.make_net(DIM), True),
        "ebmkit": peers.ebmkit_setup("cd", DIM, peers.make_net(DIM)).step,
    }
    xs = peers.batch_pool(DIM, BATCH)
    for name in ("ebtk eager", "ebmkit"):  # warm-up of the eager sides (first-call allocations)
        sides[name](xs[0])
    w0, c0 = time.perf_counter(), _cpu()
    sides["ebtk compiled"](xs[0])  # compiles: the Langevin ∇ₓE step, then the loss's forward and backward
    first_wall, first_cpu = time.perf_counter() - w0, _cpu() - c0
    log(f"{obj}: first compiled step {first_wall:.1f} s wall, {first_cpu:.1f} s CPU")
    names = list(sides)
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    t_start = time.perf_counter()
    for i in range(steps):
        x = xs[i % len(xs)]
        for n in names[i % 3:] + names[: i % 3]:
            w, c = time.perf_counter(), time.process_time()
            sides[n](x)
            cpu[n].append(time.process_time() - c)
            wall[n].append(time.perf_counter() - w)
        if (i + 1) % 25 == 0:
            med = {n: round(statistics.median(cpu[n]) * 1e3, 1) for n in names}
            log(f"{obj}: {i + 1}/{steps} steps, median CPU ms {med}, {time.perf_counter() - t_start:.0f} s")
    res = {
        "objective": obj,
        "steps_measured": steps,
        "step_cpu_s": {n: statistics.median(cpu[n]) for n in names},
        "step_wall_s": {n: statistics.median(wall[n]) for n in names},
        "step_cpu_iqr_s": {n: _iqr(cpu[n]) for n in names},
        "first_compiled_step": {"wall_s": first_wall, "cpu_s": first_cpu},
        "loadavg": os.getloadavg(),
    }
    res["compile_cpu_s"] = first_cpu - res["step_cpu_s"]["ebtk compiled"]
    res["compile_wall_s"] = first_wall - res["step_wall_s"]["ebtk compiled"]
    return res


def _iqr(v: list[float]) -> list[float]:
    q = statistics.quantiles(v, n=4)
    return [q[0], q[2]]


def totals(r: dict, clock: str, n: int = RUN) -> dict[str, float]:
    """Seconds for an n-step run per side: n · step (+ compile on the compiled side)."""
    s = r[f"step_{clock}_s"]
    return {"ebtk eager": n * s["ebtk eager"], "ebmkit": n * s["ebmkit"],
            "ebtk compiled": r[f"compile_{clock}_s"] + n * s["ebtk compiled"]}


def break_even(r: dict, clock: str, against: str) -> float:
    """Run length (steps) from which the compiled run, compile included, is faster than `against`'s."""
    s = r[f"step_{clock}_s"]
    gain = s[against] - s["ebtk compiled"]
    return r[f"compile_{clock}_s"] / gain if gain > 0 else float("inf")


def report(results: list[dict], warm: bool) -> str:
    direct = all(r["steps_measured"] >= RUN for r in results)
    how = "measured" if direct else "extrapolated"
    lines = [
        f"# Compiled training (`train.compile=true`): CD and SA-NCE, D = {DIM}, B = {BATCH}",
        "",
        "Generated by `python benchmarks/compile_speed.py`; the notes at the end are hand-written.",
        "",
        f"Machine: {peers.machine()}; inductor C++ backend. "
        f"Network `MLPEnergy` (hidden {peers.HIDDEN}, depth {peers.DEPTH}, SiLU), K = {peers.K_STEPS} Langevin "
        f"steps of η = {peers.STEP_SIZE} from the batch, α = {peers.ALPHA}, Adam lr {peers.LR}. "
        "SA-NCE: ν = 1, set against ebmkit's CD (ebmkit has no SA-NCE; its CD does the same B × K Langevin "
        "evaluations). Steps interleaved in rotating order; per-step numbers are medians (interquartile range "
        "in brackets). Compile: first compiled step less a steady one, "
        + ("inductor caches warm." if warm else "cold (inductor's on-disk caches off)."),
        "",
        "| objective | steps timed | load avg | ebtk eager ms | ebtk compiled ms | ebmkit ms | compiled/eager "
        "| compiled/ebmkit | compile s (CPU / wall) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c, q = r["step_cpu_s"], r["step_cpu_iqr_s"]

        def ms(n: str, c: dict = c, q: dict = q) -> str:
            return f"{c[n] * 1e3:.0f} [{q[n][0] * 1e3:.0f}–{q[n][1] * 1e3:.0f}]"

        lines.append(
            f"| {r['objective']} | {r['steps_measured']} | {r['loadavg'][0]:.1f} | {ms('ebtk eager')} | "
            f"{ms('ebtk compiled')} | {ms('ebmkit')} | {c['ebtk compiled'] / c['ebtk eager']:.2f} | "
            f"{c['ebtk compiled'] / c['ebmkit']:.2f} | {r['compile_cpu_s']:.0f} / {r['compile_wall_s']:.0f} |"
        )
    lines += ["", f"## {RUN}-step runs, compile included ({how})", "",
              "| objective | clock | ebtk eager s | ebtk compiled s | ebmkit s | compiled/ebmkit | break-even vs eager "
              "ebtk (steps) | break-even vs ebmkit (steps) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for clock in ("cpu", "wall"):
            t = totals(r, clock)
            be = [break_even(r, clock, a) for a in ("ebtk eager", "ebmkit")]
            lines.append(
                f"| {r['objective']} | {clock} | {t['ebtk eager']:.0f} | {t['ebtk compiled']:.0f} | "
                f"{t['ebmkit']:.0f} | {t['ebtk compiled'] / t['ebmkit']:.2f} | "
                + " | ".join("never" if b == float("inf") else f"{b:.0f}" for b in be) + " |"
            )
    return "\n".join(lines) + "\n"


def print_flush(s: str) -> None:
    print(s, flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150, help=f"steps timed per side (≥ {RUN}: a direct run)")
    p.add_argument("--objectives", nargs="+", default=["cd", "sa-nce"], choices=["cd", "sa-nce"])
    p.add_argument("--warm-cache", action="store_true", help="keep inductor's on-disk caches (default: cold)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "compile.md"))
    p.add_argument("--one", metavar="JSON", help=argparse.SUPPRESS)  # child: measure one objective into JSON
    p.add_argument("--report", action="store_true", help="only re-render the table from the JSON and the notes")
    a = p.parse_args(argv)
    if a.one:
        r = {**measure(a.objectives[0], a.steps, print_flush), "warm_cache": a.warm_cache}
        atomic_write_text(Path(a.one), json.dumps(r) + "\n")
        return
    out = Path(a.out)
    raw = out.with_suffix(".json")
    results = json.loads(raw.read_text()) if a.report else []
    # each objective in a fresh process: every compile time includes inductor's start-up
    for obj in [] if a.report else a.objectives:
        child = raw.with_suffix(f".{obj}.json")
        cmd = [sys.executable, __file__, "--objectives", obj, "--steps", str(a.steps), "--one", str(child)]
        subprocess.run(cmd + (["--warm-cache"] if a.warm_cache else []), check=True)
        results.append(json.loads(child.read_text()))
        child.unlink()
        atomic_write_text(raw, json.dumps(results, indent=1) + "\n")
    text = report(results, any(r.get("warm_cache", False) for r in results))
    notes = out.with_suffix(".notes.md")
    if notes.exists():
        text += "\n" + notes.read_text()
    atomic_write_text(out, text)
    print(text)


if __name__ == "__main__":
    main()
