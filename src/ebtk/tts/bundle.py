"""Inference bundles: one file with everything text → wav needs, and the synthesizer that runs it.

`export(run_dir, path)` (``ebtk export RUN_DIR FILE``) writes a dict that `torch.load(weights_only=True)`
reads back (only tensors, dicts, lists, strings and numbers):

* ``format`` = "ebtk-tts-bundle", ``version`` (`VERSION`), ``kind``: "acoustic" | "fm" | "refiner" |
  "refiner-only" (a refiner trained on another model's mels, `hypotheses.dir`: ``frontend`` and ``acoustic``
  are None; it refines given mels, `ebtk refine` / `ebtk.tts.load_refiner`, and cannot speak text);
* ``frontend``: the text front-end's state (symbol table, language);
* ``mel``: the normalisation constants (``mean``, ``std``) and the mel settings the vocoder expects;
* ``acoustic``: the text → mel model: ``class`` ("acoustic" | "fm"), ``config`` (AcousticConfig fields),
  ``n_symbols``, ``fm`` (the FM decoder's settings, or None) and ``state`` (its state dict);
* ``refiner`` (refiner runs, else None): ``kind`` (score | energy), ``channels``, ``mults``, ``text_cond``,
  ``state``;
* ``refine``: the defaults ``steps`` (Euler steps for fm), ``step_size`` (the *effective* η: refine.step_size,
  or the delta objective's when that is null) and ``length_scale``;
* ``source``: where it came from (run dirs, objective, trained steps, ebtk version), for the record only.

`load(path)` takes a bundle file or a run dir (read into the same dict, so both give the same audio) and
returns a `Synthesizer`; `load()` without a path loads the model shipped as package data
(`ebtk/data/tts_model.pt`, `shipped_model_path`). Neither involves the trainer, an objective, the corpus or
the hypotheses file.

A `Synthesizer` speaks one text (`synthesize`), a batch of short texts (`synthesize_batch`: padded and masked
through the acoustic model and the refiner, then `Vocoder.many`: a padded batch on CUDA, one mel at a time on
the CPU, where batching the vocoder is no faster; either way each wav equals synthesizing its text alone), or
streams (`stream`). `synthesize` and `stream` split a long text into pieces (`ebtk.tts.segment`: sentences,
then clauses), make each piece's mel and vocode it over overlapping mel chunks (`Vocoder.stream`), and join
the pieces with a short pause, faded at the joins: memory depends on the longest piece, not on the text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ebtk.config import from_dict
from ebtk.errors import EbtkError, one_line
from ebtk.io import atomic_write, load_torch
from ebtk.tts.acoustic import AcousticConfig, AcousticModel
from ebtk.tts.audio import mel_settings
from ebtk.tts.config import MODEL_OBJECTIVES, TTSEval, TTSModel, TTSRefine
from ebtk.tts.runs import acoustic_run, check_acoustic_run, read_frontend_state, read_run
from ebtk.tts.segment import Piece, split_text

FORMAT = "ebtk-tts-bundle"
"""The ``format`` value every bundle carries, which tells a bundle from a training checkpoint."""
VERSION = 1
"""The bundle ``version`` this ebtk writes and reads."""
REFINER_ONLY = "refiner-only"
"""The ``kind`` of a bundle that refines given mels and cannot speak text (no front-end, no acoustic model)."""
SHIPPED_MODEL = "data/tts_model.pt"  # inside the ebtk package: the default model of `ebtk synthesize`
"""The shipped model's path inside the ebtk package (`shipped_model_path`)."""
PIECE_CHUNK_FRAMES = 512
"""Vocoder chunk of file synthesis: a sentence is one chunk (no context overhead), a longer piece a few."""
FADE_SECONDS = 0.01
"""Raised-cosine fade at each join between pieces (before and after the pause), so a join never clicks."""


# -- sections -----------------------------------------------------------------------------------------
def _acoustic_config(config: dict[str, Any]) -> AcousticConfig:
    ac = config.get("acoustic") or {}
    return from_dict(AcousticConfig, {f.name: ac[f.name] for f in fields(AcousticConfig) if f.name in ac}, "acoustic")


