"""The hypotheses file (``hypotheses.pt`` in an acoustic run dir): format, writer and loader.

An acoustic run writes frame-aligned hypotheses of every utterance (ground-truth MAS durations, so each
has exactly its reference's frame count): the (hypothesis, reference) pairs refiners train and are
evaluated on. Format (a dict, `torch.load(weights_only=True)`-able):

* ``version`` (`VERSION`), ``corpus`` (absolute path of the corpus), ``splits`` {train, val, test[,
  unseen-words]: [ids]};
* ``mel_mean``, ``mel_std``: the acoustic model's normalisation, which refiners adopt;
* ``hyp`` {id: (80, T) fp16}: every utterance, dropout off; ``hyp_dropout`` {id: (80, T) fp16}: the
  training split with the acoustic model's dropout on (one fixed MC-dropout draw, the `dropout` remedy);
* ``text`` {id: (80, T) fp16}: aligned prior means μ_y (an upsampled text encoding); ``durations``
  {id: (N,) long}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ebtk.errors import EbtkError
from ebtk.io import atomic_write, load_torch
from ebtk.tts.batches import collate
from ebtk.tts.dataset import UNSEEN

HYPOTHESES = "hypotheses.pt"
VERSION = 1
KINDS = ("hyp", "hyp_dropout", "text", "durations")


def write_hypotheses(path: str | Path, model: nn.Module, utterances: dict[str, tuple[torch.Tensor, torch.Tensor]],
                     splits: dict[str, list[str]], corpus: str | Path, pad_id: int = 0,
                     batch_size: int = 8) -> dict[str, float | None]:
    """Write the file for `model` (an AcousticModel) at `path`; returns the hypotheses' mel MSE / L1 per
    split and kind (``mel_mse_train``, ``mel_mse_train_dropout``, ``mel_mse_val``, ...: the measurement of
    the hyp remedy). utterances: id -> (phonemes (N,), reference mel (80, T)); ids with T < N (too short
    to align) are left out. The global RNG is reseeded for the dropout draws and restored afterwards."""
    from ebtk.tts.acoustic import AcousticModel

    if not isinstance(model, AcousticModel):
        raise EbtkError("hypotheses come from an acoustic model")
    dev = next(model.parameters()).device
    ok = {k: [i for i in v if utterances[i][1].shape[-1] >= len(utterances[i][0])] for k, v in splits.items()}
    out: dict[str, Any] = {"version": VERSION, "corpus": str(Path(corpus).resolve()), "splits": ok,
                           "mel_mean": float(model.mel_mean), "mel_std": float(model.mel_std),
                           **{k: {} for k in KINDS}}
    sq: dict[str, list[float]] = {}
    was_training = model.training
    gen_state = torch.get_rng_state()
    torch.manual_seed(777)
    try:
        for split in ["train"] + [k for k in ok if k != "train"]:
            ids = ok.get(split, [])
            for kind in ("hyp", "hyp_dropout") if split == "train" else ("hyp",):
                for s in range(0, len(ids), batch_size):
                    chunk = ids[s: s + batch_size]
                    b = collate([utterances[i][0] for i in chunk], [utterances[i][1] for i in chunk], pad_id)
                    b = {k: v.to(dev) for k, v in b.items()}
                    model.eval()
                    dur = model.align_durations(b["phonemes"], b["ph_lengths"], b["mel"], b["mel_lengths"])
                    model.train(kind == "hyp_dropout")
                    hyp, mu_y, _ = model.hypothesis(b["phonemes"], b["ph_lengths"], dur)
                    for k, uid in enumerate(chunk):
                        t = int(b["mel_lengths"][k])
                        out[kind][uid] = hyp[k, :, :t].half().cpu()
                        d = hyp[k, :, :t] - b["mel"][k, :, :t]
                        sq.setdefault(f"{split}_{kind}", []).append(float(d.pow(2).mean()))
                        sq.setdefault(f"{split}_{kind}_l1", []).append(float(d.abs().mean()))
                        if kind == "hyp":
                            out["text"][uid] = mu_y[k, :, :t].half().cpu()
                            out["durations"][uid] = dur[k, : int(b["ph_lengths"][k])].cpu()
    finally:
        model.train(was_training)
        torch.set_rng_state(gen_state)
    atomic_write(path, lambda f: torch.save(out, f))
    means = {k: sum(v) / len(v) for k, v in sq.items()}
    return {
        "mel_mse_train": means.get("train_hyp"),
        "mel_mse_train_dropout": means.get("train_hyp_dropout"),
        "mel_mse_val": means.get("val_hyp"),
        "mel_mse_test": means.get("test_hyp"),
        **({"mel_mse_unseen_words": means[f"{UNSEEN}_hyp"]} if f"{UNSEEN}_hyp" in means else {}),
        "mel_l1_train": means.get("train_hyp_l1"),
        "mel_l1_val": means.get("val_hyp_l1"),
    }


def load_hypotheses(run_dir: str | Path) -> dict[str, Any]:
    """The hypotheses file of the acoustic run `run_dir`; a missing, foreign or outdated file is an EbtkError
    with the way to make it."""
    path = Path(run_dir) / HYPOTHESES
    if not path.is_file():
        raise EbtkError(f"{run_dir} has no {HYPOTHESES}; hint: it must be a finished `tts --objective acoustic` "
                        "run (`ebtk evaluate` on it writes the file)")
    h = load_torch(path, "hypotheses file")
    if not isinstance(h, dict) or h.get("version") != VERSION:
        raise EbtkError(f"{path} is from another ebtk version; re-run `ebtk evaluate {run_dir}`")
    return h
