"""Inference bundles: one file with everything text → wav needs, and the synthesizer that runs it.

`export(run_dir, path)` (``ebtk export RUN_DIR FILE``) writes a dict that `torch.load(weights_only=True)`
reads back (only tensors, dicts, lists, strings and numbers):

* ``format`` = "ebtk-tts-bundle", ``version`` (`VERSION`), ``kind``: "acoustic" | "fm" | "refiner";
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

A `Synthesizer` speaks one text (`synthesize`), a batch (`synthesize_batch`: padded and masked through the
acoustic model and the refiner, then `Vocoder.many`: a padded batch on CUDA, one mel at a time on the CPU,
where batching the vocoder is no faster; either way each wav equals synthesizing its text alone), or streams
(`stream`: the whole mel first, then the vocoder over overlapping mel chunks, `Vocoder.stream`).
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
from ebtk.errors import EbtkError
from ebtk.io import atomic_write, load_torch
from ebtk.tts.acoustic import AcousticConfig, AcousticModel
from ebtk.tts.audio import mel_settings
from ebtk.tts.config import MODEL_OBJECTIVES, TTSEval, TTSModel, TTSRefine
from ebtk.tts.runs import acoustic_run, check_acoustic_run, read_frontend_state, read_run

FORMAT = "ebtk-tts-bundle"
VERSION = 1
SHIPPED_MODEL = "data/tts_model.pt"  # inside the ebtk package: the default model of `ebtk synthesize`


# -- sections -----------------------------------------------------------------------------------------
def _acoustic_config(config: dict[str, Any]) -> AcousticConfig:
    ac = config.get("acoustic") or {}
    return from_dict(AcousticConfig, {f.name: ac[f.name] for f in fields(AcousticConfig) if f.name in ac}, "acoustic")


def acoustic_section(run_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """A bundle's ``acoustic`` section from an acoustic or fm run dir (plus ``frontend``, popped by `bundle_from_run`).

    The text → mel model of its latest checkpoint (or `checkpoint`), with its front-end.
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
    """The model of a bundle's ``acoustic`` section, weights loaded, in eval mode."""
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
    """The refiner of a bundle's ``refiner`` section, weights loaded, in eval mode."""
    from ebtk.tts.refiner import build_refiner as build

    model = build(section["kind"], channels=section["channels"], mults=tuple(section["mults"]),
                  text_cond=section["text_cond"])
    _load(model, section["state"], "refiner")
    return model.eval()


