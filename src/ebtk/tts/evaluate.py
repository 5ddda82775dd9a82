"""Evaluation tables for TTS models: hypothesis vs refined (steps × step sizes) vs FM baseline.

Every system's mel is vocoded with the HiFi-GAN vocoder and compared with the *recorded* reference wav
(MCD with DTW, log-F0 RMSE, V/UV error: one shared WORLD analysis of the reference per utterance),
plus the mel-level MSE against the reference mel (frame-aligned: all systems use ground-truth
durations), DNSMOS and RTF. The vocoded reference (copy synthesis) is the floor no mel can beat.

Inputs are explicit: a model, a vocoder (any callable mel (B, 80, T) -> wav (B, samples)), the test
utterances as `EvalUtterance`s and the eval settings; no task. Writes ``eval_table.md`` /
``eval_table.json`` (every row), a few wavs under ``wavs/`` and ``mels.png`` into the run dir.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ebtk.errors import EbtkError
from ebtk.io import atomic_write_text
from ebtk.tts.audio import SAMPLE_RATE, save_wav
from ebtk.tts.batches import collate
from ebtk.tts.config import TTSEval
from ebtk.tts.refiner import refine

FM_SYSTEM = "flow matching"
COLUMNS = ("mel_mse", "mcd", "logf0_rmse", "vuv", "dnsmos", "rtf")
Vocoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalUtterance:
    """One test utterance: the recorded wav (22 050 Hz) and its log-mel (80, T), plus what the system under
    test starts from: phonemes (N,) for text → mel models, the frame-aligned hypothesis (80, T) (and the
    aligned text encoding μ_y (80, T) for text-conditioned refiners) for refiners."""

    id: str
    wav: np.ndarray
    mel: torch.Tensor
    phonemes: torch.Tensor | None = None
    hyp: torch.Tensor | None = None
    text: torch.Tensor | None = None
    _features: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """The recording's WORLD analysis (f0, mel-cepstrum), made once per utterance object: a study scores
        the same utterances for many systems, and the reference analysis is a third of a scoring's time."""
        if self._features is None:
            from ebtk.metrics.speech import analyze

            self._features = analyze(self.wav, SAMPLE_RATE)
        return self._features


