"""The `tts` task's config sections (typed dataclasses), shared by training, evaluation and the bundle.

They live apart from the task so that `ebtk.tts.bundle` can read a run's sizes and refinement defaults
without importing the training machinery. Paths (`data.path`, `acoustic.checkpoint`) are stored absolute
(`resolve_paths`) and read with `ebtk.io.resolve_in(run_dir, ...)`, so a run dir works from any cwd.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ebtk.errors import EbtkError
from ebtk.io import store_path
from ebtk.tts.acoustic import AcousticConfig
from ebtk.tts.dataset import DEFAULT_SPLITS, UNSEEN

MODEL_OBJECTIVES = ("acoustic", "fm")
"""Objectives that train a text → mel model; every other objective trains a refiner."""
HYP_REMEDIES = ("dropout", "dropout-fresh", "noise", "none", "oof")
"""How training hypotheses are made less over-fitted (`acoustic.hyp_remedy`, see ebtk.tasks.tts)."""


@dataclass
class TTSData:
    """path: LJSpeech-layout corpus dir ("" = the built-in corpus, made in the cache dir on first use);
    n_utts / engine / text / seed: the built-in corpus (text: mixed = WordNet + grammar, or grammar, see
    ebtk.tts.corpus); n_val / n_test: held-out utterances; n_unseen: the unseen-words test split (each
    sentence has a word no training sentence has; 0: none); seed: also the splits'; crop: refiner training
    crop in frames (a multiple of 4 suits the U-Net); bucket: acoustic / fm batches of similar lengths
    (k > 1: draw k batches' worth of utterances, sort them by length, keep one of the k chunks at random, so
    each utterance is still drawn uniformly but less padding is computed; 0: plain random batches)."""

    path: str = ""
    n_utts: int = 2400
    engine: str = "flite"
    text: str = "mixed"
    seed: int = 0
    n_val: int = DEFAULT_SPLITS["val"]
    n_test: int = DEFAULT_SPLITS["test"]
    n_unseen: int = DEFAULT_SPLITS["unseen"]
    crop: int = 128
    bucket: int = 0
    # "k/n": an acoustic / fm run trains on part k of n of the training split only (`train_part_of`), e.g. the
    # two models whose hypotheses of the part they did not see are out-of-fold (acoustic.hyp_remedy=oof)
    train_part: str = ""

    def validate(self) -> None:
        parse_part(self.train_part)
        if self.bucket < 0:
            raise EbtkError(f"data.bucket must be ≥ 0 (0: plain random batches), got {self.bucket}")
        if self.n_utts < 4 or self.n_val < 1 or self.n_test < 1 or self.n_unseen < 0 or self.crop < 8:
            raise EbtkError("data: n_utts ≥ 4, n_val ≥ 1, n_test ≥ 1, n_unseen ≥ 0 and crop ≥ 8 are required")
        if not self.path and self.n_val + self.n_test + self.n_unseen >= self.n_utts:
            raise EbtkError(f"data.n_val + data.n_test + data.n_unseen must leave training utterances out of "
                            f"data.n_utts={self.n_utts}; hint: raise data.n_utts")
        if self.engine not in ("flite", "espeak"):
            raise EbtkError(f"data.engine must be flite or espeak, got {self.engine!r}")
        if self.text not in ("mixed", "grammar"):
            raise EbtkError(f"data.text must be mixed or grammar, got {self.text!r}")


LEGACY_DATA = {"text": "grammar", "n_unseen": 0}
"""What a run stored before data.text / data.n_unseen existed was trained on: the grammar corpus, no
unseen-words split."""


def upgrade_legacy(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with `LEGACY_DATA` filled in when its data section is a complete stored one (n_utts, n_val,
    n_test, crop) from before data.text existed, so such a run re-derives the corpus and splits it was
    trained on; any other config is returned as it is."""
    data = config.get("data")
    if isinstance(data, dict) and {"n_utts", "n_val", "n_test", "crop"} <= set(data) and "text" not in data:
        return {**config, "data": {**LEGACY_DATA, **data}}
    return config


