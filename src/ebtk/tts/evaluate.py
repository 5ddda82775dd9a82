"""Evaluation tables for the `tts` task: hypothesis vs refined (steps × step sizes) vs FM baseline.

Every system's mel is vocoded with the HiFi-GAN vocoder and compared with the *recorded* reference wav
(MCD with DTW, log-F0 RMSE, V/UV error: one shared WORLD analysis of the reference per utterance),
plus the mel-level MSE against the reference mel (frame-aligned: all systems use ground-truth
durations), DNSMOS and RTF. The vocoded reference (copy synthesis) is the floor no mel can beat.

Writes ``eval_table.md`` / ``eval_table.json`` (every row), a few wavs under ``wavs/`` and ``mels.png``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ebtk.tts.audio import SAMPLE_RATE, load_wav, save_wav

COLUMNS = ("mel_mse", "mcd", "logf0_rmse", "vuv", "dnsmos", "rtf")


def _mean(v: list[float]) -> float | None:
    v = [x for x in v if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


class Scorer:
    """Scores systems against a fixed set of test utterances; the reference analysis is done once."""

    def __init__(self, task: Any, ids: list[str], dnsmos: bool):
        from ebtk.metrics.speech import analyze

        self.task = task
        self.ids = ids
        self.dnsmos = dnsmos
        items = task.items()
        self.ref_wavs = [load_wav(items[i][2]) for i in ids]
        self.ref_mels = [task.mel(i) for i in ids]
        self.ref_feats = [analyze(w, SAMPLE_RATE) for w in self.ref_wavs]
        self.rows: list[dict[str, Any]] = []
        self.wavs: dict[str, list[np.ndarray]] = {}

    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        return self.task.vocoder(mel.float()).cpu().numpy()

    def score(self, system: str, mels: list[torch.Tensor], steps: int | None = None,
              step_size: float | None = None, rtf: float | None = None) -> dict[str, Any]:
        """Vocode `mels` (one (80, T) per test utterance) and add a table row."""
        from tqdm.auto import tqdm

        from ebtk.metrics.speech import _path_metrics, analyze, dnsmos

        per: dict[str, list[float]] = {k: [] for k in COLUMNS if k != "rtf"}
        wavs = []
        utts = tqdm(zip(mels, self.ref_mels, self.ref_feats), total=len(mels), desc=f"eval {system}", unit="utt",
                    disable=None, leave=False)  # a bar only on a terminal
        for mel, ref_mel, (f0_r, mc_r) in utts:
            t = min(mel.shape[-1], ref_mel.shape[-1])
            per["mel_mse"].append(float((mel[:, :t].float().cpu() - ref_mel[:, :t]).pow(2).mean()))
            wav = self.vocode(mel)
            wavs.append(wav)
            f0_s, mc_s = analyze(wav, SAMPLE_RATE)
            m = _path_metrics(f0_r, mc_r, f0_s, mc_s)
            for k in ("mcd", "logf0_rmse", "vuv"):
                per[k].append(m[k])
            per["dnsmos"].append(dnsmos(wav, SAMPLE_RATE)["ovrl"] if self.dnsmos else None)
        row = {"system": system, "steps": steps, "step_size": step_size,
               **{k: _mean(v) for k, v in per.items()}, "rtf": rtf}
        self.rows.append(row)
        self.wavs[self._key(system, steps, step_size)] = wavs
        return row

    @staticmethod
    def _key(system: str, steps: int | None, step_size: float | None) -> str:
        if steps is None:
            return system
        return f"{system}_k{steps}" + ("" if step_size is None else f"_eta{step_size:g}")


def _utt_batch(task: Any, ids: list[str]) -> Any:
    return task.model_batch(ids)


def _test_ids(task: Any) -> list[str]:
    ids = task.splits()["test"][: task.eval_cfg.n_test]
    if task.is_refiner:
        ids = [i for i in ids if i in task.hypotheses()["hyp"]]
    return ids


def evaluate_tts(task: Any, model: nn.Module, run_dir: Path) -> dict[str, Any]:
    """Dispatch on the run's objective; returns the metrics.json entries."""
    run_dir.mkdir(parents=True, exist_ok=True)
    name = task.objective_name
    model.eval()
    task.vocoder_device = str(next(model.parameters()).device)
    if name == "acoustic":
        return _evaluate_acoustic(task, model, run_dir)
    if name == "fm":
        return _evaluate_fm(task, model, run_dir)
    return _evaluate_refiner(task, model, run_dir)