def acoustic_section(run_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The text → mel model of an acoustic or fm run dir, with its front-end, as a bundle's ``acoustic`` section.

    Args:
        run_dir: an acoustic or fm run dir.
        checkpoint: one of the run's snapshots instead of its latest checkpoint.

    Returns:
        The section: ``class``, ``config``, ``n_symbols``, ``fm``, ``state`` (CPU tensors), plus ``frontend``
        (the front-end's state) and ``steps`` (trained steps), which `bundle_from_run` pops.

    Raises:
        EbtkError: the run is a refiner run, its checkpoint is missing or unreadable, or the model's
            symbol count does not match its ``frontend.json``.
    """
    from ebtk.tts.text import TextFrontend

    config, state = read_run(run_dir, checkpoint)
    name = config["objective"]["name"]
    if name not in MODEL_OBJECTIVES:
        raise EbtkError(f"{run_dir} is a {name!r} refiner run, not an acoustic or fm run")
    model_state = {k: v.cpu() for k, v in state["model"].items()}
    fe = read_frontend_state(run_dir) or TextFrontend().state_dict()
    n_symbols = int(model_state["encoder.emb.weight"].shape[0])
    if n_symbols != len(fe["symbols"]):
        raise EbtkError(f"{run_dir}: the model has {n_symbols} symbols but its frontend.json {len(fe['symbols'])}")
    fm = None
    if name == "fm":
        m = from_dict(TTSModel, config.get("model", {}), "model")
        ev = from_dict(TTSEval, config.get("eval", {}), "eval")
        fm = {"unet_channels": m.channels, "mults": list(m.mults), "n_steps": max(ev.fm_steps)}
    return {"class": name, "config": asdict(_acoustic_config(config)), "n_symbols": n_symbols, "fm": fm,
            "state": model_state, "frontend": fe, "steps": int(state.get("step", 0))}


def build_acoustic(section: dict[str, Any]) -> AcousticModel:
    """The model of a bundle's ``acoustic`` section, weights loaded, in eval mode.

    Args:
        section: a bundle's ``acoustic`` section (`acoustic_section`).

    Returns:
        An `AcousticModel`, or a `FlowMatchingTTS` for ``class`` "fm", on the CPU.

    Raises:
        EbtkError: the config is invalid or the weights do not fit it.
    """
    cfg = from_dict(AcousticConfig, section["config"], "acoustic")
    if section["class"] == "fm":
        from ebtk.tts.flow_matching import FlowMatchingTTS

        fm = section["fm"] or {}
        model: AcousticModel = FlowMatchingTTS(section["n_symbols"], cfg, unet_channels=fm["unet_channels"],
                                               mults=tuple(fm["mults"]), n_steps=fm["n_steps"])
    else:
        model = AcousticModel(section["n_symbols"], cfg)
    _load(model, section["state"], "acoustic model")
    return model.eval()


def build_refiner(section: dict[str, Any]) -> nn.Module:
    """The refiner of a bundle's ``refiner`` section, weights loaded, in eval mode.

    Args:
        section: a bundle's ``refiner`` section (`refiner_section`).

    Returns:
        The score or energy refiner network, on the CPU.

    Raises:
        EbtkError: the weights do not fit the section's settings.
    """
    from ebtk.tts.refiner import build_refiner as build

    model = build(section["kind"], channels=section["channels"], mults=tuple(section["mults"]),
                  text_cond=section["text_cond"])
    _load(model, section["state"], "refiner")
    return model.eval()


def _load(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise EbtkError(f"the {what}'s weights do not fit its config: {one_line(e)}") from None


def _mel_stats(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, float]:
    return {"mean": float(state[f"{prefix}mel_mean"]), "std": float(state[f"{prefix}mel_std"])}


def bundle_from_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The bundle dict of a tts run dir: acoustic, fm, refiner or refiner-only (`hypotheses.dir`).

    A run dir is read into the same dict a bundle file holds, so both give the same audio. A refiner's
    acoustic run is read through its `acoustic.checkpoint` (absolute, or relative to the refiner's run dir).

    Args:
        run_dir: a tts run dir.
        checkpoint: one of the run's snapshots (`train.keep_every`) instead of its latest checkpoint, for a
            learning curve.

    Returns:
        The bundle dict (the module docstring lists its keys).

    Raises:
        EbtkError: the run dir is not a readable tts run, or a refiner run's acoustic run is not set or
            is gone (the hint says to export where both run dirs exist).
    """
    import ebtk

    run_dir = Path(run_dir)
    config, state = read_run(run_dir, checkpoint)
    name = config["objective"]["name"]
    refine = from_dict(TTSRefine, config.get("refine", {}), "refine")
    source: dict[str, Any] = {"run_dir": str(run_dir.resolve()), "objective": name,
                              "steps": int(state.get("step", 0)), "ebtk_version": ebtk.__version__}
    refiner = None
    if name in MODEL_OBJECTIVES:
        ac = acoustic_section(run_dir, checkpoint)
        steps = ac["fm"]["n_steps"] if name == "fm" else 0
        kind = name
    elif (config.get("hypotheses") or {}).get("dir"):
        return refiner_only_bundle(config, state, source)
    else:
        ac_dir = acoustic_run(run_dir, config)
        if ac_dir is None:
            raise EbtkError(f"{run_dir} is a refiner run without acoustic.checkpoint in its config")
        if not ac_dir.is_dir():
            raise EbtkError(f"the acoustic run of {run_dir} is gone: {ac_dir}; hint: export the bundle where both "
                            "run dirs exist (`ebtk export RUN_DIR FILE`), then synthesize from the file")
        check_acoustic_run(ac_dir)
        ac = acoustic_section(ac_dir)
        refiner = refiner_section(config, state)
        source.update(acoustic_run=str(ac_dir.resolve()), acoustic_steps=ac["steps"])
        steps, kind = refine.steps, "refiner"
    frontend = ac.pop("frontend")
    ac.pop("steps")
    return {
        "format": FORMAT, "version": VERSION, "kind": kind, "frontend": frontend,
        "mel": {**_mel_stats(ac["state"]), "settings": mel_settings()},
        "acoustic": ac, "refiner": refiner,
        "refine": {"steps": int(steps), "step_size": refine.effective_step_size(config["objective"]),
                   "length_scale": float(refine.length_scale)},
        "source": source,
    }


def refiner_section(config: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A bundle's ``refiner`` section from a refiner run's config and checkpoint state.

    Args:
        config: the run's config dict.
        state: the run's checkpoint dict (its ``model`` state dict is used).

    Returns:
        ``kind``, ``channels``, ``mults``, ``text_cond``, ``state`` (CPU tensors) and ``mel`` (the
        normalisation ``mean`` and ``std`` the refiner was trained with).
    """
    m = from_dict(TTSModel, config.get("model", {}), "model")
    model_state = {k: v.cpu() for k, v in state["model"].items()}
    return {"kind": m.kind, "channels": m.channels, "mults": list(m.mults), "text_cond": m.text_cond,
            "state": model_state, "mel": _mel_stats(model_state, "body.")}


def refiner_only_bundle(config: dict[str, Any], state: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """The "refiner-only" bundle of a refiner run on external mels (`hypotheses.dir`).

    It has no acoustic model and no front-end (it refines given mels and cannot speak text), but keeps the
    mel settings its inputs must follow and the refinement defaults.

    Args:
        config: the run's config dict.
        state: the run's checkpoint dict.
        source: the ``source`` record (updated in place with ``hypotheses_dir``).

    Returns:
        The bundle dict, ``kind`` = `REFINER_ONLY`.
    """
    refine = from_dict(TTSRefine, config.get("refine", {}), "refine")
    refiner = refiner_section(config, state)
    source.update(hypotheses_dir=str(config["hypotheses"]["dir"]))
    return {"format": FORMAT, "version": VERSION, "kind": REFINER_ONLY, "frontend": None,
            "mel": {**refiner["mel"], "settings": mel_settings()}, "acoustic": None, "refiner": refiner,
            "refine": {"steps": int(refine.steps), "step_size": refine.effective_step_size(config["objective"]),
                       "length_scale": float(refine.length_scale)},
            "source": source}


def attach_refiner(acoustic: dict[str, Any], refiner: dict[str, Any]) -> dict[str, Any]:
    """A text → wav bundle: an acoustic bundle with a refiner-only bundle's refiner and its defaults.

    For a refiner trained on the acoustic model's own *from-text* mels (`hypotheses.dir` holding what the
    model says from text, DTW-aligned to the recordings), i.e. on exactly the input it refines in
    `ebtk synthesize`; the refiner run itself has no acoustic model (it was trained on files), so this puts
    the two together. The refiner sees the hypothesis only (no text encoding), as it was trained.

    Args:
        acoustic: a bundle of kind "acoustic" (`bundle_from_run` of an acoustic run, `read_bundle`).
        refiner: a bundle of kind "refiner-only" (`bundle_from_run` of a `hypotheses.dir` refiner run).

    Returns:
        A new bundle of kind "refiner": the acoustic model, front end and mel constants of `acoustic`; the
        refiner and its default steps and step size of `refiner`; ``source`` the refiner's, with the acoustic
        run's record under ``acoustic``.

    Raises:
        EbtkError: the kinds are not acoustic and refiner-only, the refiner conditions on text, or the two
            were made with different mel settings.
    """
    if acoustic.get("kind") != "acoustic" or refiner.get("kind") != REFINER_ONLY:
        raise EbtkError(f"attach_refiner needs an acoustic bundle and a {REFINER_ONLY} bundle, not "
                        f"{acoustic.get('kind')!r} and {refiner.get('kind')!r}")
    if refiner["refiner"]["text_cond"]:
        raise EbtkError("the refiner conditions on a text encoding, which a refiner-only bundle cannot have")
    if refiner["mel"]["settings"] != acoustic["mel"]["settings"]:
        raise EbtkError(f"the refiner's mel settings {refiner['mel']['settings']} differ from the acoustic "
                        f"model's {acoustic['mel']['settings']}")
    r = refiner["refine"]
    return {**acoustic, "kind": "refiner", "refiner": refiner["refiner"],
            "refine": {**acoustic["refine"], "steps": int(r["steps"]), "step_size": r["step_size"]},
            "source": {**refiner["source"], "acoustic": acoustic["source"]}}


def write_bundle(bundle: dict[str, Any], path: str | Path) -> Path:
    """Write `bundle` atomically (`ebtk.io.atomic_write`) to `path` with ``torch.save``.

    Args:
        bundle: a bundle dict (`bundle_from_run`, `read_bundle`).
        path: the file to write.

    Returns:
        `path`.

    Raises:
        EbtkError: `path` is a directory, or writing fails (the message names the path).
    """
    path = Path(path)
    if path.is_dir():
        raise EbtkError(f"{path} is a directory; give a file name for the bundle, e.g. {path / 'model.pt'}")
    atomic_write(path, lambda f: torch.save(bundle, f))
    return path


def export(run_dir: str | Path, path: str | Path) -> Path:
    """`ebtk export RUN_DIR FILE`: write the run's inference bundle, one `weights_only`-loadable file.

    The bundle needs neither the run dirs nor the trainer to synthesize, so it can be shipped alone.

    Args:
        run_dir: a tts run dir (acoustic, fm or refiner).
        path: the bundle file to write.

    Returns:
        `path`.

    Raises:
        EbtkError: as `bundle_from_run` and `write_bundle`.
    """
    return write_bundle(bundle_from_run(run_dir), path)


def read_bundle(path: str | Path) -> dict[str, Any]:
    """Read a bundle file into its dict.

    Args:
        path: a bundle file from `ebtk export`.

    Returns:
        The bundle dict.

    Raises:
        EbtkError: the file is missing, corrupt, not an ebtk tts bundle (a training checkpoint gets a hint
            to give its run dir or export it first) or of another bundle version.
    """
    path = Path(path)
    if not path.is_file():
        raise EbtkError(f"model not found: {path} (give a bundle file from `ebtk export` or a tts run dir)")
    b = load_torch(path, "model file")
    if not isinstance(b, dict) or b.get("format") != FORMAT:
        hint = "; hint: give its run dir, or `ebtk export RUN_DIR FILE` first" if isinstance(b, dict) and \
            "format_version" in b else ""
        raise EbtkError(f"{path} is not an ebtk tts bundle{hint}")
    if b.get("version") != VERSION:
        raise EbtkError(f"{path} is a version {b.get('version')} bundle; this ebtk reads version {VERSION}")
    return b


# -- synthesis ----------------------------------------------------------------------------------------
class Synthesizer:
    """Text → phonemes → hypothesis mel → (refined mel) → HiFi-GAN → 22 050 Hz waveform, from a bundle.

    `steps` / `step_size` / `length_scale` default to the bundle's refinement defaults; for fm bundles
    `steps` is the number of Euler steps. Synthesis is deterministic (FM's noise comes from `seed`).
    Build one with `ebtk.tts.load`.

    Args:
        bundle: a bundle dict (`read_bundle`, `bundle_from_run`) of kind acoustic, fm or refiner.
        device: where the models run ("cpu", "cuda", a ``torch.device``).

    Attributes:
        bundle: the bundle dict it was built from (`save` writes it).
        device: the ``torch.device`` the models run on.
        kind: the bundle's kind: "acoustic", "fm" or "refiner".
        frontend: the text front-end (text → symbol ids).
        acoustic: the text → mel model, in eval mode.
        refiner: the refiner network, in eval mode, or None (acoustic and fm bundles).
        text_cond: whether the refiner also conditions on the acoustic model's text encoding.
        steps: the default refinement steps (fm: Euler steps).
        step_size: the default refinement step size η.
        length_scale: the default duration multiplier.

    Raises:
        EbtkError: the bundle is refiner-only (it cannot speak text; use `ebtk.tts.load_refiner`), or its
            weights do not fit its config.
    """

    def __init__(self, bundle: dict[str, Any], device: str | torch.device = "cpu"):
        from ebtk.tts.text import TextFrontend

        if bundle.get("kind") == REFINER_ONLY:
            raise EbtkError("this model is a refiner-only bundle (trained on another model's mels): it refines "
                            "mels and cannot speak text; hint: `ebtk refine MODEL IN OUT` or "
                            "ebtk.tts.load_refiner(path).refine(mel)")
        self.bundle = bundle
        self.device = torch.device(device)
        self.kind: str = bundle["kind"]
        self.frontend = TextFrontend.from_state_dict(bundle["frontend"])
        self.acoustic = build_acoustic(bundle["acoustic"]).to(self.device)
        self.refiner = build_refiner(bundle["refiner"]).to(self.device) if bundle.get("refiner") else None
        self.text_cond = bool(bundle["refiner"]["text_cond"]) if self.refiner is not None else False
        r = bundle["refine"]
        self.steps, self.step_size, self.length_scale = int(r["steps"]), float(r["step_size"]), float(r["length_scale"])
        self._vocoder = None

    @property
    def vocoder(self) -> Any:
        """HiFi-GAN (LJSpeech weights) on this synthesizer's device, loaded on first use."""
        if self._vocoder is None:
            from ebtk.tts.vocoder import Vocoder

            self._vocoder = Vocoder.load(self.device)
        return self._vocoder

    def settings(self, steps: int | None = None, step_size: float | None = None,
                 length_scale: float | None = None) -> tuple[int, float, float]:
        """The effective (steps, step size, length scale) of a call: the arguments, else the defaults.

        An acoustic bundle (no refiner) always gets 0 steps.

        Returns:
            ``(steps, step_size, length_scale)``.

        Raises:
            EbtkError: steps < 0 (< 1 for fm), or a step size or length scale that is not > 0.
        """
        k = self.steps if steps is None else int(steps)
        eta = self.step_size if step_size is None else float(step_size)
        ls = self.length_scale if length_scale is None else float(length_scale)
        if self.kind == "acoustic":
            k = 0
        if k < 0 or eta <= 0 or ls <= 0 or (self.kind == "fm" and k < 1):
            least = 1 if self.kind == "fm" else 0
            raise EbtkError(f"steps must be ≥ {least}, step size and length scale > 0; got {k}, {eta:g}, {ls:g}")
        return k, eta, ls

    def phonemes(self, text: str) -> torch.Tensor:
        """The symbol ids of `text`, shape (1, N), on this synthesizer's device.

        Raises:
            EbtkError: `text` is empty or not a string, or has no known symbols.
        """
        if not isinstance(text, str) or not text.strip():
            raise EbtkError("the text is empty; hint: give a sentence to speak")
        return torch.tensor([self.frontend.encode(text)], dtype=torch.long, device=self.device)

    def encode_lines(self, texts: Sequence[str]) -> tuple[list[list[int] | None], dict[int, str]]:
        """The symbol ids of each text, and why the ones that cannot be spoken cannot.

        One phonemizer call when all texts are good; otherwise the texts are encoded one at a time to find
        the bad ones, so one bad line does not stop a batch.

        Args:
            texts: the texts.

        Returns:
            ``(ids, errors)``: a list of symbol id lists (None for a text that cannot be spoken) and
            {index: why} for those (empty, or no known symbols), sorted by index.
        """
        ids: list[list[int] | None] = [None] * len(texts)
        errors = {i: "empty line" for i, t in enumerate(texts) if not t.strip()}
        todo = [i for i in range(len(texts)) if i not in errors]
        try:
            for i, got in zip(todo, self.frontend.encode_batch([texts[i] for i in todo])):
                ids[i] = got
        except EbtkError:  # some text has no known symbols: find which, one text at a time
            for i in todo:
                try:
                    ids[i] = self.frontend.encode(texts[i])
                except EbtkError as e:
                    errors[i] = str(e)
        return ids, dict(sorted(errors.items()))

    @contextlib.contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """A block whose random draws (FM's noise) come from `seed`, leaving the global RNG as it was.

        Args:
            seed: the seed of the block's draws.

        Yields:
            None; the global (and this device's CUDA) RNG state is restored on exit.
        """
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    @torch.no_grad()
    def _mels(self, phonemes: torch.Tensor, lengths: torch.Tensor | None, k: int, eta: float, ls: float,
              seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(hypothesis, final mel, mask (B, 1, T)) of phoneme ids (B, N), right-padded when `lengths`."""
        if self.kind == "fm":
            with self.seeded(seed):
                y, _, mask = self.acoustic.infer(phonemes, lengths, ls, n_steps=k)
            return y, y, mask
        hyp, mu_y, mask = self.acoustic.infer(phonemes, lengths, ls)
        if self.refiner is None:
            return hyp, hyp, mask
        from ebtk.tts.refiner import refine

        cond = {"hyp": hyp, "mask": mask}
        if self.text_cond:
            cond["text"] = mu_y
        return hyp, refine(self.refiner, hyp, k, eta, cond)[0], mask

    def mels(self, phonemes: torch.Tensor, steps: int | None = None, step_size: float | None = None,
             length_scale: float | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The hypothesis and final log-mels of a batch of phoneme ids.

        For fm both are the FM output; for an acoustic bundle both are the hypothesis.

        Args:
            phonemes: symbol ids (B, N), e.g. from `phonemes`.
            steps: refinement steps (fm: Euler steps); None = the bundle's default.
            step_size: refinement step size η; None = the bundle's default.
            length_scale: duration multiplier (> 1 speaks slower); None = the bundle's default.
            seed: the seed of FM's noise.

        Returns:
            ``(hypothesis, final mel)``, each (B, 80, T).

        Raises:
            EbtkError: bad settings (`settings`).
        """
        hyp, mel, _ = self._mels(phonemes, None, *self.settings(steps, step_size, length_scale), seed)
        return hyp, mel

    def mels_batch(self, ids: Sequence[Sequence[int]], steps: int | None = None, step_size: float | None = None,
                   length_scale: float | None = None, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The hypothesis and final log-mels of several symbol id lists, computed as one padded batch.

        The ids go through the acoustic model and the refiner as one right-padded batch (the refiner's mask
        keeps padded frames fixed); each result equals what `mels` gives for that text alone up to float
        rounding (fm: up to its noise, drawn for the batch).

        Args:
            ids: symbol id lists (e.g. from `encode_lines`).
            steps: as in `mels`.
            step_size: as in `mels`.
            length_scale: as in `mels`.
            seed: as in `mels`.

        Returns:
            ``[(hypothesis, final mel)]``, each (80, F_b) with F_b the frames of item b; [] for no ids.

        Raises:
            EbtkError: bad settings (`settings`).
        """
        if not ids:
            return []
        k, eta, ls = self.settings(steps, step_size, length_scale)
        lengths = torch.tensor([len(i) for i in ids], dtype=torch.long)
        ph = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for b, i in enumerate(ids):
            ph[b, : len(i)] = torch.as_tensor(list(i), dtype=torch.long)
        hyp, mel, mask = self._mels(ph.to(self.device), lengths.to(self.device), k, eta, ls, seed)
        frames = mask.sum((1, 2)).long().tolist()
        return [(hyp[b, :, :f], mel[b, :, :f]) for b, f in enumerate(frames)]

    def to_audio(self, wav: torch.Tensor) -> np.ndarray:
        """A vocoded waveform as float32 numpy on the CPU.

        Raises:
            EbtkError: the audio is not finite (the hint: fewer steps or a smaller step size).
        """
        if not torch.isfinite(wav).all():
            raise EbtkError("synthesis produced non-finite audio; hint: fewer steps or a smaller step size")
        return wav.detach().to("cpu", torch.float32).numpy()

    def synthesize(self, text: str, steps: int | None = None, step_size: float | None = None,
                   length_scale: float | None = None) -> np.ndarray:
        """Speak `text`: its waveform, float32 in [-1, 1] at 22 050 Hz.

        A long text is spoken piece by piece (see `stream`), so memory depends on the longest piece.

        Args:
            text: the text to speak.
            steps: as in `mels`.
            step_size: as in `mels`.
            length_scale: as in `mels`.

        Returns:
            The waveform, shape (samples,).

        Raises:
            EbtkError: the text is empty or has no known symbols, bad settings, or non-finite output.
        """
        return np.concatenate(list(self.stream(text, PIECE_CHUNK_FRAMES, first_chunk_frames=PIECE_CHUNK_FRAMES,
                                               steps=steps, step_size=step_size, length_scale=length_scale)))

    def encode_pieces(self, text: str) -> list[tuple[Piece, list[int]]]:
        """Split `text` into pieces (`ebtk.tts.segment.split_text`) and encode each.

        Pieces without a known symbol are dropped with a warning, so one odd piece does not stop a long text.

        Returns:
            ``[(piece, symbol ids)]`` in reading order.

        Raises:
            EbtkError: the text is empty, or no piece has a known symbol.
        """
        import warnings

        pieces = split_text(text)
        ids, errors = self.encode_lines([p.text for p in pieces])
        if len(errors) == len(pieces):
            raise EbtkError(errors[0] if len(pieces) == 1 else f"text has no known symbols: {one_line(text, 80)!r}")
        for i, why in errors.items():
            warnings.warn(f"skipped piece {i + 1} of {len(pieces)}: {why}", stacklevel=2)
        return [(p, i) for p, i in zip(pieces, ids) if i is not None]

    def piece_audio(self, mel: torch.Tensor, fade_in: bool, fade_out: bool, chunk_frames: int = PIECE_CHUNK_FRAMES,
                    context_frames: int | None = None, first_chunk_frames: int | None = None) -> Iterator[np.ndarray]:
        """Vocode one piece's log-mel over overlapping chunks (`Vocoder.stream`), faded at its joins.

        The `FADE_SECONDS` raised-cosine fades keep the joins between pieces from clicking.

        Args:
            mel: the piece's log-mel (80, F).
            fade_in: fade in the first block (the piece follows another).
            fade_out: fade out the last block (another piece follows).
            chunk_frames: the longest vocoder chunk, in mel frames.
            context_frames: mel frames of context on each side of a chunk; None = `CONTEXT_FRAMES`.
            first_chunk_frames: the first chunk's frames; None = `chunk_frames`.

        Yields:
            Audio blocks, float32 numpy at 22 050 Hz.

        Raises:
            EbtkError: the mel or the audio is not finite.
        """
        from ebtk.tts.audio import SAMPLE_RATE
        from ebtk.tts.vocoder import CONTEXT_FRAMES

        if not torch.isfinite(mel).all():
            raise EbtkError("synthesis produced a non-finite mel; hint: fewer steps or a smaller step size")
        n = int(FADE_SECONDS * SAMPLE_RATE)
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
        chunks = self.vocoder.stream(mel, chunk_frames, CONTEXT_FRAMES if context_frames is None else context_frames,
                                     chunk_frames if first_chunk_frames is None else first_chunk_frames)
        held: np.ndarray | None = None  # one chunk held back: the last one gets the fade-out
        for i, c in enumerate(chunks):
            block = self.to_audio(c).copy()
            if i == 0 and fade_in:
                block[:n] *= ramp[: block[:n].size]
            if held is not None:
                yield held
            held = block
        if held is not None:
            if fade_out:
                m = min(n, held.size)
                held[held.size - m:] *= ramp[::-1][n - m:]
            yield held

    def synthesize_batch(self, texts: Sequence[str], steps: int | None = None, step_size: float | None = None,
                         length_scale: float | None = None,
                         hypothesis: bool = False) -> list[np.ndarray] | list[tuple[np.ndarray, np.ndarray]]:
        """The waveforms of `texts` (as `synthesize` gives them, up to float rounding), computed as one batch.

        Meant for many short texts; the texts are not split into pieces.

        Args:
            texts: the texts to speak.
            steps: as in `mels`.
            step_size: as in `mels`.
            length_scale: as in `mels`.
            hypothesis: also return each text's unrefined (hypothesis) waveform.

        Returns:
            One float32 waveform (samples,) at 22 050 Hz per text, or with `hypothesis` one
            ``(refined, hypothesis)`` pair per text.

        Raises:
            EbtkError: an empty text or one without known symbols (the message names its index), bad
                settings, or non-finite audio.
        """
        ids, errors = self.encode_lines(list(texts))
        if errors:
            i, why = next(iter(errors.items()))
            raise EbtkError(f"text {i} ({texts[i]!r}): {why}")
        pairs = self.mels_batch(ids, steps, step_size, length_scale)
        wavs = [self.to_audio(w) for w in self.vocoder.many([m for _, m in pairs])]
        if not hypothesis:
            return wavs
        hyps = [self.to_audio(w) for w in self.vocoder.many([h for h, _ in pairs])]
        return list(zip(wavs, hyps))

    def stream(self, text: str, chunk_frames: int = 128, context_frames: int | None = None,
               first_chunk_frames: int = 8, steps: int | None = None, step_size: float | None = None,
               length_scale: float | None = None) -> Iterator[np.ndarray]:
        """Audio chunks of `text` (float32, 22 050 Hz), as soon as each is vocoded.

        The text is split into pieces (sentences, then clauses: `ebtk.tts.segment`); each piece's mel
        (hypothesis and refinement, cheap) is made when its turn comes, and the vocoder runs over overlapping
        mel chunks (`Vocoder.stream`: the first `first_chunk_frames` frames, then chunks doubling up to
        `chunk_frames`, each with `context_frames` of context on each side, default `CONTEXT_FRAMES` = 16,
        above HiFi-GAN's reach of 13). Pieces are joined by their pause (silence), faded at the joins, so
        memory does not grow with the text. The joined chunks equal `synthesize(text)` up to float rounding.

        Args:
            text: the text to speak.
            chunk_frames: the longest vocoder chunk, in mel frames.
            context_frames: mel frames of context on each side of a chunk; None = `CONTEXT_FRAMES`.
            first_chunk_frames: the first chunk's frames (small: the first audio comes soon).
            steps: as in `mels`.
            step_size: as in `mels`.
            length_scale: as in `mels`.

        Returns:
            An iterator of float32 numpy audio chunks; concatenated, they are the waveform.

        Raises:
            EbtkError: on this call (not on iteration), for an empty text, one with no known symbols, or
                bad settings; a non-finite mel or audio is raised while iterating.
        """
        k, eta, ls = self.settings(steps, step_size, length_scale)
        pieces = self.encode_pieces(text)
        return self._stream_pieces(pieces, k, eta, ls, chunk_frames, context_frames, first_chunk_frames)

    def _stream_pieces(self, pieces: list[tuple[Piece, list[int]]], k: int, eta: float, ls: float,
                       chunk_frames: int, context_frames: int | None, first_chunk_frames: int) -> Iterator[np.ndarray]:
        from ebtk.tts.audio import SAMPLE_RATE

        for j, (piece, ids) in enumerate(pieces):
            _, mel = self.mels(torch.tensor([ids], dtype=torch.long, device=self.device), k, eta, ls)
            last = j == len(pieces) - 1
            yield from self.piece_audio(mel[0], j > 0, not last, chunk_frames, context_frames,
                                        first_chunk_frames if j == 0 else chunk_frames)
            if not last:
                yield np.zeros(int(round(piece.pause * SAMPLE_RATE)), np.float32)

    def save(self, path: str | Path) -> Path:
        """Write this synthesizer's bundle to `path` (e.g. to ship a model loaded from a run dir).

        Returns:
            `path`.

        Raises:
            EbtkError: as `write_bundle`.
        """
        return write_bundle(self.bundle, path)


def shipped_model_path() -> Path | None:
    """The path of the model shipped as package data (`ebtk/data/tts_model.pt`).

    Returns:
        The file's path, or None when this install ships none.
    """
    try:
        p = resources.files("ebtk").joinpath(SHIPPED_MODEL)
    except (ModuleNotFoundError, TypeError):
        return None
    return Path(str(p)) if p.is_file() else None


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> Synthesizer:
    """A `Synthesizer` from a bundle file, a tts run dir or, without a path, the shipped model.

    A run dir is read into the same bundle dict a file holds (`bundle_from_run`), so both give the same audio.
    `ebtk.tts.load` is the public entry point to this.

    Args:
        path: a bundle file or a tts run dir; None = the shipped model (`shipped_model_path`).
        device: where the models run ("cpu", "cuda", a ``torch.device``).

    Returns:
        The `Synthesizer`.

    Raises:
        EbtkError: no path is given and this install ships no model (the message says what to give), or
            as `read_bundle`, `bundle_from_run` and `Synthesizer`.
    """
    if path is None:
        path = shipped_model_path()
        if path is None:
            raise EbtkError(f"no model is shipped in this install (ebtk/{SHIPPED_MODEL} is missing); give a "
                            "bundle file from `ebtk export` or a tts run dir, e.g. `ebtk synthesize MODEL.pt "
                            "--text ...`")
    p = Path(path).expanduser()
    if p.is_dir():
        return Synthesizer(bundle_from_run(p), device)
    return Synthesizer(read_bundle(p), device)


__all__ = ["FORMAT", "REFINER_ONLY", "SHIPPED_MODEL", "VERSION", "Synthesizer", "acoustic_section", "attach_refiner",
           "build_acoustic", "build_refiner", "bundle_from_run", "export", "load", "read_bundle", "refiner_only_bundle",
           "refiner_section", "shipped_model_path", "write_bundle"]
