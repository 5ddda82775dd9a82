"""Padding and cropping of utterances into batch tensors (plain tensors, no task or Batch type involved).

Shapes: phonemes (N,) long, mels (80, T) raw log-mel; batches pad on the right.
"""

from __future__ import annotations

import torch

from ebtk.tts.acoustic import sequence_mask
from ebtk.tts.audio import N_MELS


def pad_stack(seqs: list[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad along the last axis. shape: [(..., L_i)] -> ((B, ..., max L), lengths (B,))."""
    lengths = torch.tensor([s.shape[-1] for s in seqs])
    out = seqs[0].new_full((len(seqs), *seqs[0].shape[:-1], int(lengths.max())), value)
    for i, s in enumerate(seqs):
        out[i, ..., : s.shape[-1]] = s
    return out, lengths


def collate(phonemes: list[torch.Tensor], mels: list[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Whole utterances -> {phonemes (B, N), ph_lengths (B,), mel (B, 80, T), mel_lengths (B,), mask (B, 1, T)}."""
    ph, ph_len = pad_stack(phonemes, pad_id)
    mel, mel_len = pad_stack(mels)
    return {"phonemes": ph, "ph_lengths": ph_len, "mel": mel, "mel_lengths": mel_len,
            "mask": sequence_mask(mel_len, mel.shape[-1])}


def random_crops(refs: list[torch.Tensor], others: list[list[torch.Tensor]], crop: int,
                 gen: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """The same random `crop`-frame window of each reference (80, T_i) and of its frame-aligned companions
    (hypotheses, text encodings: one list per kind, one tensor per reference). Shorter utterances are
    zero-padded. -> (refs (B, 80, crop), [companions (B, 80, crop)], mask (B, 1, crop))."""
    n = len(refs)
    x = torch.zeros(n, N_MELS, crop)
    outs = [torch.zeros(n, N_MELS, crop) for _ in others]
    mask = torch.zeros(n, 1, crop)
    starts = torch.rand(n, generator=gen)
    for k, ref in enumerate(refs):
        t = ref.shape[-1]
        s = int(starts[k] * (t - crop + 1)) if t > crop else 0
        e = min(t, s + crop)
        x[k, :, : e - s] = ref[:, s:e]
        for out, kind in zip(outs, others):
            out[k, :, : e - s] = kind[k][:, s:e].float()
        mask[k, :, : e - s] = 1
    return x, outs, mask