def _contract(hyp: dict | None, refined: dict | None, rtf: float | None, steps: int | None) -> dict[str, Any]:
    def g(row: dict | None, k: str) -> float | None:
        return None if row is None else row.get(k)

    return {
        "mcd_hyp": g(hyp, "mcd"), "mcd_refined": g(refined, "mcd"),
        "logf0_rmse_hyp": g(hyp, "logf0_rmse"), "logf0_rmse_refined": g(refined, "logf0_rmse"),
        "vuv_hyp": g(hyp, "vuv"), "vuv_refined": g(refined, "vuv"),
        "dnsmos_hyp": g(hyp, "dnsmos"), "dnsmos_refined": g(refined, "dnsmos"),
        "mel_mse_hyp": g(hyp, "mel_mse"), "mel_mse_refined": g(refined, "mel_mse"),
        "rtf": rtf, "refine_steps": steps,
    }


def _evaluate_acoustic(task: Any, model: nn.Module, run_dir: Path) -> dict[str, Any]:
    from ebtk.tasks.tts import HYPOTHESES

    out = task.write_hypotheses(model, run_dir / HYPOTHESES)
    ids = task.splits()["test"][: task.eval_cfg.n_test]
    scorer = Scorer(task, ids, task.eval_cfg.dnsmos)
    voc = scorer.score("vocoded reference", scorer.ref_mels)
    hyps = _acoustic_hypotheses(task, model, ids)
    hyp = scorer.score("hypothesis", hyps)
    _write_outputs(task, scorer, run_dir, {"reference": scorer.ref_mels[0], "hypothesis": hyps[0]})
    return {**_contract(hyp, None, None, 0), "mcd_vocoded": voc["mcd"], **out}


@torch.no_grad()
def _acoustic_hypotheses(task: Any, model: nn.Module, ids: list[str]) -> list[torch.Tensor]:
    dev = next(model.parameters()).device
    b = _utt_batch(task, ids).to(dev)
    c = b.cond
    dur = model.align_durations(c["phonemes"], c["ph_lengths"], b.x, c["mel_lengths"])
    hyp, _, _ = model.hypothesis(c["phonemes"], c["ph_lengths"], dur)
    return [hyp[k, :, : int(c["mel_lengths"][k])].cpu() for k in range(len(ids))]


@torch.no_grad()
def _evaluate_fm(task: Any, model: nn.Module, run_dir: Path) -> dict[str, Any]:
    ids = _test_ids(task)
    scorer = Scorer(task, ids, task.eval_cfg.dnsmos)
    voc = scorer.score("vocoded reference", scorer.ref_mels)
    dev = next(model.parameters()).device
    b = _utt_batch(task, ids).to(dev)
    c = b.cond
    dur = model.align_durations(c["phonemes"], c["ph_lengths"], b.x, c["mel_lengths"])
    audio_s = sum(w.size for w in scorer.ref_wavs) / SAMPLE_RATE
    last = None
    mels: list[torch.Tensor] = []
    for n in sorted(set(task.eval_cfg.fm_steps)):
        t0 = time.perf_counter()
        y, _, _ = model.hypothesis(c["phonemes"], c["ph_lengths"], dur, n_steps=n)
        mels = [y[k, :, : int(c["mel_lengths"][k])].cpu() for k in range(len(ids))]
        rtf = (time.perf_counter() - t0) / audio_s
        last = scorer.score("flow matching", mels, steps=n, rtf=rtf)
    _write_outputs(task, scorer, run_dir, {"reference": scorer.ref_mels[0], "flow matching": mels[0]})
    return {**_contract(None, last, last["rtf"], last["steps"]), "mcd_vocoded": voc["mcd"]}


def _refiner_inputs(task: Any, ids: list[str]) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    h = task.hypotheses()
    out = []
    for uid in ids:
        hyp = h["hyp"][uid].float()[None]
        cond = {"hyp": hyp}
        if task.model_cfg.text_cond:
            cond["text"] = h["text"][uid].float()[None]
        out.append((hyp, cond))
    return out


