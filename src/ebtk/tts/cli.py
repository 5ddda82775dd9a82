"""`ebtk corpus make|check`, `ebtk evaluate-audio` and `ebtk refine`; attached to the main parser by :func:`add_cli`.

Import-light on purpose: the main CLI imports this module to build its parser, so the speech stack (torch
audio, librosa, pyworld, onnxruntime) is only imported when one of these commands runs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _corpus_make(args: argparse.Namespace) -> int:
    from ebtk.io import check_output_dir
    from ebtk.tts.corpus import DEFAULT_ENGINE, make_corpus

    check_output_dir(args.dir, "DIR")
    t0 = time.perf_counter()
    path = make_corpus(args.dir, n=args.n, seed=args.seed, engine=args.engine or DEFAULT_ENGINE, voice=args.voice,
                       vary=not args.no_vary, workers=args.workers, text=args.text)
    info = json.loads((path / "corpus.json").read_text())
    sp = info.get("default_splits") or {}
    train_vocab = f", {sp['train_vocabulary']} in the default training split" if sp else ""
    print(f"corpus: {path}  ({info['n']} utterances, {info['total_seconds'] / 60:.1f} min of speech, "
          f"{info['vocabulary']} distinct words{train_vocab}, text {info['text']}, "
          f"engine {info['engine']} voice {','.join(info['voices'])}, {time.perf_counter() - t0:.1f} s)")
    return 0


def _corpus_check(args: argparse.Namespace) -> int:
    from ebtk.tts.dataset import LJSpeechCorpus

    c = LJSpeechCorpus(args.dir)
    s = c.validate(strict=args.strict)
    rates = ", ".join(f"{r} Hz: {n}" for r, n in sorted(s["rates"].items()))
    print(f"ok: {s['n']} utterances, {s['hours'] * 60:.1f} min ({rates})")
    return 0


def _evaluate_audio(args: argparse.Namespace) -> int:
    from ebtk.io import check_output_file
    from ebtk.metrics.speech import evaluate_dirs

    if args.out:
        check_output_file(args.out)
    res = evaluate_dirs(args.ref_dir, args.syn_dir, with_dnsmos=not args.no_dnsmos)
    keys = [k for k in ("mcd", "logf0_rmse", "vuv", "dnsmos_ovrl", "dnsmos_ovrl_ref") if k in res]
    name_w = max(8, *(len(n) for n in res["per_file"]))
    print(f"{'file':<{name_w}}  " + "  ".join(f"{k:>15}" for k in keys))
    for name, m in res["per_file"].items():
        print(f"{name:<{name_w}}  " + "  ".join(f"{m[k]:>15.4f}" for k in keys))
    print(f"{'mean (' + str(res['n']) + ')':<{name_w}}  " + "  ".join(f"{res[k]:>15.4f}" for k in keys))
    print(f"matched {res['n']} of {res['n_ref']} reference and {res['n_syn']} synthesized wavs")
    for side, d in (("only_ref", args.ref_dir), ("only_syn", args.syn_dir)):
        if res[side]:
            print(f"unmatched, only in {d} ({len(res[side])}): {', '.join(res[side])}")
    if args.out:
        from ebtk.io import atomic_write_text

        out = Path(args.out)
        atomic_write_text(out, json.dumps(res, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _refine(args: argparse.Namespace) -> int:
    from ebtk.tts.refine_mels import refine_files

    refine_files(args.model, args.input, args.out, steps=args.steps, step_size=args.step_size, wav=args.wav,
                 device=args.device)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register `corpus` (make, check), `evaluate-audio` and `refine` on the main `ebtk` subparsers."""
    c = subparsers.add_parser("corpus", help="build or check an LJSpeech-layout speech corpus")
    csub = c.add_subparsers(dest="corpus_command", required=True)
    m = csub.add_parser("make", help="synthesize N varied sentences (flite or espeak-ng) into DIR, LJSpeech layout")
    m.add_argument("dir")
    m.add_argument("--n", type=int, default=200, help="number of utterances (default 200)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--engine", choices=["flite", "espeak"], default=None,
                   help="speech engine (default: the measured best, see results/tts/engine_choice.md)")
    m.add_argument("--voice", help="engine voice, or several comma-separated to draw per utterance")
    m.add_argument("--text", choices=["mixed", "grammar"], default="mixed",
                   help="sentences: mixed (default: ~80%% WordNet examples, ~20%% the grammar's numbers, dates and "
                        "money) or grammar (the narrow built-in grammar alone)")
    m.add_argument("--no-vary", action="store_true", help="same rate and pitch for every utterance")
    m.add_argument("--workers", type=int, help="parallel synthesis jobs (default: min(4, CPUs))")
    m.set_defaults(func=_corpus_make,
                   on_interrupt="interrupted; the corpus is incomplete: re-run the same command to redo it")

    k = csub.add_parser("check", help="validate a corpus dir (metadata, wavs, texts, sample rates)")
    k.add_argument("dir")
    k.add_argument("--strict", action="store_true", help="reject wavs not at 22 050 Hz")
    k.set_defaults(func=_corpus_check)

    e = subparsers.add_parser("evaluate-audio",
                              help="MCD, log-F0 RMSE, V/UV error and DNSMOS of SYN_DIR vs REF_DIR (wavs by name)")
    e.add_argument("ref_dir")
    e.add_argument("syn_dir")
    e.add_argument("--out", help="write the results as JSON")
    e.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (faster)")
    e.set_defaults(func=_evaluate_audio)

    r = subparsers.add_parser("refine", help="refine another model's log-mels (.npy, 80 × T, ebtk's convention) with a "
                                             "trained refiner; --wav also vocodes them")
    r.add_argument("model", metavar="MODEL", help="a refiner bundle from `ebtk export` or a refiner run dir")
    r.add_argument("input", metavar="IN", help="one .npy log-mel (80, T) or a folder of them")
    r.add_argument("out", metavar="OUT", help="folder for the refined <name>.npy (and <name>.wav with --wav)")
    r.add_argument("--steps", type=int, help="refinement steps (default: the model's)")
    r.add_argument("--step-size", type=float, help="step size η (default: the η the refiner was trained for)")
    r.add_argument("--wav", action="store_true", help="also write 22 050 Hz wavs (HiFi-GAN, LJSpeech weights)")
    r.add_argument("--device", default="cpu")
    r.set_defaults(func=_refine)
