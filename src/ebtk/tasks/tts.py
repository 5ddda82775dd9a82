"""The `tts` task: an acoustic model makes a hypothesis mel Ŷ, an EBM refiner improves it with k steps.

Objectives and what they train (`build_model(objective)`):

* `acoustic`: the FastSpeech-style acoustic model (ebtk.tts.acoustic). Its evaluation writes
  ``hypotheses.pt`` into the run dir: frame-aligned hypotheses (ground-truth MAS durations) of every
  train/val/test utterance, which refiner runs train and evaluate on.
* `fm`: the conditional flow-matching baseline (ebtk.tts.flow_matching), its own encoder trained jointly.
* anything else (delta, ssm, nce, sa-nce, sums like ssm+delta): a refiner (ebtk.tts.refiner), score or
  energy per `model.kind`, trained on random crops of (reference, hypothesis) pairs from the acoustic run
  named by `acoustic.checkpoint`.

Hypotheses of training utterances are better than those of unseen ones (the acoustic model has fitted
them), so a refiner trained on them learns too-small corrections. `acoustic.hyp_remedy` picks how the
training hypotheses are made less over-fitted:

* ``dropout`` (default): the acoustic model's dropout stays on while it makes the training-split
  hypotheses (one fixed MC-dropout draw per utterance, written by the acoustic run);
* ``noise``: clean hypotheses plus fresh N(0, acoustic.hyp_noise²) per batch;
* ``none``: clean hypotheses. The acoustic run reports the mel MSE of each kind against the val
  split's (``mel_mse_train``, ``mel_mse_train_dropout``, ``mel_mse_val``), which measures the remedy.

Batches: acoustic/fm: x = padded reference mels (B, 80, T), cond = {phonemes (B, N), ph_lengths,
mel_lengths}, mask (B, 1, T). Refiners: x = reference crop (B, 80, crop), hyp = hypothesis crop,
cond = {hyp, mask[, text]}, mask (B, 1, crop).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch
from ebtk.registry import register
from ebtk.tasks.base import Task
from ebtk.tts.acoustic import AcousticConfig

HYPOTHESES = "hypotheses.pt"
FRONTEND = "frontend.json"
HYP_VERSION = 1
MODEL_OBJECTIVES = ("acoustic", "fm")


def default_cache_dir() -> Path:
    """Where the built-in corpus is generated: $EBTK_CACHE_DIR, else $XDG_CACHE_HOME/ebtk (~/.cache/ebtk)."""
    from ebtk.tts.dataset import user_cache_dir

    return user_cache_dir()


def builtin_corpus(n: int, seed: int = 0, engine: str = "flite") -> Path:
    """The built-in corpus of `n` utterances in the cache dir, generated on first use (make_corpus)."""
    from ebtk.tts.corpus import make_corpus

    path = default_cache_dir() / f"corpus-{engine}-n{n}-s{seed}"
    if (path / "metadata.csv").is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    make_corpus(tmp, n=n, seed=seed, engine=engine)
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished first: keep its copy
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path


# -- config sections --------------------------------------------------------------------------------------
@dataclass
class TTSData:
    """path: LJSpeech-layout corpus dir ("" = the built-in corpus, made in the cache dir on first use);
    n_utts / engine / seed: the built-in corpus; n_val / n_test: held-out utterances; crop: refiner
    training crop in frames (a multiple of 4 suits the U-Net)."""

    path: str = ""
    n_utts: int = 16
    engine: str = "flite"
    seed: int = 0
    n_val: int = 2
    n_test: int = 2
    crop: int = 64

    def validate(self) -> None:
        if self.n_utts < 4 or self.n_val < 1 or self.n_test < 1 or self.crop < 8:
            raise EbtkError("data: n_utts ≥ 4, n_val ≥ 1, n_test ≥ 1 and crop ≥ 8 are required")
        if not self.path and self.n_val + self.n_test >= self.n_utts:
            raise EbtkError(f"data.n_val + data.n_test must leave training utterances out of data.n_utts="
                            f"{self.n_utts}; hint: raise data.n_utts")
        if self.engine not in ("flite", "espeak"):
            raise EbtkError(f"data.engine must be flite or espeak, got {self.engine!r}")


@dataclass
class TTSModel:
    """The refiner (and the FM decoder's U-Net): kind score|energy, U-Net base channels and level
    multipliers; text_cond adds the acoustic model's aligned prior means as a second condition."""

    kind: str = "score"
    channels: int = 32
    mults: list[int] = field(default_factory=lambda: [1, 2])
    text_cond: bool = False

    def validate(self) -> None:
        if self.kind not in ("score", "energy"):
            raise EbtkError(f"model.kind must be score or energy, got {self.kind!r}")
        if self.channels < 8 or not self.mults or min(self.mults) < 1:
            raise EbtkError("model.channels must be ≥ 8 and model.mults positive integers")


@dataclass
class TTSAcoustic(AcousticConfig):
    """The acoustic model's size (AcousticConfig: also the FM baseline's encoder), plus checkpoint: run dir
    of a trained acoustic model (required by refiner objectives; for `fm` optional: the FM baseline then
    starts from that run's encoder, prior and duration predictor, so that it is compared on the *same*
    encoder, and `freeze=true` keeps them fixed and trains the decoder alone); hyp_remedy: dropout | noise |
    none (module docstring); hyp_noise: std for `noise`."""

    checkpoint: str = ""
    hyp_remedy: str = "dropout"
    hyp_noise: float = 0.1
    freeze: bool = False

    def validate(self) -> None:
        if self.hyp_remedy not in ("dropout", "noise", "none"):
            raise EbtkError(f"acoustic.hyp_remedy must be dropout, noise or none, got {self.hyp_remedy!r}")
        if self.hyp_noise < 0:
            raise EbtkError("acoustic.hyp_noise must be ≥ 0")
        super().validate()

    def model_config(self) -> AcousticConfig:
        return AcousticConfig(**{f.name: getattr(self, f.name) for f in fields(AcousticConfig)})


@dataclass
class TTSRefine:
    """Refinement used by `synthesize` and for the *_refined metrics: steps of Y ← Y + step_size·s(Y)."""

    steps: int = 1
    step_size: float = 1.0
    length_scale: float = 1.0  # synthesize: duration multiplier

    def validate(self) -> None:
        if self.steps < 0 or self.step_size <= 0 or self.length_scale <= 0:
            raise EbtkError("refine.steps must be ≥ 0, refine.step_size and refine.length_scale > 0")


@dataclass
class TTSEval:
    """n_test: test utterances evaluated; steps × step_sizes: the refinement table; fm_steps: Euler
    steps of the FM baseline; dnsmos: compute DNSMOS; n_wavs: utterances written as wavs."""

    n_test: int = 2
    steps: list[int] = field(default_factory=lambda: [1, 2, 5, 10, 100])
    step_sizes: list[float] = field(default_factory=lambda: [0.5, 1.0])
    fm_steps: list[int] = field(default_factory=lambda: [1, 2, 4, 10])
    dnsmos: bool = True
    n_wavs: int = 2

    def validate(self) -> None:
        if self.n_test < 1 or not self.steps or min(self.steps) < 0 or not self.step_sizes:
            raise EbtkError("eval: n_test ≥ 1 and non-empty steps (≥ 0) and step_sizes are required")
        if min(self.step_sizes) <= 0 or not self.fm_steps or min(self.fm_steps) < 1:
            raise EbtkError("eval.step_sizes must be > 0 and eval.fm_steps ≥ 1")


def _field(item: Any, name: str, index: int) -> Any:
    return getattr(item, name) if hasattr(item, name) else item[index]


def pad_stack(seqs: list[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad along the last axis. shape: [(..., L_i)] -> ((B, ..., max L), lengths (B,))."""
    lengths = torch.tensor([s.shape[-1] for s in seqs])
    out = seqs[0].new_full((len(seqs), *seqs[0].shape[:-1], int(lengths.max())), value)
    for i, s in enumerate(seqs):
        out[i, ..., : s.shape[-1]] = s
    return out, lengths


@register("task", "tts")
class TTS(Task):
    """Acoustic model, flow-matching baseline and EBM refiners on an LJSpeech-layout corpus."""

    name = "tts"
    sections: ClassVar[dict[str, type]] = {
        "data": TTSData, "model": TTSModel, "acoustic": TTSAcoustic, "refine": TTSRefine, "eval": TTSEval,
    }
    default_train: ClassVar[dict[str, Any]] = {"steps": 300, "batch_size": 8, "lr": 1e-3, "log_every": 25,
                                               "ckpt_every": 100, "grad_clip": 5.0}
    default_sampler: ClassVar[dict[str, Any]] = {"steps": 10, "step_size": 0.01, "init": "data"}
    # NCE: the hypothesis kernel N(Ŷ, 1²) in raw log-mel units, the scale of the hypotheses' errors; with
    # it the untrained EnergyRefiner (≈ the same kernel) starts the classifier near chance, not saturated.
    default_objective_overrides: ClassVar[dict[str, dict[str, Any]]] = {"nce": {"noise": "hyp", "noise_std": 1.0}}

    def __init__(self, config: dict[str, Any], run_dir: Path | None = None):
        super().__init__(config, run_dir)
        self.data_cfg: TTSData = self.cfg["data"]
        self.model_cfg: TTSModel = self.cfg["model"]
        self.ac_cfg: TTSAcoustic = self.cfg["acoustic"]
        self.refine_cfg: TTSRefine = self.cfg["refine"]
        self.eval_cfg: TTSEval = self.cfg["eval"]
        self.objective_name: str = (config.get("objective") or {}).get("name", "acoustic")
        self.shape = (80, self.data_cfg.crop)
        self._corpus = None
        self._frontend = None
        self._splits: dict[str, list[str]] | None = None
        self._phonemes: dict[str, torch.Tensor] = {}
        self._mels: dict[str, torch.Tensor] = {}
        self._hyps: dict[str, Any] | None = None
        self._vocoder = None

    @property
    def is_refiner(self) -> bool:
        return self.objective_name not in MODEL_OBJECTIVES

    @property
    def decoder_only(self) -> bool:
        """`fm` on a frozen acoustic encoder (acoustic.freeze): only its decoder learns, so it trains on
        `data.crop`-frame crops of (reference, the acoustic run's aligned prior means μ_y), as Matcha-TTS
        trains its decoder on random segments, instead of re-encoding and re-aligning whole utterances."""
        return self.objective_name == "fm" and self.ac_cfg.freeze

    # -- corpus -------------------------------------------------------------------------------------
    def corpus_path(self) -> Path:
        if self.is_refiner:
            return Path(self.hypotheses()["corpus"])
        if self.data_cfg.path:
            p = Path(self.data_cfg.path).expanduser()
            if not (p / "metadata.csv").is_file():
                raise EbtkError(f"data.path={p} is not an LJSpeech-layout corpus (no metadata.csv); "
                                "hint: make one with `ebtk corpus make DIR`, or leave data.path empty")
            return p.resolve()
        return builtin_corpus(self.data_cfg.n_utts, self.data_cfg.seed, self.data_cfg.engine).resolve()

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
        return {_field(it, "id", 0): (_field(it, "text", 1), _field(it, "normalized", 2),
                                      Path(_field(it, "wav_path", 3))) for it in self.corpus.items}

    def splits(self) -> dict[str, list[str]]:
        """{train, val, test: [ids]}; utterances with fewer frames than phonemes are left out of train."""
        if self._splits is None:
            if self.is_refiner:
                self._splits = {k: list(v) for k, v in self.hypotheses()["splits"].items()}
            else:
                d = self.data_cfg
                sp = self.corpus.splits(val=d.n_val, test=d.n_test, seed=d.seed)
                self._splits = {k: list(sp[k]) for k in ("train", "val", "test")}
            if not self._splits["train"]:
                raise EbtkError("the corpus has no training utterances; hint: raise data.n_utts or lower n_val/n_test")
        return self._splits

    @property
    def frontend(self) -> Any:
        if self._frontend is None:
            from ebtk.tts.text import TextFrontend

            saved = self._frontend_file()
            if saved is not None and saved.is_file():
                self._frontend = TextFrontend.from_state_dict(json.loads(saved.read_text()))
            else:
                self._frontend = TextFrontend()
        return self._frontend

    def _frontend_file(self) -> Path | None:
        if self.is_refiner:
            return Path(self.ac_cfg.checkpoint) / FRONTEND if self.ac_cfg.checkpoint else None
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
                if not ok:
                    raise EbtkError("no training utterance is long enough to align")
                self._train_ok = ok
        return self._train_ok

    def mel_stats(self) -> tuple[float, float]:
        """Global mean and std of the training log-mels (≤ 200 utterances): the models' normalisation."""
        if self.is_refiner:
            h = self.hypotheses()
            return float(h["mel_mean"]), float(h["mel_std"])
        mels = torch.cat([self.mel(i).flatten() for i in self.train_ids()[:200]])
        return float(mels.mean()), float(mels.std().clamp_min(1e-3))

    # -- batches ------------------------------------------------------------------------------------
    def model_batch(self, ids: list[str]) -> Batch:
        """Padded batch of whole utterances for acoustic / fm training and evaluation."""
        ph, ph_len = pad_stack(self.phonemes(ids), self.frontend.pad_id)
        mel, mel_len = pad_stack([self.mel(i) for i in ids])
        from ebtk.tts.acoustic import sequence_mask

        mask = sequence_mask(mel_len, mel.shape[-1])
        return Batch(x=mel, cond={"phonemes": ph, "ph_lengths": ph_len, "mel_lengths": mel_len}, mask=mask)

    def train_batch(self, gen: torch.Generator, n: int) -> Batch:
        ids = self.train_ids()
        pick = [ids[int(k)] for k in torch.randint(len(ids), (n,), generator=gen)]
        if not (self.is_refiner or self.decoder_only):
            return self.model_batch(pick)
        return self.refiner_batch(pick, gen)

    def refiner_batch(self, ids: list[str], gen: torch.Generator) -> Batch:
        """Random `data.crop`-frame crops of (reference, hypothesis[, text = μ_y]) from the training split."""
        h = self.hypotheses()
        crop = self.data_cfg.crop
        train_key = "hyp_dropout" if self.ac_cfg.hyp_remedy == "dropout" else "hyp"
        n = len(ids)
        x = torch.zeros(n, 80, crop)
        hyp = torch.zeros(n, 80, crop)
        text = torch.zeros(n, 80, crop) if self.model_cfg.text_cond or self.decoder_only else None
        mask = torch.zeros(n, 1, crop)
        starts = torch.rand(n, generator=gen)
        for k, uid in enumerate(ids):
            ref = self.mel(uid)
            t = ref.shape[-1]
            s = int(starts[k] * (t - crop + 1)) if t > crop else 0
            e = min(t, s + crop)
            x[k, :, : e - s] = ref[:, s:e]
            hyp[k, :, : e - s] = h[train_key][uid][:, s:e].float()
            if text is not None:
                text[k, :, : e - s] = h["text"][uid][:, s:e].float()
            mask[k, :, : e - s] = 1
        if self.ac_cfg.hyp_remedy == "noise" and self.ac_cfg.hyp_noise > 0:
            hyp = hyp + self.ac_cfg.hyp_noise * torch.randn(hyp.shape, generator=gen) * mask
        cond = {"hyp": hyp, "mask": mask}
        if text is not None:
            cond["text"] = text
        return Batch(x=x, cond=cond, hyp=hyp, mask=mask)

    def init_scale(self) -> float:
        return float(self.mel_stats()[1])

    # -- hypotheses from the acoustic run -----------------------------------------------------------
    def hypotheses(self) -> dict[str, Any]:
        """The acoustic run's hypotheses.pt (refiner objectives only)."""
        if self._hyps is None:
            ck = self.ac_cfg.checkpoint
            if not ck:
                raise EbtkError(
                    f"objective {self.objective_name!r} trains a refiner on an acoustic model's hypotheses: set "
                    "acoustic.checkpoint=RUN_DIR; hint: train one with `ebtk train tts --objective acoustic`"
                )
            self._check_acoustic_run(ck)
            path = Path(ck) / HYPOTHESES
            if not path.is_file():
                raise EbtkError(f"acoustic.checkpoint={ck} has no {HYPOTHESES}; hint: it must be a finished "
                                "`tts --objective acoustic` run (`ebtk evaluate` on it writes the file)")
            h = torch.load(path, map_location="cpu", weights_only=True)
            if h.get("version") != HYP_VERSION:
                raise EbtkError(f"{path} is from another ebtk version; re-run `ebtk evaluate {ck}`")
            if self.data_cfg.path and Path(self.data_cfg.path).expanduser().resolve() != Path(h["corpus"]):
                raise EbtkError(f"data.path={self.data_cfg.path} differs from the acoustic run's corpus "
                                f"{h['corpus']}; hint: leave data.path empty for refiner runs")
            self._hyps = h
        return self._hyps

    def write_hypotheses(self, model: nn.Module, path: Path, batch_size: int = 8) -> dict[str, float]:
        """Frame-aligned hypotheses (ground-truth MAS durations) of every utterance, plus MC-dropout
        hypotheses of the training split; returns their mel MSE per kind (the hyp-remedy measurement)."""
        from ebtk.tts.acoustic import AcousticModel

        if not isinstance(model, AcousticModel):
            raise EbtkError("hypotheses come from an acoustic model")
        dev = next(model.parameters()).device
        splits = {k: [i for i in v if self.mel(i).shape[-1] >= len(self.phonemes([i])[0])]
                  for k, v in self.splits().items()}
        out: dict[str, Any] = {"version": HYP_VERSION, "corpus": str(self.corpus_path()), "splits": splits,
                               "mel_mean": float(model.mel_mean), "mel_std": float(model.mel_std),
                               "hyp": {}, "hyp_dropout": {}, "text": {}, "durations": {}}
        sq: dict[str, list[float]] = {}
        was_training = model.training
        gen_state = torch.get_rng_state()
        torch.manual_seed(777)
        try:
            for split in ("train", "val", "test"):
                ids = splits[split]
                for kind in ("hyp", "hyp_dropout") if split == "train" else ("hyp",):
                    for s in range(0, len(ids), batch_size):
                        chunk = ids[s: s + batch_size]
                        b = self.model_batch(chunk).to(dev)
                        c = b.cond
                        model.eval()
                        dur = model.align_durations(c["phonemes"], c["ph_lengths"], b.x, c["mel_lengths"])
                        model.train(kind == "hyp_dropout")
                        hyp, mu_y, _ = model.hypothesis(c["phonemes"], c["ph_lengths"], dur)
                        for k, uid in enumerate(chunk):
                            t = int(c["mel_lengths"][k])
                            out[kind][uid] = hyp[k, :, :t].half().cpu()
                            d = hyp[k, :, :t] - b.x[k, :, :t]
                            sq.setdefault(f"{split}_{kind}", []).append(float(d.pow(2).mean()))
                            sq.setdefault(f"{split}_{kind}_l1", []).append(float(d.abs().mean()))
                            if kind == "hyp":
                                out["text"][uid] = mu_y[k, :, :t].half().cpu()
                                out["durations"][uid] = dur[k, : int(c["ph_lengths"][k])].cpu()
        finally:
            model.train(was_training)
            torch.set_rng_state(gen_state)
        from ebtk.train.checkpoint import save_checkpoint

        save_checkpoint(path, out)
        means = {k: sum(v) / len(v) for k, v in sq.items()}
        return {
            "mel_mse_train": means.get("train_hyp"),
            "mel_mse_train_dropout": means.get("train_hyp_dropout"),
            "mel_mse_val": means.get("val_hyp"),
            "mel_mse_test": means.get("test_hyp"),
            "mel_l1_train": means.get("train_hyp_l1"),
            "mel_l1_val": means.get("val_hyp_l1"),
        }

    # -- models -------------------------------------------------------------------------------------
    def build_model(self, objective: str) -> nn.Module:
        mean, std = self.mel_stats()
        if objective in MODEL_OBJECTIVES:
            n_sym = len(self.frontend.symbols)
            saved = self._frontend_file()
            if saved is not None and not saved.is_file():
                saved.parent.mkdir(parents=True, exist_ok=True)
                from ebtk.train.checkpoint import atomic_write_text

                atomic_write_text(saved, json.dumps(self.frontend.state_dict()))
            if objective == "acoustic":
                from ebtk.tts.acoustic import AcousticModel

                return AcousticModel(n_sym, self.ac_cfg.model_config(), mean, std)
            from ebtk.tts.flow_matching import FlowMatchingTTS

            m = self.model_cfg
            fm = FlowMatchingTTS(n_sym, self.ac_cfg.model_config(), mean, std, unet_channels=m.channels,
                                 mults=tuple(m.mults), n_steps=max(self.eval_cfg.fm_steps))
            if self.ac_cfg.freeze:
                if not self.ac_cfg.checkpoint:
                    raise EbtkError("acoustic.freeze=true needs acoustic.checkpoint (the acoustic run to start from)")
                for name, p in fm.named_parameters():
                    if not name.startswith("decoder."):
                        p.requires_grad_(False)
            return fm
        from ebtk.tts.refiner import build_refiner

        m = self.model_cfg
        return build_refiner(m.kind, channels=m.channels, mults=tuple(m.mults), text_cond=m.text_cond,
                             mel_mean=mean, mel_std=std)

    def init_weights(self, model: nn.Module) -> None:
        """A fresh `fm` run with acoustic.checkpoint starts from that run's every weight but the decoder's."""
        if self.objective_name != "fm" or not self.ac_cfg.checkpoint:
            return
        from ebtk.train.checkpoint import load_checkpoint
        from ebtk.train.trainer import CHECKPOINT

        ck = self.ac_cfg.checkpoint
        self._check_acoustic_run(ck)
        state = load_checkpoint(Path(ck) / CHECKPOINT)["model"]
        shared = {k: v for k, v in state.items() if not k.startswith("decoder.")}
        try:
            missing, unexpected = model.load_state_dict(shared, strict=False)
        except RuntimeError as e:
            raise EbtkError(f"acoustic.checkpoint={ck} does not fit this FM model's acoustic.* sizes: "
                            f"{str(e).splitlines()[-1].strip()[:160]}") from None
        if unexpected or any(not k.startswith("decoder.") for k in missing):
            raise EbtkError(f"acoustic.checkpoint={ck}: weights do not match (missing "
                            f"{[k for k in missing if not k.startswith('decoder.')][:3]}, unexpected {unexpected[:3]})")

    @staticmethod
    def _check_acoustic_run(ck: str) -> None:
        """`acoustic.checkpoint` must name a `tts --objective acoustic` run, not just any run dir."""
        from ebtk.train.trainer import run_kind

        kind = run_kind(ck)
        if kind is not None and kind != ("tts", "acoustic"):
            raise EbtkError(f"acoustic.checkpoint={ck} is a {kind[0]!r} / {kind[1]!r} run, not a "
                            "`tts --objective acoustic` run")

    def load_acoustic(self, device: str | torch.device = "cpu") -> nn.Module:
        """The acoustic model of `acoustic.checkpoint` (for synthesis from text)."""
        from ebtk.train.trainer import load_run

        if not self.ac_cfg.checkpoint:
            raise EbtkError("acoustic.checkpoint is not set; hint: point it at a `tts --objective acoustic` run")
        self._check_acoustic_run(self.ac_cfg.checkpoint)
        _, _, model, _, _ = load_run(self.ac_cfg.checkpoint, str(device))
        return model

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
    def evaluate(self, model: nn.Module, objective: nn.Module, run_dir: Path) -> dict[str, Any]:
        from ebtk.tts.evaluate import evaluate_tts

        return evaluate_tts(self, model, Path(run_dir))

    def sample(self, model: nn.Module, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        raise EbtkError("tts runs are sampled from text: use `ebtk synthesize RUN_DIR --text ... --out FILE.wav`")

    def save_samples(self, x: torch.Tensor, path: Path) -> None:
        raise EbtkError("tts runs are sampled from text: use `ebtk synthesize RUN_DIR --text ... --out FILE.wav`")

    def plots(self, model: nn.Module, run_dir: Path) -> list[Path]:
        p = Path(run_dir) / "mels.png"
        return [p] if p.is_file() else []