def parse_part(part: str) -> tuple[int, int] | None:
    """`data.train_part` "k/n" -> (k, n); "" -> None; anything else is an EbtkError."""
    if not part:
        return None
    try:
        k, n = (int(v) for v in part.split("/"))
    except ValueError:
        k, n = -1, 0
    if not (n >= 2 and 0 <= k < n):
        raise EbtkError(f"data.train_part must be 'k/n' with 0 ≤ k < n and n ≥ 2 (e.g. 0/2), got {part!r}")
    return k, n


def train_part_of(uid: str, n: int) -> int:
    """The part (0 … n−1) of an utterance id: a hash of the id, so parts do not depend on split order or
    on which utterances are left out."""
    import zlib

    return zlib.crc32(uid.encode("utf-8")) % n


@dataclass
class TTSModel:
    """The refiner (and the FM decoder's U-Net): kind score|energy, U-Net base channels and level
    multipliers; text_cond adds the acoustic model's aligned prior means as a second condition."""

    kind: str = "score"
    channels: int = 64
    mults: list[int] = field(default_factory=lambda: [1, 2, 4])
    text_cond: bool = True

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
    none | dropout-fresh | oof (see ebtk.tasks.tts); hyp_noise: std for `noise`."""

    # the recipe's acoustic model (AcousticConfig's own defaults are a smaller model for library use)
    channels: int = 192
    enc_layers: int = 4
    dec_layers: int = 6
    checkpoint: str = ""
    hyp_remedy: str = "dropout"
    hyp_noise: float = 0.1
    freeze: bool = False
    oof_runs: list[str] = field(default_factory=list)  # hyp_remedy=oof: acoustic runs with data.train_part k/n

    def validate(self) -> None:
        if self.hyp_remedy not in HYP_REMEDIES:
            raise EbtkError(f"acoustic.hyp_remedy must be one of {', '.join(HYP_REMEDIES)}, got {self.hyp_remedy!r}")
        if self.hyp_noise < 0:
            raise EbtkError("acoustic.hyp_noise must be ≥ 0")
        if self.hyp_remedy == "oof" and len(self.oof_runs) < 2:
            raise EbtkError("acoustic.hyp_remedy=oof needs acoustic.oof_runs: the acoustic runs trained with "
                            "data.train_part=0/n … n−1/n (n ≥ 2)")
        super().validate()

    def model_config(self) -> AcousticConfig:
        return AcousticConfig(**{f.name: getattr(self, f.name) for f in fields(AcousticConfig)})


@dataclass
class TTSRefine:
    """Refinement used by synthesis and for the *_refined metrics: `steps` of Y ← Y + step_size·s(Y).

    step_size null (the default) means "the η the refiner was trained for": the delta objective's
    `step_size` (also inside sums such as ssm+delta), else 1.0. Setting it refines at another η on purpose."""

    steps: int = 1
    step_size: float | None = None
    length_scale: float = 1.0  # synthesis: duration multiplier

    def validate(self) -> None:
        if self.steps < 0 or (self.step_size is not None and self.step_size <= 0) or self.length_scale <= 0:
            raise EbtkError("refine.steps must be ≥ 0, refine.step_size (or null) and refine.length_scale > 0")

    def effective_step_size(self, objective: dict[str, Any] | None) -> float:
        """refine.step_size, or the training objective's η when it is null (see the class docstring)."""
        if self.step_size is not None:
            return float(self.step_size)
        from ebtk.objectives.delta import trained_step_size

        eta = trained_step_size(objective or {})
        return 1.0 if eta is None else eta