def _evaluate_refiner(task: Any, model: nn.Module, run_dir: Path) -> dict[str, Any]:
    from ebtk.tts.refiner import refine

    ids = _test_ids(task)
    ev, rc = task.eval_cfg, task.refine_cfg
    scorer = Scorer(task, ids, ev.dnsmos)
    voc = scorer.score("vocoded reference", scorer.ref_mels)
    inputs = _refiner_inputs(task, ids)
    dev = next(model.parameters()).device
    hyp_row = scorer.score("hypothesis", [x[0][0] for x in inputs], steps=0)
    steps = sorted(set(ev.steps) | {rc.steps})
    sizes = sorted(set(ev.step_sizes) | {rc.step_size})
    refined_default = None
    default_mels: list[torch.Tensor] = []
    for eta in sizes:
        chains = [refine(model, hyp.to(dev), max(steps), eta, {k: v.to(dev) for k, v in cond.items()},
                         record=tuple(steps))[1] for hyp, cond in inputs]
        for k in steps:
            if eta != rc.step_size and k not in ev.steps:
                continue
            mels = [c[k][0].cpu() for c in chains]
            row = scorer.score("refined", mels, steps=k, step_size=eta)
            if k == rc.steps and eta == rc.step_size:
                refined_default, default_mels = row, mels
    rtf, rtf_refine = _refiner_rtf(task, model, inputs, rc.steps, rc.step_size, dev)
    refined_default["rtf"] = rtf
    _write_outputs(task, scorer, run_dir, {"reference": scorer.ref_mels[0], "hypothesis": inputs[0][0][0],
                                           f"refined ({rc.steps}×{rc.step_size:g})": default_mels[0]})
    return {**_contract(hyp_row, refined_default, rtf, rc.steps), "refine_step_size": rc.step_size,
            "rtf_refine": rtf_refine, "mcd_vocoded": voc["mcd"]}


def _refiner_rtf(task: Any, model: nn.Module, inputs: list, steps: int, eta: float, dev: Any) -> tuple[float, float]:
    """(refine + vocoder, refine alone) compute seconds per audio second over the test utterances."""
    from ebtk.tts.refiner import refine

    hyp0, cond0 = inputs[0]
    refine(model, hyp0.to(dev), min(steps, 1), eta, {k: v.to(dev) for k, v in cond0.items()})  # warm-up
    task.vocoder(hyp0[:, :, :16].to(dev))
    t_ref = t_all = 0.0
    samples = 0
    for hyp, cond in inputs:
        t0 = time.perf_counter()
        y, _ = refine(model, hyp.to(dev), steps, eta, {k: v.to(dev) for k, v in cond.items()})
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t1 = time.perf_counter()
        wav = task.vocoder(y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()
        t_ref += t1 - t0
        t_all += t2 - t0
        samples += wav.numel()
    secs = samples / SAMPLE_RATE
    return t_all / secs, t_ref / secs


def _write_outputs(task: Any, scorer: Scorer, run_dir: Path, plot_mels: dict[str, torch.Tensor]) -> None:
    from ebtk.report.plots import mel_plot
    from ebtk.train.checkpoint import atomic_write_text

    rows = scorer.rows
    atomic_write_text(run_dir / "eval_table.json", json.dumps({"utterances": scorer.ids, "rows": rows}, indent=1))
    atomic_write_text(run_dir / "eval_table.md", table_markdown(rows, len(scorer.ids)))
    n = min(task.eval_cfg.n_wavs, len(scorer.ids))
    wav_dir = run_dir / "wavs"
    for k in range(n):
        uid = scorer.ids[k]
        save_wav(wav_dir / f"{uid}_reference.wav", scorer.ref_wavs[k])
        for key, wavs in scorer.wavs.items():
            save_wav(wav_dir / f"{uid}_{key.replace(' ', '_')}.wav", wavs[k])
    mel_plot({k: v.float().cpu().numpy() for k, v in plot_mels.items()}, run_dir / "mels.png",
             title=f"test utterance {scorer.ids[0]}")


def table_markdown(rows: list[dict[str, Any]], n_utts: int) -> str:
    """One markdown table: a row per system / steps / step size; means over the test utterances."""

    def f(v: Any, digits: int = 3) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    head = "| system | steps | step size | mel MSE | MCD (dB) | log-F0 RMSE | V/UV | DNSMOS | RTF |\n"
    head += "|---|---|---|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['system']} | {f(r['steps'])} | {f(r['step_size'], 2)} | {f(r['mel_mse'])} | {f(r['mcd'], 2)} | "
        f"{f(r['logf0_rmse'])} | {f(r['vuv'])} | {f(r['dnsmos'], 2)} | {f(r['rtf'])} |\n"
        for r in rows
    )
    note = (f"\nMeans over {n_utts} test utterances; MCD / log-F0 / V/UV against the recorded wav, mel MSE "
            "against its log-mel; all systems use ground-truth (MAS) durations.\n")
    return head + body + note