def _load(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise EbtkError(f"the {what}'s weights do not fit its config: {str(e).splitlines()[0][:160]}") from None


def _mel_stats(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, float]:
    return {"mean": float(state[f"{prefix}mel_mean"]), "std": float(state[f"{prefix}mel_std"])}


def bundle_from_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The bundle dict of a tts run dir: acoustic, fm or refiner.

    A refiner's acoustic run is read through its `acoustic.checkpoint`, absolute or relative to the refiner's
    run dir.

    Args:
        run_dir: the tts run dir.
        checkpoint: one of the run's snapshots (`train.keep_every`) instead of its latest checkpoint, for a
            learning curve.

    Returns:
        The bundle dict (see the module docstring for its keys).

    Raises:
        EbtkError: not a tts run dir, or a missing / corrupt checkpoint.
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
    else:
        ac_dir = acoustic_run(run_dir, config)
        if ac_dir is None:
            raise EbtkError(f"{run_dir} is a refiner run without acoustic.checkpoint in its config")
        if not ac_dir.is_dir():
            raise EbtkError(f"the acoustic run of {run_dir} is gone: {ac_dir}; hint: export the bundle where both "
                            "run dirs exist (`ebtk export RUN_DIR FILE`), then synthesize from the file")
        check_acoustic_run(ac_dir)
        ac = acoustic_section(ac_dir)
        m = from_dict(TTSModel, config.get("model", {}), "model")
        model_state = {k: v.cpu() for k, v in state["model"].items()}
        refiner = {"kind": m.kind, "channels": m.channels, "mults": list(m.mults), "text_cond": m.text_cond,
                   "state": model_state, "mel": _mel_stats(model_state, "body.")}
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


def write_bundle(bundle: dict[str, Any], path: str | Path) -> Path:
    """Write `bundle` atomically (ebtk.io) to `path`; returns the path."""
    path = Path(path)
    if path.is_dir():
        raise EbtkError(f"{path} is a directory; give a file name for the bundle, e.g. {path / 'model.pt'}")
    atomic_write(path, lambda f: torch.save(bundle, f))
    return path


def export(run_dir: str | Path, path: str | Path) -> Path:
    """Write a tts run's inference bundle (``ebtk export RUN_DIR FILE``): one `weights_only`-loadable file.

    Args:
        run_dir: an acoustic, fm or refiner run dir.
        path: the bundle file to write (atomically).

    Returns:
        The path written.

    Raises:
        EbtkError: not a tts run dir, or a missing / corrupt checkpoint.
    """
    return write_bundle(bundle_from_run(run_dir), path)


def read_bundle(path: str | Path) -> dict[str, Any]:
    """Read a bundle file (``weights_only``) into its dict.

    Raises:
        EbtkError: a missing, corrupt or non-ebtk file, or a bundle of an unknown version; the message says
            what to give instead.
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
    """Speaks text with a bundle: text → phonemes → hypothesis mel → (refined mel) → HiFi-GAN → 22 050 Hz audio.

    Get one from `ebtk.tts.load`. `steps` / `step_size` / `length_scale` default to the bundle's refinement
    defaults; for fm bundles `steps` is the number of Euler steps. Synthesis is deterministic (FM's noise
    comes from `seed`). The vocoder loads on first use.

    Args:
        bundle: the bundle dict (`read_bundle`, `bundle_from_run`).
        device: where the models run.
    """

    def __init__(self, bundle: dict[str, Any], device: str | torch.device = "cpu"):
        from ebtk.tts.text import TextFrontend

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
        """The effective (steps, step size, length scale) of a call: the arguments, else the defaults."""
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
        """(1, N) symbol ids of `text`."""
        if not isinstance(text, str) or not text.strip():
            raise EbtkError("the text is empty; hint: give a sentence to speak")
        return torch.tensor([self.frontend.encode(text)], dtype=torch.long, device=self.device)

    def encode_lines(self, texts: Sequence[str]) -> tuple[list[list[int] | None], dict[int, str]]:
        """Symbol ids of each text (one phonemizer call when all are good), and the texts that cannot be spoken.

        Returns:
            (ids, errors): ids[i] is the id list of text i, or None when it cannot be spoken; errors maps such an
            index to why (empty, or no known symbols).
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
        """A block whose random draws (FM's noise) come from `seed`, leaving the global RNG as it was."""
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
        """The (hypothesis, final mel), each (B, 80, T), of phoneme ids (B, N).

        For fm both are the FM output; for an acoustic bundle both are the hypothesis.

        Raises:
            EbtkError: bad steps, step size or length scale.
        """
        hyp, mel, _ = self._mels(phonemes, None, *self.settings(steps, step_size, length_scale), seed)
        return hyp, mel

    def mels_batch(self, ids: Sequence[Sequence[int]], steps: int | None = None, step_size: float | None = None,
                   length_scale: float | None = None, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(hypothesis, final mel), each (80, F_b)] of symbol id lists, as one right-padded batch.

        Through the acoustic model and the refiner as one batch (the refiner's mask keeps padded frames fixed);
        each equals what `mels` gives for that text alone up to float rounding (fm: up to its noise, drawn for
        the batch).
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
        """A vocoded waveform as float32 numpy on the CPU; non-finite audio is an EbtkError with a hint."""
        if not torch.isfinite(wav).all():
            raise EbtkError("synthesis produced non-finite audio; hint: fewer steps or a smaller step size")
        return wav.detach().to("cpu", torch.float32).numpy()

    def synthesize(self, text: str, steps: int | None = None, step_size: float | None = None,
                   length_scale: float | None = None) -> np.ndarray:
        """Speak `text`.

        Args:
            text: the text (numbers, abbreviations etc. are normalised by the front-end).
            steps: refinement steps (fm: Euler steps); None = the bundle's default; 0 = the hypothesis.
            step_size: η of each refinement step; None = the bundle's default.
            length_scale: duration multiplier (> 1 speaks slower); None = the bundle's default.

        Returns:
            The waveform: float32 numpy in [-1, 1] at 22 050 Hz, shape (samples,).

        Raises:
            EbtkError: empty text or text without known symbols, bad settings, or non-finite audio.
        """
        _, mel = self.mels(self.phonemes(text), steps, step_size, length_scale)
        return self.to_audio(self.vocoder(mel)[0])

    def synthesize_batch(self, texts: Sequence[str], steps: int | None = None, step_size: float | None = None,
                         length_scale: float | None = None,
                         hypothesis: bool = False) -> list[np.ndarray] | list[tuple[np.ndarray, np.ndarray]]:
        """Speak many texts as one batch; each waveform equals `synthesize`'s up to float rounding.

        Args:
            texts: the texts.
            steps: as in `synthesize`.
            step_size: as in `synthesize`.
            length_scale: as in `synthesize`.
            hypothesis: also return each text's unrefined hypothesis audio.

        Returns:
            One float32 waveform (samples,) per text, or (refined, hypothesis) pairs with `hypothesis`.

        Raises:
            EbtkError: an empty text or one without known symbols (the message names its index), or bad settings.
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
        """Speak `text` as audio chunks, each yielded as soon as it is vocoded (low time to first audio).

        The mel (hypothesis and refinement, cheap) is made for the whole text first, on this call; the
        vocoder then runs over overlapping mel chunks (`Vocoder.stream`: the first `first_chunk_frames`
        frames, then chunks doubling up to `chunk_frames`, each with `context_frames` of context on each
        side, default `CONTEXT_FRAMES` = 16, above HiFi-GAN's reach of 13). The joined chunks equal
        `synthesize(text)` up to float rounding.

        Args:
            text: the text.
            chunk_frames: the largest chunk, in mel frames (256 samples each).
            context_frames: mel frames of context on each side of a chunk; None = 16.
            first_chunk_frames: the first chunk's frames (small, for a quick start).
            steps: as in `synthesize`.
            step_size: as in `synthesize`.
            length_scale: as in `synthesize`.

        Returns:
            An iterator of float32 numpy chunks (samples,) at 22 050 Hz.

        Raises:
            EbtkError: empty text, bad settings, or a non-finite mel.
        """
        from ebtk.tts.vocoder import CONTEXT_FRAMES

        _, mel = self.mels(self.phonemes(text), steps, step_size, length_scale)
        if not torch.isfinite(mel).all():
            raise EbtkError("synthesis produced a non-finite mel; hint: fewer steps or a smaller step size")
        chunks = self.vocoder.stream(mel[0], chunk_frames, CONTEXT_FRAMES if context_frames is None
                                     else context_frames, first_chunk_frames)
        return (c.numpy() for c in chunks)

    def save(self, path: str | Path) -> Path:
        """Write this synthesizer's bundle (e.g. to ship a model loaded from a run dir)."""
        return write_bundle(self.bundle, path)


def shipped_model_path() -> Path | None:
    """The model shipped as package data (`ebtk/data/tts_model.pt`), or None when this install has none."""
    try:
        p = resources.files("ebtk").joinpath(SHIPPED_MODEL)
    except (ModuleNotFoundError, TypeError):
        return None
    return Path(str(p)) if p.is_file() else None


def load(path: str | Path | None = None, device: str | torch.device = "cpu") -> Synthesizer:
    """A `Synthesizer` from a bundle file or a tts run dir (read into the same bundle dict).

    Without a path, the shipped model (`shipped_model_path`). `ebtk.tts.load` is the same function.

    Raises:
        EbtkError: a missing or corrupt file, not a tts run dir, or no path and no shipped model (the message
            says what to give).
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


__all__ = ["FORMAT", "SHIPPED_MODEL", "VERSION", "Synthesizer", "acoustic_section", "build_acoustic",
           "build_refiner", "bundle_from_run", "export", "load", "read_bundle", "shipped_model_path",
           "write_bundle"]
