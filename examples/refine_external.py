"""Refine another TTS system's output with an ebtk refiner: train on its mels, then refine them.

"Your model" here is espeak-ng reading the corpus' sentences; the corpus (the references) is flite's voice
reading the same sentences. Any model works the same way: write its log-mels, in ebtk's convention, as
`<utterance id>.npy` (80, T), one per utterance of an LJSpeech-layout corpus. A model that outputs audio gets
its mels from `ebtk.tts.audio.mel_spectrogram`, as below; lengths may differ from the references' (they are
aligned by DTW for training).

The same steps on the command line:

    ebtk train tts --objective delta --out RUN data.path=CORPUS hypotheses.dir=MELS
    ebtk export RUN refiner.pt
    ebtk refine refiner.pt MELS OUT --wav

    python examples/refine_external.py --steps 300
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

import ebtk.tts
from ebtk.train.trainer import train
from ebtk.tts.audio import load_wav, mel_spectrogram
from ebtk.tts.bundle import export
from ebtk.tts.corpus import make_corpus
from ebtk.tts.dataset import LJSpeechCorpus
from ebtk.tts.external import dtw_align
from ebtk.tts.refine_mels import refine_files


def your_model_mels(corpus: LJSpeechCorpus, out: Path) -> None:
    """Stand-in for your model: espeak-ng speaks each text; its audio's ebtk log-mel is saved as <id>.npy."""
    out.mkdir(parents=True, exist_ok=True)
    for u in corpus.items:
        wav = out / f"{u.id}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), u.text], check=True, capture_output=True)
        mel = mel_spectrogram(torch.from_numpy(load_wav(wav)))  # (80, T): ebtk's (and HiFi-GAN's) convention
        np.save(out / f"{u.id}.npy", mel.numpy())
        wav.unlink()


def aligned_mse(mel: np.ndarray, ref: np.ndarray) -> float:
    """Mel MSE to the reference after DTW onto its time axis (the two systems speak at different rates)."""
    return float(np.mean((dtw_align(mel, ref) - ref) ** 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="refiner training steps")
    ap.add_argument("--n", type=int, default=12, help="corpus utterances")
    ap.add_argument("--out", help="work folder (default: a temporary one)")
    a = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.out or tmp)
        corpus = make_corpus(work / "corpus", n=a.n, seed=0, engine="flite")  # the references
        c = LJSpeechCorpus(corpus)
        mels = work / "your_model_mels"
        your_model_mels(c, mels)

        # 1. train a delta refiner on (your mel, reference) pairs: ebtk train tts --objective delta ...
        run = work / "refiner_run"
        train("tts", "delta", run, overrides=[
            f"data.path={corpus}", f"hypotheses.dir={mels}", f"train.steps={a.steps}", "data.n_val=1",
            "data.n_unseen=0", "data.n_test=2", "data.crop=64", "train.batch_size=8", "train.lr=2e-3",
            "model.channels=16", "model.mults=[1,2]", "eval.n_test=1", "eval.dnsmos=false",
            "eval.n_wavs=0"], progress=False)
        bundle = export(run, work / "refiner.pt")  # ebtk export RUN refiner.pt: the refiner alone

        # 2. refine: in Python ...
        refiner = ebtk.tts.load_refiner(bundle)
        train_ids = c.splits(val=1, test=2, seed=0)["train"]
        before, after = [], []
        for uid in train_ids:
            hyp, ref = np.load(mels / f"{uid}.npy"), c.mel(uid).numpy()
            before.append(aligned_mse(hyp, ref))
            after.append(aligned_mse(refiner.refine(hyp), ref))
        print(f"{len(train_ids)} training utterances, DTW-aligned mel MSE to the reference: hypothesis "
              f"{np.mean(before):.3f}, after one step {np.mean(after):.3f}")
        # ... or a folder at once, with wavs: ebtk refine refiner.pt MELS OUT --wav
        res = refine_files(bundle, mels, work / "refined", wav=True, quiet=True)
        print(f"refined {len(res['written'])} mels into {work / 'refined'} ({len(res['wavs'])} wavs at 22 050 Hz)")


if __name__ == "__main__":
    main()