def _mean(v: list[float]) -> float | None:
    v = [x for x in v if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else None


class Scorer:
    """Scores systems against a fixed set of test utterances; the reference analysis is done once."""

    def __init__(self, vocoder: Vocoder, utterances: list[EvalUtterance], dnsmos: bool):
        self.vocoder = vocoder
        self.ids = [u.id for u in utterances]
        self.dnsmos = dnsmos
        self.ref_wavs = [u.wav for u in utterances]
        self.ref_mels = [u.mel for u in utterances]
        self.ref_feats = [u.features() for u in utterances]
        self.rows: list[dict[str, Any]] = []
        self.per_utt: list[dict[str, Any]] = []  # one row per (utterance, system, setting): the raw numbers
        self.wavs: dict[str, list[np.ndarray]] = {}

    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        return self.vocoder(mel.float()).cpu().numpy()

    def score(self, system: str, mels: list[torch.Tensor], steps: int | None = None,
              step_size: float | None = None, rtf: float | None = None) -> dict[str, Any]:
        """Vocode `mels` (one (80, T) per test utterance) and add a table row."""
        from tqdm.auto import tqdm

        from ebtk.metrics.speech import _path_metrics, analyze, dnsmos

        per: dict[str, list[float]] = {k: [] for k in COLUMNS if k != "rtf"}
        wavs = []
        if len(mels) != len(self.ids):
            raise EbtkError(f"{system}: {len(mels)} mels for {len(self.ids)} test utterances")
        utts = tqdm(zip(self.ids, mels, self.ref_mels, self.ref_feats), total=len(mels), desc=f"eval {system}",
                    unit="utt", disable=None, leave=False)  # a bar only on a terminal
        for uid, mel, ref_mel, (f0_r, mc_r) in utts:
            # mel MSE needs frame-aligned mels (ground-truth durations); from text the lengths differ
            mse = float((mel.float().cpu() - ref_mel).pow(2).mean()) if mel.shape == ref_mel.shape else None
            wav = self.vocode(mel)
            wavs.append(wav)
            f0_s, mc_s = analyze(wav, SAMPLE_RATE)
            m = _path_metrics(f0_r, mc_r, f0_s, mc_s)
            m["mel_mse"] = mse
            m["dnsmos"] = dnsmos(wav, SAMPLE_RATE)["ovrl"] if self.dnsmos else None
            for k in per:
                per[k].append(m[k])
            self.per_utt.append({"id": uid, "system": system, "steps": steps, "step_size": step_size,
                                 **{k: m[k] for k in per}})
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


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _aligned_batch(model: nn.Module, utts: list[EvalUtterance], pad_id: int) -> tuple[dict[str, torch.Tensor], Any]:
    """Padded batch of `utts` on the model's device and their ground-truth (MAS) durations."""
    b = {k: v.to(_device(model)) for k, v in collate([u.phonemes for u in utts], [u.mel for u in utts],
                                                      pad_id).items()}
    return b, model.align_durations(b["phonemes"], b["ph_lengths"], b["mel"], b["mel_lengths"])


@torch.no_grad()
def aligned_hypotheses(model: nn.Module, utts: list[EvalUtterance], pad_id: int = 0,
                       **decode_kw: Any) -> list[torch.Tensor]:
    """Frame-aligned mels (80, T_i) of an acoustic or FM model (ground-truth MAS durations), on the CPU."""
    b, dur = _aligned_batch(model, utts, pad_id)
    y, _, _ = model.hypothesis(b["phonemes"], b["ph_lengths"], dur, **decode_kw)
    return [y[k, :, : int(b["mel_lengths"][k])].cpu() for k in range(len(utts))]


def evaluate_acoustic(model: nn.Module, vocoder: Vocoder, utts: list[EvalUtterance], ev: TTSEval,
                      run_dir: Path, pad_id: int = 0) -> dict[str, Any]:
    """The acoustic model's hypotheses (ground-truth durations) vs the recordings; metrics.json entries."""
    model.eval()
    scorer = Scorer(vocoder, utts, ev.dnsmos)
    voc = scorer.score("vocoded reference", scorer.ref_mels)
    hyps = aligned_hypotheses(model, utts, pad_id)
    hyp = scorer.score("hypothesis", hyps)
    write_outputs(scorer, run_dir, ev.n_wavs, {"reference": scorer.ref_mels[0], "hypothesis": hyps[0]})
    return {**_contract(hyp, None, None, 0), "mcd_vocoded": voc["mcd"]}


@torch.no_grad()
def evaluate_fm(model: nn.Module, vocoder: Vocoder, utts: list[EvalUtterance], ev: TTSEval, run_dir: Path,
                pad_id: int = 0) -> dict[str, Any]:
    """The FM baseline at each of `ev.fm_steps` Euler steps; the last is its *_refined entry."""
    model.eval()
    scorer = Scorer(vocoder, utts, ev.dnsmos)
    voc = scorer.score("vocoded reference", scorer.ref_mels)
    b, dur = _aligned_batch(model, utts, pad_id)
    audio_s = sum(w.size for w in scorer.ref_wavs) / SAMPLE_RATE
    last: dict[str, Any] = {}
    mels: list[torch.Tensor] = []
    for n in sorted(set(ev.fm_steps)):
        t0 = time.perf_counter()
        y, _, _ = model.hypothesis(b["phonemes"], b["ph_lengths"], dur, n_steps=n)
        mels = [y[k, :, : int(b["mel_lengths"][k])].cpu() for k in range(len(utts))]
        rtf = (time.perf_counter() - t0) / audio_s
        last = scorer.score(FM_SYSTEM, mels, steps=n, rtf=rtf)
    write_outputs(scorer, run_dir, ev.n_wavs, {"reference": scorer.ref_mels[0], "flow matching": mels[0]})
    return {**_contract(None, last, last["rtf"], last["steps"]), "mcd_vocoded": voc["mcd"]}


def _refiner_inputs(utts: list[EvalUtterance], text_cond: bool) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    out = []
    for u in utts:
        hyp = u.hyp.float()[None]
        cond = {"hyp": hyp}
        if text_cond:
            cond["text"] = u.text.float()[None]
        out.append((hyp, cond))
    return out


def evaluate_refiner(model: nn.Module, vocoder: Vocoder, utts: list[EvalUtterance], ev: TTSEval, run_dir: Path,
                     steps: int, step_size: float, text_cond: bool = False) -> dict[str, Any]:
    """Hypothesis vs refined over `ev.steps` × `ev.step_sizes`; (`steps`, `step_size`), the run's refinement
    defaults, are always in the table and give the *_refined entries."""
    model.eval()
    scorer = Scorer(vocoder, utts, ev.dnsmos)
    voc = scorer.score("vocoded reference", scorer.ref_mels)
    inputs = _refiner_inputs(utts, text_cond)
    dev = _device(model)
    hyp_row = scorer.score("hypothesis", [x[0][0] for x in inputs], steps=0)
    all_steps = sorted(set(ev.steps) | {steps})
    sizes = sorted(set(ev.step_sizes) | {step_size})
    refined_default: dict[str, Any] = {}
    default_mels: list[torch.Tensor] = []
    for eta in sizes:
        chains = [refine(model, hyp.to(dev), max(all_steps), eta, {k: v.to(dev) for k, v in cond.items()},
                         record=tuple(all_steps))[1] for hyp, cond in inputs]
        for k in all_steps:
            if eta != step_size and k not in ev.steps:
                continue
            mels = [c[k][0].cpu() for c in chains]
            row = scorer.score("refined", mels, steps=k, step_size=eta)
            if k == steps and eta == step_size:
                refined_default, default_mels = row, mels
    rtf, rtf_refine = _refiner_rtf(model, vocoder, inputs, steps, step_size, dev)
    refined_default["rtf"] = rtf
    write_outputs(scorer, run_dir, ev.n_wavs, {"reference": scorer.ref_mels[0], "hypothesis": inputs[0][0][0],
                                               f"refined ({steps}×{step_size:g})": default_mels[0]})
    return {**_contract(hyp_row, refined_default, rtf, steps), "refine_step_size": step_size,
            "rtf_refine": rtf_refine, "mcd_vocoded": voc["mcd"]}


def _refiner_rtf(model: nn.Module, vocoder: Vocoder, inputs: list, steps: int, eta: float,
                 dev: torch.device) -> tuple[float, float]:
    """(refine + vocoder, refine alone) compute seconds per audio second over the test utterances."""
    hyp0, cond0 = inputs[0]
    refine(model, hyp0.to(dev), min(steps, 1), eta, {k: v.to(dev) for k, v in cond0.items()})  # warm-up
    vocoder(hyp0[:, :, :16].to(dev))
    t_ref = t_all = 0.0
    samples = 0
    for hyp, cond in inputs:
        t0 = time.perf_counter()
        y, _ = refine(model, hyp.to(dev), steps, eta, {k: v.to(dev) for k, v in cond.items()})
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t1 = time.perf_counter()
        wav = vocoder(y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t2 = time.perf_counter()
        t_ref += t1 - t0
        t_all += t2 - t0
        samples += wav.numel()
    secs = samples / SAMPLE_RATE
    return t_all / secs, t_ref / secs


def write_outputs(scorer: Scorer, run_dir: Path, n_wavs: int, plot_mels: dict[str, torch.Tensor]) -> None:
    """eval_table.{json,md}, the first `n_wavs` utterances of every system as wavs, and mels.png."""
    from ebtk.report.plots import mel_plot

    run_dir = Path(run_dir)
    rows = scorer.rows
    atomic_write_text(run_dir / "eval_table.json", json.dumps({"utterances": scorer.ids, "rows": rows}, indent=1))
    atomic_write_text(run_dir / "eval_table.md", table_markdown(rows, len(scorer.ids)))
    atomic_write_text(run_dir / "per_utterance.csv", per_utterance_csv(scorer.per_utt))
    wav_dir = run_dir / "wavs"
    for k in range(min(n_wavs, len(scorer.ids))):
        uid = scorer.ids[k]
        save_wav(wav_dir / f"{uid}_reference.wav", scorer.ref_wavs[k])
        for key, wavs in scorer.wavs.items():
            save_wav(wav_dir / f"{uid}_{key.replace(' ', '_')}.wav", wavs[k])
    mel_plot({k: v.float().cpu().numpy() for k, v in plot_mels.items()}, run_dir / "mels.png",
             title=f"test utterance {scorer.ids[0]}")


PER_UTT_COLUMNS = ("id", "system", "steps", "step_size", "mcd", "logf0_rmse", "vuv", "dnsmos", "mel_mse")


def per_utterance_csv(rows: list[dict[str, Any]]) -> str:
    """The raw per-utterance numbers behind a table, one CSV line per (utterance, system, setting)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PER_UTT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r[k] for k in PER_UTT_COLUMNS})
    return buf.getvalue()


def read_per_utterance_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of `per_utterance_csv` with numbers parsed back (empty cells are None)."""
    import csv

    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = {"id": r["id"], "system": r["system"]}
            row["steps"] = int(r["steps"]) if r["steps"] else None
            for k in PER_UTT_COLUMNS[3:]:
                row[k] = float(r[k]) if r[k] else None
            out.append(row)
    return out


def group_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, int, float | None], dict[str, dict[str, Any]]]:
    """Per-utterance rows grouped by setting: {(system, steps (0 when none), step size): {utterance id: row}}."""
    out: dict[tuple[str, int, float | None], dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["system"], r["steps"] or 0, r["step_size"]), {})[r["id"]] = r
    return out


