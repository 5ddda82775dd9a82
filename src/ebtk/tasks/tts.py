"""The `tts` task: an acoustic model makes a hypothesis mel Ŷ, an EBM refiner improves it with k steps.

Objectives and what they train (`build_model(objective)`):

* `acoustic`: the FastSpeech-style acoustic model (ebtk.tts.acoustic). Its evaluation writes
  ``hypotheses.pt`` (ebtk.tts.hypotheses) into the run dir: frame-aligned hypotheses (ground-truth MAS
  durations) of every train/val/test utterance, which refiner runs train and evaluate on.
* `fm`: the conditional flow-matching baseline (ebtk.tts.flow_matching), its own encoder trained jointly.
* anything else (delta, ssm, nce, sa-nce, sums like ssm+delta): a refiner (ebtk.tts.refiner), score or
  energy per `model.kind`, trained on random crops of (reference, hypothesis) pairs from the acoustic run
  named by `acoustic.checkpoint`.

Hypotheses of training utterances are better than those of unseen ones (the acoustic model has fitted
them), so a refiner trained on them learns too-small corrections. `acoustic.hyp_remedy` picks how the
training hypotheses are made less over-fitted:

* ``dropout`` (default): the acoustic model's dropout stays on while it makes the training-split
  hypotheses (one fixed MC-dropout draw per utterance, written by the acoustic run);
* ``dropout-fresh``: a new MC-dropout draw every time an utterance is in a batch (the acoustic model
  runs in the refiner's data loop, teacher-forced on the stored MAS durations): no fixed draw to fit;
* ``noise``: clean hypotheses plus fresh N(0, acoustic.hyp_noise²) per batch;
* ``none``: clean hypotheses. The acoustic run reports the mel MSE of each kind against the val
  split's (``mel_mse_train``, ``mel_mse_train_dropout``, ``mel_mse_val``), which measures the remedy;
* ``oof``: out-of-fold hypotheses: `acoustic.oof_runs` names n acoustic runs, each trained on one part
  (``data.train_part=k/n``, parts by a hash of the id) of the training split; every training utterance's
  hypothesis comes from a run that never saw it, as val/test hypotheses do. The text encoding, val and
  test hypotheses still come from `acoustic.checkpoint`.

The mel normalisation (global mean / std) is data-dependent initialisation: `init_weights` sets it on a
fresh run, and from then on it lives in the checkpoint with the weights, so loading a run (evaluation,
synthesis, export) never reads the corpus or the hypotheses for it.

Batches: acoustic/fm: x = padded reference mels (B, 80, T), cond = {phonemes (B, N), ph_lengths,
mel_lengths}, mask (B, 1, T). Refiners: x = reference crop (B, 80, crop), hyp = hypothesis crop,
cond = {hyp, mask[, text]}, mask (B, 1, crop).

The job-sized pieces live in ebtk.tts: config sections (`config`), batching (`batches`), the hypotheses
file (`hypotheses`), evaluation with explicit inputs (`evaluate`), run dirs (`runs`); this module wires them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ebtk.errors import EbtkError, one_line
from ebtk.io import atomic_write_text, resolve_in
from ebtk.objectives.base import Batch
from ebtk.registry import register
from ebtk.tasks.base import Task
from ebtk.tts.audio import N_MELS
from ebtk.tts.batches import collate, pad_stack, random_crops
from ebtk.tts.config import (
    MODEL_OBJECTIVES,
    SECTIONS,
    TTSAcoustic,
    TTSData,
    TTSEval,
    TTSHypotheses,
    TTSModel,
    TTSRefine,
    parse_part,
    resolve_paths,
    train_part_of,
    upgrade_legacy,
)
from ebtk.tts.corpus import builtin_corpus
from ebtk.tts.hypotheses import HYPOTHESES, load_hypotheses, write_hypotheses
from ebtk.tts.runs import CHECKPOINT, FRONTEND, acoustic_run, check_acoustic_run, run_config

__all__ = ["TTS", "TTSAcoustic", "TTSData", "TTSEval", "TTSModel", "TTSRefine", "builtin_corpus", "pad_stack"]


ACOUSTIC_STEPS = 2000  # the recipe's acoustic model (and FM)
REFINER_STEPS = 10_000  # the recipe's refiner: the shipped model's delta refiner on the text encoding


@register("task", "tts")
class TTS(Task):
    """Acoustic model, flow-matching baseline and EBM refiners on an LJSpeech-layout corpus."""

    name = "tts"
    sections: ClassVar[dict[str, type]] = SECTIONS
    # The defaults are shipped model v1's recipe, measured to help *from text* (results/tts/shipped):
    # the built-in 2400-utterance corpus, the acoustic model 2000 steps, a delta refiner on the text encoding
    # (model.*) 10 000 steps, one step at its trained η. Model v2 scales the corpus and the acoustic steps
    # (benchmarks/tts_ship.py, results/tts/shipped-v2). 3000 refiner steps help a fifth as much
    # (results/tts/v2); a smaller recipe (600 utterances, 1500 + 3000 steps) made synthesis worse.
    default_train: ClassVar[dict[str, Any]] = {"steps": REFINER_STEPS, "batch_size": 32, "lr": 5e-4,
                                               "log_every": 100, "ckpt_every": 500, "grad_clip": 1.0}
    default_sampler: ClassVar[dict[str, Any]] = {"steps": 20, "step_size": 0.01, "init": "data"}
    # NCE: the hypothesis kernel N(Ŷ, 1²) in raw log-mel units, the scale of the hypotheses' errors; with
    # it the untrained EnergyRefiner (≈ the same kernel) starts the classifier near chance, not saturated.
    default_objective_overrides: ClassVar[dict[str, dict[str, Any]]] = {
        "nce": {"noise": "hyp", "noise_std": 1.0},
        "acoustic": {"train": {"steps": ACOUSTIC_STEPS}},
        "fm": {"train": {"steps": ACOUSTIC_STEPS}},
    }
    resume_free: ClassVar[tuple[str, ...]] = ("eval", "refine")  # evaluation-only sections

    def __init__(self, config: dict[str, Any], run_dir: Path | None = None):
        config = upgrade_legacy(config)
        super().__init__(config, run_dir)
        self.data_cfg: TTSData = self.cfg["data"]
        self.model_cfg: TTSModel = self.cfg["model"]
        self.ac_cfg: TTSAcoustic = self.cfg["acoustic"]
        self.refine_cfg: TTSRefine = self.cfg["refine"]
        self.eval_cfg: TTSEval = self.cfg["eval"]
        self.hyp_cfg: TTSHypotheses = self.cfg["hypotheses"]
        self.objective_name: str = (config.get("objective") or {}).get("name", "acoustic")
        self.shape = (N_MELS, self.data_cfg.crop)
        self._corpus = None
        self._frontend = None
        self._splits: dict[str, list[str]] | None = None
        self._phonemes: dict[str, torch.Tensor] = {}
        self._mels: dict[str, torch.Tensor] = {}
        self._hyps: dict[str, Any] | None = None
        self._oof: dict[str, torch.Tensor] | None = None  # acoustic.hyp_remedy=oof
        self._acoustic_model: nn.Module | None = None  # acoustic.hyp_remedy=dropout-fresh
        self._vocoder = None

    @classmethod
    def resolve_paths(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Make `data.path` and `acoustic.checkpoint` absolute (against the cwd) before a run dir stores them."""
        return resolve_paths(config)

    @property
    def is_refiner(self) -> bool:
        return self.objective_name not in MODEL_OBJECTIVES

    @property
    def decoder_only(self) -> bool:
        """`fm` on a frozen acoustic encoder (acoustic.freeze): only its decoder learns, so it trains on
        `data.crop`-frame crops of (reference, the acoustic run's aligned prior means μ_y), as Matcha-TTS
        trains its decoder on random segments, instead of re-encoding and re-aligning whole utterances."""
        return self.objective_name == "fm" and self.ac_cfg.freeze

    @property
    def refine_step_size(self) -> float:
        """The η of refinement: refine.step_size, or (when null) the one the objective trained for."""
        return self.refine_cfg.effective_step_size(self.config.get("objective"))

    @property
    def external(self) -> bool:
        """A refiner on another model's mels (`hypotheses.dir`), not on an ebtk acoustic run's."""
        return self.is_refiner and bool(self.hyp_cfg.dir)

    def acoustic_dir(self) -> Path | None:
        """The `acoustic.checkpoint` run dir (relative paths are read against this run dir)."""
        return acoustic_run(self.run_dir, self.config)

    # -- corpus -------------------------------------------------------------------------------------
    def corpus_path(self) -> Path:
        if self.is_refiner and not self.external:
            return Path(self.hypotheses()["corpus"])
        if self.data_cfg.path:
            p = resolve_in(self.run_dir, self.data_cfg.path)
            if not (p / "metadata.csv").is_file():
                raise EbtkError(f"data.path={p} is not an LJSpeech-layout corpus (no metadata.csv); "
                                "hint: make one with `ebtk corpus make DIR`, or leave data.path empty")
            return p.resolve()
        d = self.data_cfg
        return builtin_corpus(d.n_utts, d.seed, d.engine, d.text).resolve()

    @property
    def corpus(self) -> Any:
        if self._corpus is None:
            from ebtk.tts.dataset import LJSpeechCorpus

            c = LJSpeechCorpus(self.corpus_path())
            c.validate()
            self._corpus = c
        return self._corpus

    def items(self) -> dict[str, tuple[str, str, Path]]:
        """id -> (text, normalized text, wav path)."""
        return {it.id: (it.text, it.normalized, Path(it.wav_path)) for it in self.corpus.items}

    def splits(self) -> dict[str, list[str]]:
        """{train, val, test[, unseen-words]: [ids]}; refiners use the acoustic run's (utterances too short to
        align left out)."""
        if self._splits is None:
            if self.is_refiner and not self.external:
                self._splits = {k: list(v) for k, v in self.hypotheses()["splits"].items()}
            else:
                d = self.data_cfg
                sp = self.corpus.splits(val=d.n_val, test=d.n_test, seed=d.seed, unseen=d.n_unseen)
                self._splits = {k: list(v) for k, v in sp.items()}
            if not self._splits["train"]:
                raise EbtkError("the corpus has no training utterances; hint: raise data.n_utts or lower n_val/n_test")
        return self._splits

    @property
    def frontend(self) -> Any:
        if self._frontend is None:
            import json

            from ebtk.tts.text import TextFrontend

            saved = self._frontend_file()
            if saved is not None and saved.is_file():
                self._frontend = TextFrontend.from_state_dict(json.loads(saved.read_text()))
            else:
                self._frontend = TextFrontend()
        return self._frontend

    def _frontend_file(self) -> Path | None:
        if self.is_refiner:
            ac = self.acoustic_dir()
            return ac / FRONTEND if ac is not None else None
        return self.run_dir / FRONTEND if self.run_dir is not None else None

    def phonemes(self, ids: list[str]) -> list[torch.Tensor]:
        missing = [i for i in ids if i not in self._phonemes]
        if missing:
            items = self.items()
            enc = self.frontend.encode_batch([items[i][1] for i in missing])
            for i, e in zip(missing, enc):
                self._phonemes[i] = torch.tensor(e, dtype=torch.long)
        return [self._phonemes[i] for i in ids]

    def mel(self, uid: str) -> torch.Tensor:
        """Reference log-mel (80, F) of one utterance (from the corpus' cache)."""
        if uid not in self._mels:
            self._mels[uid] = torch.as_tensor(self.corpus.mel(uid)).float()
        return self._mels[uid]

    def train_ids(self) -> list[str]:
        if not hasattr(self, "_train_ok"):
            ids = self.splits()["train"]
            if self.is_refiner:
                self._train_ok = ids
            else:
                ph = self.phonemes(ids)
                ok = [i for i, p in zip(ids, ph) if self.mel(i).shape[-1] >= len(p)]
                if len(ok) < len(ids):
                    warnings.warn(f"{len(ids) - len(ok)} training utterances have fewer frames than phonemes "
                                  "and are skipped", stacklevel=2)
                part = parse_part(self.data_cfg.train_part)
                if part is not None:
                    ok = [i for i in ok if train_part_of(i, part[1]) == part[0]]
                if not ok:
                    raise EbtkError("no training utterance is long enough to align (in data.train_part)")
                self._train_ok = ok
        return self._train_ok

    def mel_stats(self) -> tuple[float, float]:
        """Global mean and std of the training log-mels (≤ 200 utterances), or the acoustic run's for
        refiners on an ebtk acoustic run: the models' normalisation, computed once per fresh run (`init_weights`)."""
        if self.is_refiner and not self.external:
            h = self.hypotheses()
            return float(h["mel_mean"]), float(h["mel_std"])
        mels = torch.cat([self.mel(i).flatten() for i in self.train_ids()[:200]])
        return float(mels.mean()), float(mels.std().clamp_min(1e-3))

    # -- batches ------------------------------------------------------------------------------------
    def model_batch(self, ids: list[str]) -> Batch:
        """Padded batch of whole utterances for acoustic / fm training and evaluation."""
        b = collate(self.phonemes(ids), [self.mel(i) for i in ids], self.frontend.pad_id)
        cond = {"phonemes": b["phonemes"], "ph_lengths": b["ph_lengths"], "mel_lengths": b["mel_lengths"]}
        return Batch(x=b["mel"], cond=cond, mask=b["mask"])

    def train_batch(self, gen: torch.Generator, n: int) -> Batch:
        ids = self.train_ids()
        whole = not (self.is_refiner or self.decoder_only)
        k = self.data_cfg.bucket if whole and self.data_cfg.bucket > 1 else 1
        pick = [ids[int(j)] for j in torch.randint(len(ids), (n * k,), generator=gen)]
        if k > 1:  # data.bucket: one of k length-sorted chunks (each drawn utterance equally likely to stay)
            chunk = int(torch.randint(k, (1,), generator=gen))
            pick = sorted(pick, key=lambda i: self.mel(i).shape[-1])[chunk * n:(chunk + 1) * n]
        if whole:
            return self.model_batch(pick)
        return self.refiner_batch(pick, gen)

    def refiner_batch(self, ids: list[str], gen: torch.Generator) -> Batch:
        """Random `data.crop`-frame crops of (reference, hypothesis[, text = μ_y]) from the training split."""
        h = self.hypotheses()
        remedy = self.ac_cfg.hyp_remedy
        if remedy == "oof":
            hyps = [self.oof_hypotheses()[i] for i in ids]
        elif remedy == "dropout-fresh":
            hyps = self.fresh_dropout_hypotheses(ids)
        else:
            hyps = [h["hyp_dropout" if remedy == "dropout" and not self.external else "hyp"][i] for i in ids]
        with_text = self.model_cfg.text_cond or self.decoder_only
        kinds = [hyps] + ([[h["text"][i] for i in ids]] if with_text else [])
        x, (hyp, *text), mask = random_crops([self.mel(i) for i in ids], kinds, self.data_cfg.crop, gen)
        if self.ac_cfg.hyp_remedy == "noise" and self.ac_cfg.hyp_noise > 0:
            hyp = hyp + self.ac_cfg.hyp_noise * torch.randn(hyp.shape, generator=gen) * mask
        cond = {"hyp": hyp, "mask": mask}
        if text:
            cond["text"] = text[0]
        return Batch(x=x, cond=cond, hyp=hyp, mask=mask)

    def init_scale(self) -> float:
        return float(self.mel_stats()[1])

    # -- hypotheses from the acoustic run -----------------------------------------------------------
    def hypotheses(self) -> dict[str, Any]:
        """The acoustic run's hypotheses.pt (refiner objectives, and `fm` with acoustic.freeze), or with
        `hypotheses.dir` the external model's mels in the same form (`external_hypotheses`)."""
        if self._hyps is None and self.external:
            self._hyps = self.external_hypotheses()
        if self._hyps is None:
            ck = self.acoustic_dir()
            if ck is None:
                raise EbtkError(
                    f"objective {self.objective_name!r} trains a refiner on an acoustic model's hypotheses: set "
                    "acoustic.checkpoint=RUN_DIR; hint: train one with `ebtk train tts --objective acoustic`"
                )
            check_acoustic_run(ck)
            h = load_hypotheses(ck)
            if self.data_cfg.path and resolve_in(self.run_dir, self.data_cfg.path).resolve() != Path(h["corpus"]):
                raise EbtkError(f"data.path={self.data_cfg.path} differs from the acoustic run's corpus "
                                f"{h['corpus']}; hint: leave data.path empty for refiner runs")
            self._hyps = h
        return self._hyps

    def external_hypotheses(self) -> dict[str, Any]:
        """`hypotheses.dir`'s mels as a hypotheses dict (ebtk.tts.hypotheses' keys): every utterance of the
        corpus' split checked and DTW-aligned to its reference (ebtk.tts.external), with no text encoding;
        the mel normalisation is the training references' (`mel_stats`)."""
        from ebtk.tts.external import external_hypotheses

        splits = self.splits()
        ids = [i for v in splits.values() for i in v]
        got = external_hypotheses(resolve_in(self.run_dir, self.hyp_cfg.dir), {i: self.mel(i) for i in ids})
        return {"corpus": str(self.corpus_path()), "splits": splits, "hyp": got["hyp"], "text": {},
                "n_aligned": got["n_aligned"], "length_ratio": got["length_ratio"]}

    def oof_hypotheses(self) -> dict[str, torch.Tensor]:
        """acoustic.hyp_remedy=oof: {training id: the hypothesis of an `acoustic.oof_runs` run that did not
        train on it}. The runs must cover the parts 0/n … n−1/n of the same corpus."""
        if self._oof is None:
            corpus = self.hypotheses()["corpus"]
            by_part: dict[int, dict[str, Any]] = {}
            n = 0
            for p in self.ac_cfg.oof_runs:
                run = resolve_in(self.run_dir, p)
                check_acoustic_run(run)
                cfg = run_config(run) or {}
                part = parse_part((cfg.get("data") or {}).get("train_part", ""))
                if part is None:
                    raise EbtkError(f"acoustic.oof_runs: {run} trained on the whole training split; "
                                    "hint: train each with data.train_part=k/n")
                h = load_hypotheses(run)
                if h["corpus"] != corpus:
                    raise EbtkError(f"acoustic.oof_runs: {run} is on {h['corpus']}, not {corpus}")
                by_part[part[0]], n = h, part[1]
            if sorted(by_part) != list(range(n)):
                raise EbtkError(f"acoustic.oof_runs must cover the parts 0/{n} … {n - 1}/{n}, got {sorted(by_part)}")
            self._oof = {i: by_part[(train_part_of(i, n) + 1) % n]["hyp"][i] for i in self.train_ids()}
        return self._oof

    @torch.no_grad()
    def fresh_dropout_hypotheses(self, ids: list[str]) -> list[torch.Tensor]:
        """acoustic.hyp_remedy=dropout-fresh: teacher-forced hypotheses of `ids` from the acoustic run's model
        with its dropout on (a new draw per call; the global RNG, which the trainer seeds per step)."""
        if self._acoustic_model is None:
            from ebtk.tts.bundle import acoustic_section, build_acoustic

            self._acoustic_model = build_acoustic(acoustic_section(self.acoustic_dir()))
        model = self._acoustic_model.train()
        h = self.hypotheses()
        b = collate(self.phonemes(ids), [self.mel(i) for i in ids], self.frontend.pad_id)
        dur = torch.zeros(len(ids), b["phonemes"].shape[1], dtype=torch.long)
        for k, i in enumerate(ids):
            dur[k, : len(h["durations"][i])] = h["durations"][i]
        hyp, _, _ = model.hypothesis(b["phonemes"], b["ph_lengths"], dur)
        return [hyp[k, :, : int(t)].half() for k, t in enumerate(b["mel_lengths"])]

    def write_hypotheses(self, model: nn.Module, path: Path, batch_size: int = 8) -> dict[str, float | None]:
        """ebtk.tts.hypotheses.write_hypotheses on this corpus' every utterance (an acoustic run's evaluation)."""
        splits = self.splits()
        ids = [i for v in splits.values() for i in v]
        utts = {i: (p, self.mel(i)) for i, p in zip(ids, self.phonemes(ids))}
        return write_hypotheses(path, model, utts, splits, self.corpus_path(), self.frontend.pad_id, batch_size)

    # -- models -------------------------------------------------------------------------------------
    def build_model(self, objective: str) -> nn.Module:
        """The untrained model; reads no data (the mel statistics come with `init_weights` or a checkpoint)."""
        m = self.model_cfg
        if objective not in MODEL_OBJECTIVES:
            from ebtk.tts.refiner import build_refiner

            return build_refiner(m.kind, channels=m.channels, mults=tuple(m.mults), text_cond=m.text_cond)
        n_sym = len(self.frontend.symbols)
        saved = self._frontend_file()
        if saved is not None and not saved.is_file():
            import json

            atomic_write_text(saved, json.dumps(self.frontend.state_dict()))
        if objective == "acoustic":
            from ebtk.tts.acoustic import AcousticModel

            return AcousticModel(n_sym, self.ac_cfg.model_config())
        from ebtk.tts.flow_matching import FlowMatchingTTS

        fm = FlowMatchingTTS(n_sym, self.ac_cfg.model_config(), unet_channels=m.channels, mults=tuple(m.mults),
                             n_steps=max(self.eval_cfg.fm_steps))
        if self.ac_cfg.freeze:
            if not self.ac_cfg.checkpoint:
                raise EbtkError("acoustic.freeze=true needs acoustic.checkpoint (the acoustic run to start from)")
            for name, p in fm.named_parameters():
                if not name.startswith("decoder."):
                    p.requires_grad_(False)
        return fm

    def init_weights(self, model: nn.Module) -> None:
        """A fresh run: the mel normalisation from the data (the training mels, or the acoustic run's for
        refiners); a fresh `fm` run with acoustic.checkpoint also starts from that run's every weight but
        the decoder's (normalisation included)."""
        model.set_mel_stats(*self.mel_stats())
        if self.external:
            self.hypotheses()  # every file checked (and aligned) before the first step
        if self.objective_name != "fm" or not self.ac_cfg.checkpoint:
            return
        from ebtk.train.checkpoint import load_checkpoint

        ck = self.acoustic_dir()
        check_acoustic_run(ck)
        state = load_checkpoint(ck / CHECKPOINT)["model"]
        shared = {k: v for k, v in state.items() if not k.startswith("decoder.")}
        try:
            missing, unexpected = model.load_state_dict(shared, strict=False)
        except RuntimeError as e:
            raise EbtkError(f"acoustic.checkpoint={ck} does not fit this FM model's acoustic.* sizes: "
                            f"{one_line(e)}") from None
        if unexpected or any(not k.startswith("decoder.") for k in missing):
            raise EbtkError(f"acoustic.checkpoint={ck}: weights do not match (missing "
                            f"{[k for k in missing if not k.startswith('decoder.')][:3]}, unexpected {unexpected[:3]})")

    def load_acoustic(self, device: str | torch.device = "cpu") -> nn.Module:
        """The acoustic model of `acoustic.checkpoint`, from its checkpoint alone (no corpus, no trainer)."""
        from ebtk.tts.bundle import acoustic_section, build_acoustic

        ck = self.acoustic_dir()
        if ck is None:
            raise EbtkError("acoustic.checkpoint is not set; hint: point it at a `tts --objective acoustic` run")
        check_acoustic_run(ck)
        return build_acoustic(acoustic_section(ck)).to(device).eval()

    @property
    def vocoder(self) -> Any:
        """HiFi-GAN (LJSpeech weights), on the device `vocoder_device` names (the model's, during evaluation)."""
        if self._vocoder is None or str(self._vocoder.device) != str(torch.device(self.vocoder_device)):
            from ebtk.tts.vocoder import Vocoder

            self._vocoder = Vocoder.load(self.vocoder_device)
        return self._vocoder

    vocoder_device: str = "cpu"

    def data_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise EbtkError("tts has no Gaussian data statistics (80×crop dims); hint: use objective.noise=hyp, "
                        "the hypothesis kernel N(Ŷ, noise_std²)")

    # -- evaluation ---------------------------------------------------------------------------------
    def eval_utterances(self, ids: list[str]) -> list[Any]:
        """`EvalUtterance`s of `ids`: recording, reference mel, and phonemes or (refiners) hypotheses."""
        from ebtk.tts.audio import load_wav
        from ebtk.tts.evaluate import EvalUtterance

        items = self.items()
        if not self.is_refiner:
            return [EvalUtterance(i, load_wav(items[i][2]), self.mel(i), phonemes=p)
                    for i, p in zip(ids, self.phonemes(ids))]
        h = self.hypotheses()
        return [EvalUtterance(i, load_wav(items[i][2]), self.mel(i), hyp=h["hyp"][i], text=h["text"].get(i))
                for i in ids]

    def test_ids(self) -> list[str]:
        """The first eval.n_test ids of the evaluated split (eval.split: test, val or unseen-words)."""
        split = self.eval_cfg.split
        if split not in self.splits():
            raise EbtkError(f"eval.split={split}: this run has no such split (its splits: {', '.join(self.splits())}); "
                            "hint: data.n_unseen > 0 makes the unseen-words split")
        ids = self.splits()[split][: self.eval_cfg.n_test]
        if self.is_refiner:
            ids = [i for i in ids if i in self.hypotheses()["hyp"]]
        return ids

    def evaluate(self, model: nn.Module, objective: nn.Module, run_dir: Path) -> dict[str, Any]:
        from ebtk.tts import evaluate as ev

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        model.eval()
        self.vocoder_device = str(next(model.parameters()).device)
        voc, cfg, pad = self.vocoder, self.eval_cfg, self.frontend.pad_id
        name = self.objective_name
        if name == "acoustic":
            out = self.write_hypotheses(model, run_dir / HYPOTHESES)
            metrics = {**ev.evaluate_acoustic(model, voc, self.eval_utterances(self.test_ids()), cfg, run_dir, pad),
                       **out}
        elif name == "fm":
            metrics = ev.evaluate_fm(model, voc, self.eval_utterances(self.test_ids()), cfg, run_dir, pad)
        else:
            metrics = ev.evaluate_refiner(model, voc, self.eval_utterances(self.test_ids()), cfg, run_dir,
                                          self.refine_cfg.steps, self.refine_step_size, self.model_cfg.text_cond)
        self.log_media(model, run_dir, int(getattr(objective, "steps_seen", 0)))
        return metrics

    @torch.no_grad()
    def log_media(self, model: nn.Module, run_dir: Path, step: int) -> None:
        """Mel images and audio of the first val utterance (reference, hypothesis, refined / FM) to
        TensorBoard under run_dir/tb, next to the trainer's scalars."""
        from ebtk.tts.evaluate import aligned_hypotheses
        from ebtk.tts.media import log_media
        from ebtk.tts.refiner import refine

        val = self.splits()["val"][:1]
        if not val:
            return
        u = self.eval_utterances(val)[0]
        mels = {"reference": u.mel}
        pad = self.frontend.pad_id
        if self.objective_name == "acoustic":
            mels["hypothesis"] = aligned_hypotheses(model, [u], pad)[0]
        elif self.objective_name == "fm":
            mels["flow_matching"] = aligned_hypotheses(model, [u], pad, n_steps=max(self.eval_cfg.fm_steps))[0]
        else:
            dev = next(model.parameters()).device
            hyp = u.hyp.float()[None].to(dev)
            cond = {"hyp": hyp}
            if self.model_cfg.text_cond:
                cond["text"] = u.text.float()[None].to(dev)
            mels["hypothesis"] = u.hyp.float()
            mels["refined"] = refine(model, hyp, self.refine_cfg.steps, self.refine_step_size, cond)[0][0].cpu()
        wavs = {k: self.vocoder(v.float()).cpu().numpy().astype(np.float32) for k, v in mels.items()}
        wavs["recording"] = u.wav
        log_media(run_dir / "tb", step, u.id, mels, wavs)

    def sample(self, model: nn.Module, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        raise EbtkError("tts runs are sampled from text: use `ebtk synthesize RUN_DIR --text ... --out FILE.wav`")

    def save_samples(self, x: torch.Tensor, path: Path) -> None:
        raise EbtkError("tts runs are sampled from text: use `ebtk synthesize RUN_DIR --text ... --out FILE.wav`")

    def plots(self, model: nn.Module, run_dir: Path) -> list[Path]:
        p = Path(run_dir) / "mels.png"
        return [p] if p.is_file() else []