@dataclass
class TTSEval:
    """split: the held-out split evaluated (test, val or unseen-words); n_test: its utterances evaluated;
    steps × step_sizes: the refinement table; fm_steps: Euler steps of the FM baseline; dnsmos: compute
    DNSMOS; n_wavs: utterances written as wavs."""

    split: str = "test"
    n_test: int = 100
    steps: list[int] = field(default_factory=lambda: [1, 2])
    step_sizes: list[float] = field(default_factory=lambda: [0.5, 1.0])
    fm_steps: list[int] = field(default_factory=lambda: [1, 2, 4, 10])
    dnsmos: bool = True
    n_wavs: int = 2

    def validate(self) -> None:
        if self.split not in ("test", "val", UNSEEN):
            raise EbtkError(f"eval.split must be test, val or {UNSEEN}, got {self.split!r}")
        if self.n_test < 1 or not self.steps or min(self.steps) < 0 or not self.step_sizes:
            raise EbtkError("eval: n_test ≥ 1 and non-empty steps (≥ 0) and step_sizes are required")
        if min(self.step_sizes) <= 0 or not self.fm_steps or min(self.fm_steps) < 1:
            raise EbtkError("eval.step_sizes must be > 0 and eval.fm_steps ≥ 1")


@dataclass
class TTSHypotheses:
    """dir: a folder of `<utterance id>.npy` log-mels (80, T) made by *another* TTS model (ebtk.tts.external),
    one for every utterance of the corpus `data.path`. A refiner objective with `dir` set trains on them
    instead of an ebtk acoustic run's hypotheses (no `acoustic.checkpoint`); lengths that differ from the
    reference are aligned by DTW. Such a refiner conditions on the hypothesis only (`model.text_cond` is
    set false) and uses the files as they are (`acoustic.hyp_remedy` dropout becomes none; noise stays
    available): see `external_defaults`."""

    dir: str = ""

    def validate(self) -> None:
        pass


SECTIONS: dict[str, type] = {"data": TTSData, "model": TTSModel, "acoustic": TTSAcoustic, "refine": TTSRefine,
                             "eval": TTSEval, "hypotheses": TTSHypotheses}

PATH_KEYS = (("data", "path"), ("acoustic", "checkpoint"), ("hypotheses", "dir"))
"""Config keys holding paths: stored absolute, so the run dir does not depend on the caller's cwd."""


def resolve_paths(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with `data.path` and `acoustic.checkpoint` made absolute against the cwd (in place, and
    returned); empty paths stay empty. For the command line and `resolve_config`, before a run dir is
    written: a path already stored in a run dir is read with `ebtk.io.resolve_in(run_dir, p)` instead."""
    for section, key in PATH_KEYS:
        sec = config.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str) and sec[key]:
            sec[key] = store_path(sec[key])
    ac = config.get("acoustic")
    if isinstance(ac, dict) and isinstance(ac.get("oof_runs"), list):
        ac["oof_runs"] = [store_path(p) if isinstance(p, str) and p else p for p in ac["oof_runs"]]
    return external_defaults(config)


def external_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """With `hypotheses.dir` (an external first stage): `model.text_cond` false (an external model has no
    ebtk text encoding) and `acoustic.hyp_remedy` dropout → none (there is no ebtk model whose dropout
    could be turned on); the remedies that need an acoustic run (dropout-fresh, oof), an
    `acoustic.checkpoint` or an empty `data.path` are EbtkErrors. In place, and returned."""
    hyp_dir = (config.get("hypotheses") or {}).get("dir")
    if not hyp_dir:
        return config
    if (config.get("objective") or {}).get("name") in MODEL_OBJECTIVES:
        raise EbtkError("hypotheses.dir is for refiner objectives (delta, ssm, ...), not acoustic / fm")
    ac = config.setdefault("acoustic", {})
    if ac.get("checkpoint"):
        raise EbtkError("hypotheses.dir (an external model's mels) and acoustic.checkpoint (an ebtk acoustic run) "
                        "are two sources of hypotheses: give one")
    if not (config.get("data") or {}).get("path"):
        raise EbtkError("hypotheses.dir needs data.path: the LJSpeech-layout corpus with the reference recordings")
    if ac.get("hyp_remedy") in ("dropout-fresh", "oof"):
        raise EbtkError(f"acoustic.hyp_remedy={ac['hyp_remedy']} needs an ebtk acoustic run; with hypotheses.dir "
                        "use none or noise")
    if ac.get("hyp_remedy", "dropout") == "dropout":
        ac["hyp_remedy"] = "none"
    config.setdefault("model", {})["text_cond"] = False
    return config
