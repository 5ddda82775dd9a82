"""Text → phonemes → hypothesis mel → refined mel → HiFi-GAN → 22 050 Hz wav, from a trained run dir.

`run_dir` may be a refiner run (its `acoustic.checkpoint` gives the acoustic model), an acoustic run
(hypothesis only, no refinement) or a flow-matching run (`steps` = Euler steps).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ebtk.errors import EbtkError


def synthesize(run_dir: str | Path, text: str, out: str | Path, steps: int | None = None,
               step_size: float | None = None, write_hypothesis: bool = False, device: str = "cpu",
               quiet: bool = False) -> dict[str, Any]:
    """Synthesize `text` into `out` (wav). Returns {out, hypothesis, seconds, rtf, steps, step_size, frames}.

    steps / step_size default to the run's `refine.steps` / `refine.step_size`. `write_hypothesis` also
    writes the unrefined hypothesis next to `out` as ``<stem>_hyp.wav``. RTF counts everything after the
    text front-end (acoustic model, refinement, vocoder), after a warm-up call.
    """
    from ebtk.train.trainer import load_run
    from ebtk.tts.audio import SAMPLE_RATE, save_wav
    from ebtk.tts.refiner import refine

    if not isinstance(text, str) or not text.strip():
        raise EbtkError("--text is empty; hint: give a sentence to speak")
    out = Path(out)
    config, task, model, _, _ = load_run(run_dir, device)
    if config["task"] != "tts":
        raise EbtkError(f"{run_dir} is a {config['task']!r} run; synthesize needs a tts run")
    rc = task.refine_cfg
    k = rc.steps if steps is None else int(steps)
    eta = rc.step_size if step_size is None else float(step_size)
    if k < 0 or eta <= 0:
        raise EbtkError(f"--steps must be ≥ 0 and --step-size > 0, got {k}, {eta}")
    ids = task.frontend.encode(text)
    ph = torch.tensor([ids], dtype=torch.long, device=device)
    name = task.objective_name
    if name == "fm":
        k = max(k, 1) if steps is not None else max(task.eval_cfg.fm_steps)

        def run() -> tuple[torch.Tensor, torch.Tensor]:
            y, _, _ = model.infer(ph, None, rc.length_scale, n_steps=k)
            return y, y
    else:
        acoustic = model if name == "acoustic" else task.load_acoustic(device)
        refiner = None if name == "acoustic" else model
        if refiner is None:
            k = 0

        def run() -> tuple[torch.Tensor, torch.Tensor]:
            hyp, mu_y, mask = acoustic.infer(ph, None, rc.length_scale)
            if refiner is None:
                return hyp, hyp
            cond = {"hyp": hyp, "mask": mask}
            if task.model_cfg.text_cond:
                cond["text"] = mu_y
            return hyp, refine(refiner, hyp, k, eta, cond)[0]

    task.vocoder_device = device
    voc = task.vocoder
    run()  # warm-up (first-call allocations), so the RTF describes steady-state synthesis
    voc(torch.zeros(1, 80, 8, device=device))
    t0 = time.perf_counter()
    hyp, mel = run()
    wav = voc(mel)[0].cpu()
    secs_compute = time.perf_counter() - t0
    if not torch.isfinite(wav).all():
        raise EbtkError("synthesis produced non-finite audio; hint: fewer --steps or a smaller --step-size")
    save_wav(out, wav.numpy(), SAMPLE_RATE)
    hyp_path = None
    if write_hypothesis:
        hyp_path = out.with_name(f"{out.stem}_hyp.wav")
        save_wav(hyp_path, voc(hyp)[0].cpu().numpy(), SAMPLE_RATE)
    seconds = wav.numel() / SAMPLE_RATE
    result = {"out": str(out), "hypothesis": None if hyp_path is None else str(hyp_path), "seconds": seconds,
              "rtf": secs_compute / seconds, "steps": k, "step_size": eta, "frames": int(mel.shape[-1]),
              "phonemes": len(ids)}
    if not quiet:
        print(f"wrote {out}: {seconds:.2f} s of audio, {k} refinement steps of size {eta:g}, "
              f"RTF {result['rtf']:.3f}")
    return result