def row_mean(rows: dict[str, dict[str, Any]], key: str) -> float:
    """Mean of `key` over one setting's utterances, leaving out missing values (nan when none is left)."""
    vals = [r[key] for r in rows.values() if r[key] is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def pick_by_mcd(cands: list[tuple[float, float, Any]], tie_db: float = 0.01) -> Any:
    """The selection rule on val: among (mean MCD, mean DNSMOS, key) candidates, the key of the lowest MCD,
    except that within `tie_db` dB of it the higher DNSMOS wins (then the lower MCD)."""
    best = min(c[0] for c in cands)
    return min((c for c in cands if c[0] <= best + tie_db), key=lambda c: (-c[1], c[0]))[2]


def choose_setting(val_rows: list[dict[str, Any]], tie_db: float = 0.01,
                   systems: tuple[str, ...] = ("hypothesis", "refined")) -> tuple[int, float]:
    """The (steps, η) to use, chosen on validation rows: the lowest mean MCD among the settings of `systems`
    (by default the hypothesis, steps 0, and every refined setting; `(FM_SYSTEM,)` picks an FM step count);
    within `tie_db` dB of it the higher mean DNSMOS wins (`pick_by_mcd`). η of steps 0 (and of FM) is 1.0."""
    k, e = pick_by_mcd([(row_mean(r, "mcd"), row_mean(r, "dnsmos"), (k, e))
                        for (s, k, e), r in group_rows(val_rows).items() if s in systems], tie_db)
    return k, 1.0 if e is None else e


Mels = tuple[list[torch.Tensor], dict[tuple[int, float], list[torch.Tensor]]]


def _grid_mels(synth: Any, utts: list[EvalUtterance], grid: list[tuple[int, float]],
               start: Callable[[EvalUtterance], tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> Mels:
    """Each utterance's hypothesis and its refined mel at each (k, η) of `grid`: one chain per η, run as far as
    that η's largest k; `start(u)` gives the hypothesis (1, 80, T) on the synthesizer's device and the
    refiner's condition (its ``hyp``, ``mask``, and ``text`` only where the refiner is text-conditioned)."""
    chains: dict[float, tuple[int, ...]] = {}
    for k, eta in grid:
        chains[eta] = tuple(sorted({*chains.get(eta, ()), k}))
    hyps: list[torch.Tensor] = []
    refined: dict[tuple[int, float], list[torch.Tensor]] = {(k, eta): [] for k, eta in grid}
    for u in utts:
        hyp, cond = start(u)
        hyps.append(hyp[0].cpu())
        if synth.refiner is None:
            continue
        for eta, ks in chains.items():
            _, seen = refine(synth.refiner, hyp, ks[-1], eta, cond, record=ks)
            for k in ks:
                refined[(k, eta)].append(seen[k][0].cpu())
    return hyps, refined


def _product(steps: tuple[int, ...], step_sizes: tuple[float, ...]) -> list[tuple[int, float]]:
    return [(k, eta) for eta in step_sizes for k in steps]


@torch.no_grad()
def from_text_mels(synth: Any, utts: list[EvalUtterance], steps: tuple[int, ...] = (),
                   step_sizes: tuple[float, ...] = (), length_scale: float = 1.0, *,
                   grid: list[tuple[int, float]] | None = None) -> Mels:
    """What `ebtk synthesize` makes of each utterance's text: the acoustic model's free-running hypothesis
    (its duration predictor, not the recording's alignment) and the refined mels after each k in `steps` at
    each η in `step_sizes` (one chain per η), or at each (k, η) of `grid` instead. `synth` is an
    `ebtk.tts.load(...)` synthesizer.

    -> (hypotheses [(80, T_i)], {(k, η): [(80, T_i)]}), on the CPU."""

    def start(u: EvalUtterance) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if u.phonemes is None:
            raise EbtkError(f"utterance {u.id} has no phonemes to synthesize from")
        hyp, mu_y, mask = synth.acoustic.infer(u.phonemes[None].to(synth.device), None, length_scale)
        return hyp, {"hyp": hyp, "mask": mask, **({"text": mu_y} if synth.text_cond else {})}

    return _grid_mels(synth, utts, _product(steps, step_sizes) if grid is None else grid, start)


@torch.no_grad()
def teacher_forced_mels(synth: Any, utts: list[EvalUtterance], steps: tuple[int, ...] = (),
                        step_sizes: tuple[float, ...] = (), *, grid: list[tuple[int, float]] | None = None) -> Mels:
    """As `from_text_mels`, but from each utterance's teacher-forced hypothesis (`u.hyp`: ground-truth
    durations) and aligned text encoding (`u.text`), as refiners are trained and scored in the paper."""

    def start(u: EvalUtterance) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if u.hyp is None:
            raise EbtkError(f"utterance {u.id} has no teacher-forced hypothesis")
        hyp = u.hyp[None].to(synth.device)
        return hyp, {"hyp": hyp, **({"text": u.text[None].to(synth.device)} if synth.text_cond else {})}

    return _grid_mels(synth, utts, _product(steps, step_sizes) if grid is None else grid, start)


@torch.no_grad()
def fm_mels(synth: Any, utts: list[EvalUtterance], n_steps: tuple[int, ...], condition: str = "from-text",
            seed: int = 0) -> dict[int, list[torch.Tensor]]:
    """An fm synthesizer's mels (80, T_i) on the CPU after each n of `n_steps` Euler steps: from text as
    `ebtk synthesize` makes them (`Synthesizer.mels`, noise from `seed`), or teacher-forced (ground-truth MAS
    durations of the recording, the same noise seed per utterance)."""
    out: dict[int, list[torch.Tensor]] = {n: [] for n in n_steps}
    for u in utts:
        for n in n_steps:
            if condition == "from-text":
                y = synth.mels(u.phonemes[None].to(synth.device), steps=n, seed=seed)[1][0]
            else:
                with synth.seeded(seed):
                    y = aligned_hypotheses(synth.acoustic, [u], n_steps=n)[0]
            out[n].append(y.cpu())
    return out


def first_step_alignment(synth: Any, utts: list[EvalUtterance]) -> list[dict[str, Any]]:
    """How a refiner's first step s(Ŷ) relates to the residual r = Y − Ŷ it should remove, per teacher-forced
    utterance (the hypothesis is frame-aligned with the reference mel Y), on valid frames:

    * ``cos``: cosine of s(Ŷ) and r (1: the step points at the reference);
    * ``norm_ratio``: ‖s(Ŷ)‖ / ‖r‖ (1: one step of η = 1 has the right length);
    * ``eta_star``: ⟨s, r⟩ / ‖s‖², the step size that brings Ŷ + η·s closest to Y (mel MSE);
    * ``mse_gain``: 1 − min_η ‖r − η s‖² / ‖r‖² = cos² (the share of the mel MSE one best step removes);
    * ``gv_hyp`` / ``gv_step``: the global variance ratio mean_d σ_d(X) / σ_d(Y) (σ_d: the std over frames of
      mel bin d) of X = Ŷ and of X = Ŷ + s(Ŷ) (one step at η = 1): below 1 is over-smoothed.

    No vocoding: a diagnostic of *where* a refiner's training put its score field, cheap enough for every run."""
    from ebtk.energy import score_of

    if synth.refiner is None:
        raise EbtkError("first_step_alignment needs a refiner bundle")
    out = []
    for u in utts:
        if u.hyp is None or u.hyp.shape != u.mel.shape:
            raise EbtkError(f"utterance {u.id} has no frame-aligned teacher-forced hypothesis")
        hyp = u.hyp.float()[None].to(synth.device)
        cond = {"hyp": hyp, **({"text": u.text.float()[None].to(synth.device)} if synth.text_cond else {})}
        step = score_of(synth.refiner, hyp, cond).detach()[0].cpu().double()
        y, yh = u.mel.double(), u.hyp.double()
        sv, rv = step.flatten(), (y - yh).flatten()
        dot, ss, rr = float(sv @ rv), float(sv @ sv), float(rv @ rv)
        cos = dot / math.sqrt(max(ss * rr, 1e-300))
        ref_sd = y.std(1).clamp_min(1e-8)
        out.append({"id": u.id, "cos": cos, "norm_ratio": math.sqrt(ss / max(rr, 1e-300)),
                    "eta_star": dot / max(ss, 1e-300), "mse_gain": cos * cos,
                    "gv_hyp": float((yh.std(1) / ref_sd).mean()),
                    "gv_step": float(((yh + step).std(1) / ref_sd).mean())})
    return out


def score_systems(synth: Any, utts: list[EvalUtterance], grid: list[tuple[int, float]], *,
                  condition: str = "from-text", reference: bool = False, hypothesis: bool = True,
                  tag: str = "", dnsmos: bool = True) -> list[dict[str, Any]]:
    """Per-utterance rows (`Scorer.per_utt`) of a synthesizer on `utts`: the vocoded reference (if
    `reference`), the hypothesis, and the refined mel at each (steps, η) of `grid`; `condition` is
    "from-text" (`from_text_mels`, what `ebtk synthesize` does) or "teacher-forced" (`teacher_forced_mels`).
    `tag` is appended to the system names (e.g. " (fp16)" for a second copy of the same model);
    `hypothesis=False` leaves the hypothesis out (scored once for several refiners of one acoustic model).
    An fm synthesizer has no hypothesis: its rows are `FM_SYSTEM` after each k of `grid` Euler steps (η unused)."""
    if condition not in ("from-text", "teacher-forced"):
        raise EbtkError(f"condition must be from-text or teacher-forced, got {condition!r}")
    scorer = Scorer(synth.vocoder, utts, dnsmos=dnsmos)
    if reference:
        scorer.score("vocoded reference", scorer.ref_mels)
    if synth.kind == "fm":  # no hypothesis to refine: the FM output after each grid k of Euler steps
        for n, mels in fm_mels(synth, utts, tuple(sorted({k for k, _ in grid})), condition).items():
            scorer.score(FM_SYSTEM + tag, mels, steps=n)
        return scorer.per_utt
    make = from_text_mels if condition == "from-text" else teacher_forced_mels
    hyps, refined = make(synth, utts, grid=grid)
    if hypothesis:
        scorer.score("hypothesis" + tag, hyps, steps=0)
    for k, eta in grid:
        scorer.score("refined" + tag, refined[(k, eta)], steps=k, step_size=eta)
    return scorer.per_utt


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
