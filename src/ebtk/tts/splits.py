"""The val/test utterances of an acoustic run, ready for `ebtk.tts.evaluate.score_systems`.

Studies and the shipped model's evaluation score the same utterances in two conditions: *from text* (the raw
metadata text through a synthesizer's own front end, as `ebtk synthesize` sees it) and *teacher-forced* (the
run's hypotheses file: the hypothesis made with ground-truth durations and the aligned text encoding). Both
need the recording for scoring; this is the one place that gathers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ebtk.errors import EbtkError
from ebtk.tts.evaluate import EvalUtterance


class SplitUtterances:
    """`utterances(split)`: the `split` ("val" or "test") of the acoustic run `acoustic_run` as
    `EvalUtterance`s (recording, its mel, phonemes by `synth`'s front end; with `teacher_forced`, also the
    hypothesis and text encoding from the run's hypotheses file). The split is the hypotheses file's
    (utterances too short to align are left out), the same for every caller."""

    def __init__(self, acoustic_run: str | Path, synth: Any, teacher_forced: bool = False):
        from ebtk.tasks.base import build_task
        from ebtk.train.checkpoint import load_checkpoint
        from ebtk.tts.hypotheses import load_hypotheses

        run = Path(acoustic_run)
        self.hyps = load_hypotheses(run)
        self.task = build_task(load_checkpoint(run / "checkpoint.pt")["config"], run)
        self.synth = synth
        self.teacher_forced = teacher_forced
        self._cache: dict[tuple[str, int | None], list[EvalUtterance]] = {}

    def utterances(self, split: str, n: int | None = None) -> list[EvalUtterance]:
        """The split's utterances (its first `n` only, when given: e.g. a sample of the training split)."""
        from ebtk.tts.audio import load_wav, mel_spectrogram

        if (split, n) not in self._cache:
            items = self.task.items()
            ids = list(self.hyps["splits"][split])[:n]
            encoded, errors = self.synth.encode_lines([items[i][0] for i in ids])
            if errors:
                raise EbtkError(f"{split} texts the front end cannot speak: {errors}")
            out = []
            for uid, ph in zip(ids, encoded):
                wav = load_wav(items[uid][2])
                extra = ({"hyp": self.hyps["hyp"][uid].float(), "text": self.hyps["text"][uid].float()}
                         if self.teacher_forced else {})
                out.append(EvalUtterance(id=uid, wav=wav, mel=mel_spectrogram(torch.from_numpy(wav)),
                                         phonemes=torch.tensor(ph, dtype=torch.long), **extra))
            self._cache[(split, n)] = out
        return self._cache[(split, n)]
