"""FastSpeech-style acoustic model with durations learned by monotonic alignment search (Glow-TTS/Matcha).

phonemes → embedding + conv prenet + transformer encoder → hidden h (B, C, N)
  ├─ per-phoneme Gaussian prior means μ = proj(h) (B, 80, N)  ─ MAS against the mel → hard alignment A
  ├─ duration predictor on h.detach() → log-durations, MSE to log(Σ_j A)
  └─ length regulator (h·A, μ·A) → conv decoder → mel Ŷ (B, 80, T), L1 (or MSE) to the reference

Losses (Matcha's, plus a regression decoder): prior ½‖y − μA‖² per element + duration MSE + decoder L1.

Everything inside works on mels normalised by one global mean and std (buffers, saved with the weights);
inputs and outputs of the public methods are raw log-mels, as `ebtk.tts.audio.mel_spectrogram` makes them.

With the reference's MAS durations, `hypothesis` returns a frame-aligned Ŷ of exactly the reference's
length: the (hypothesis, reference) pairs a refiner is trained on. `infer` uses predicted durations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ebtk.errors import EbtkError
from ebtk.tts.align import alignment_from_durations, durations_from_alignment, gaussian_logp, maximum_path
from ebtk.tts.audio import N_MELS


@dataclass
class AcousticConfig:
    """channels: encoder/decoder width; enc_layers: transformer layers; dec_layers: residual conv blocks;
    dropout: used in training, and at hypothesis time by the `dropout` hyp remedy."""

    channels: int = 96
    enc_layers: int = 2
    heads: int = 2
    dec_layers: int = 4
    kernel: int = 5
    dropout: float = 0.1
    mel_loss: str = "l1"  # l1 | mse

    def validate(self) -> None:
        if self.channels < 4 or self.channels % self.heads:
            raise EbtkError(f"acoustic.channels must be ≥ 4 and divisible by heads, got {self.channels}/{self.heads}")
        if self.enc_layers < 0 or self.dec_layers < 1 or self.kernel % 2 == 0:
            raise EbtkError("acoustic: enc_layers ≥ 0, dec_layers ≥ 1 and an odd kernel are required")
        if not 0 <= self.dropout < 1:
            raise EbtkError(f"acoustic.dropout must be in [0, 1), got {self.dropout}")
        if self.mel_loss not in ("l1", "mse"):
            raise EbtkError(f"acoustic.mel_loss must be l1 or mse, got {self.mel_loss!r}")


def sequence_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """shape: (B,) -> (B, 1, max_len) float mask, 1 on the first `lengths[b]` positions."""
    n = int(lengths.max()) if max_len is None else int(max_len)
    return (torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]).float()[:, None, :]


def sinusoids(n: int, dim: int, device: torch.device) -> torch.Tensor:
    """Transformer positional encoding. shape: -> (1, dim, n)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe.T[None]


class ConvNorm(nn.Module):
    """Conv1d → ReLU → LayerNorm over channels → dropout, masked. shape: (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.norm = nn.LayerNorm(c_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv(x * mask))
        return self.drop(self.norm(h.transpose(1, 2)).transpose(1, 2)) * mask


class TextEncoder(nn.Module):
    """shape: phonemes (B, N) long, mask (B, 1, N) -> hidden (B, C, N)."""

    def __init__(self, n_symbols: int, cfg: AcousticConfig):
        super().__init__()
        c = cfg.channels
        self.emb = nn.Embedding(n_symbols, c)
        nn.init.normal_(self.emb.weight, 0.0, c**-0.5)
        self.prenet = nn.ModuleList([ConvNorm(c, c, cfg.kernel, cfg.dropout) for _ in range(3)])
        layer = nn.TransformerEncoderLayer(
            c, cfg.heads, 4 * c, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.transformer = (
            nn.TransformerEncoder(layer, cfg.enc_layers, enable_nested_tensor=False) if cfg.enc_layers else None
        )
        self.channels = c

    def forward(self, phonemes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.emb(phonemes).transpose(1, 2) * math.sqrt(self.channels) * mask
        for layer in self.prenet:
            h = h + layer(h, mask)
        h = h + sinusoids(h.shape[-1], self.channels, h.device)
        if self.transformer is not None:
            h = self.transformer(h.transpose(1, 2), src_key_padding_mask=mask[:, 0] < 0.5).transpose(1, 2)
        return h * mask


class DurationPredictor(nn.Module):
    """shape: hidden (B, C, N), mask (B, 1, N) -> log-durations (B, N) (0 on padding)."""

    def __init__(self, c: int, kernel: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList([ConvNorm(c, c, 3, dropout), ConvNorm(c, c, 3, dropout)])
        self.out = nn.Conv1d(c, 1, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h = layer(h, mask)
        return (self.out(h) * mask)[:, 0]


class ConvDecoder(nn.Module):
    """Residual dilated conv stack. shape: (h_y (B, C, T), μ_y (B, 80, T), mask) -> normalised mel (B, 80, T).

    Predicts a residual over the aligned prior means μ_y, which already carry the coarse spectrum. Frame
    positions are added as sinusoids (as FastSpeech does after its length regulator): inside a phoneme
    the regulated inputs are constant, and position is what tells its frames apart."""

    def __init__(self, cfg: AcousticConfig):
        super().__init__()
        c = cfg.channels
        self.inp = nn.Conv1d(c + N_MELS, c, 1)
        self.blocks = nn.ModuleList(
            [ConvNorm(c, c, cfg.kernel, cfg.dropout, dilation=2 ** (i % 3)) for i in range(cfg.dec_layers)]
        )
        self.out = nn.Conv1d(c, N_MELS, 1)

    def forward(self, h_y: torch.Tensor, mu_y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = (self.inp(torch.cat([h_y, mu_y], 1)) + sinusoids(h_y.shape[-1], h_y.shape[1], h_y.device)) * mask
        for blk in self.blocks:
            h = h + blk(h, mask)
        return (mu_y + self.out(h)) * mask


class AcousticModel(nn.Module):
    """The FastSpeech-style acoustic model (see the module docstring). Not an energy: no `kind`."""

    def __init__(self, n_symbols: int, cfg: AcousticConfig | None = None, mel_mean: float = 0.0, mel_std: float = 1.0):
        super().__init__()
        self.cfg = cfg or AcousticConfig()
        self.n_symbols = int(n_symbols)
        self.register_buffer("mel_mean", torch.tensor(float(mel_mean)))
        self.register_buffer("mel_std", torch.tensor(float(mel_std)))
        self.encoder = TextEncoder(n_symbols, self.cfg)
        self.proj_mu = nn.Conv1d(self.cfg.channels, N_MELS, 1)
        self.duration = DurationPredictor(self.cfg.channels, 3, self.cfg.dropout)
        self.decoder = self._build_decoder()

    def _build_decoder(self) -> nn.Module:
        return ConvDecoder(self.cfg)

    # -- normalisation ----------------------------------------------------------------------------
    @torch.no_grad()
    def set_mel_stats(self, mean: float, std: float) -> None:
        """Set the normalisation (a fresh run's data statistics); saved with the weights from then on."""
        self.mel_mean.fill_(float(mean))
        self.mel_std.fill_(float(std))

    def norm(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.mel_mean) / self.mel_std

    def denorm(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.mel_std + self.mel_mean

    # -- pieces -----------------------------------------------------------------------------------
    def encode(self, phonemes: torch.Tensor, ph_lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> h (B, C, N), μ (B, 80, N) normalised, log-durations (B, N), phoneme mask (B, 1, N)."""
        if phonemes.dim() != 2:
            raise EbtkError(f"phonemes must be (B, N) ids, got shape {tuple(phonemes.shape)}")
        if int(phonemes.max()) >= self.n_symbols or int(phonemes.min()) < 0:
            raise EbtkError("phoneme id out of range for this model's symbol table; hint: same text front-end?")
        ph_mask = sequence_mask(ph_lengths, phonemes.shape[1]).to(phonemes.device)
        h = self.encoder(phonemes, ph_mask)
        mu = self.proj_mu(h) * ph_mask
        logw = self.duration(h.detach(), ph_mask)
        return h, mu, logw, ph_mask

    def align(self, mu: torch.Tensor, y_n: torch.Tensor, ph_lengths: torch.Tensor, mel_lengths: torch.Tensor):
        """MAS path (B, N, T) between normalised prior means μ (B, 80, N) and normalised mel (B, 80, T)."""
        return maximum_path(gaussian_logp(mu.detach(), y_n.detach()), ph_lengths, mel_lengths)

    def regulate(self, h: torch.Tensor, mu: torch.Tensor, path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Length regulator: (h (B, C, N), μ (B, 80, N), path (B, N, T)) -> (h_y (B, C, T), μ_y (B, 80, T))."""
        return torch.bmm(h, path), torch.bmm(mu, path)

    def decode(self, h_y: torch.Tensor, mu_y: torch.Tensor, mask: torch.Tensor, **kw) -> torch.Tensor:  # noqa: ANN003
        """Normalised mel from the regulated encoding. shape: -> (B, 80, T)."""
        return self.decoder(h_y, mu_y, mask)

    # -- training ---------------------------------------------------------------------------------
    def losses(
        self, phonemes: torch.Tensor, ph_lengths: torch.Tensor, mel: torch.Tensor, mel_lengths: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{dur, prior, mel} losses for one batch; mel (B, 80, T) raw log-mel, padded."""
        h, mu, logw, ph_mask = self.encode(phonemes, ph_lengths)
        y_n = self.norm(mel)
        mel_mask = sequence_mask(mel_lengths, mel.shape[-1]).to(mel.device)
        path = self.align(mu, y_n, ph_lengths, mel_lengths)
        dur = durations_from_alignment(path)
        logw_target = torch.log(dur.float().clamp_min(1.0)) * ph_mask[:, 0]
        dur_loss = (logw - logw_target).pow(2).sum() / ph_mask.sum()
        h_y, mu_y = self.regulate(h, mu, path)
        n_el = mel_mask.sum() * N_MELS
        prior = (0.5 * (y_n - mu_y).pow(2) * mel_mask).sum() / n_el
        out = {"dur": dur_loss, "prior": prior}
        out.update(self.decoder_loss(h_y, mu_y, y_n, mel_mask))
        return out

    def decoder_loss(self, h_y, mu_y, y_n, mel_mask) -> dict[str, torch.Tensor]:  # noqa: ANN001
        pred = self.decode(h_y, mu_y, mel_mask)
        diff = (pred - y_n) * mel_mask
        err = diff.abs() if self.cfg.mel_loss == "l1" else diff.pow(2)
        return {"mel": err.sum() / (mel_mask.sum() * N_MELS)}

    # -- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def align_durations(
        self, phonemes: torch.Tensor, ph_lengths: torch.Tensor, mel: torch.Tensor, mel_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Ground-truth durations (B, N) of a reference mel by MAS (each row sums to mel_lengths[b])."""
        _, mu, _, _ = self.encode(phonemes, ph_lengths)
        return durations_from_alignment(self.align(mu, self.norm(mel), ph_lengths, mel_lengths))

    def _from_durations(self, h, mu, durations, ph_mask, **decode_kw) -> tuple[torch.Tensor, ...]:  # noqa: ANN001
        durations = durations.long() * ph_mask[:, 0].long()
        path = alignment_from_durations(durations)
        mel_mask = (path.sum(1, keepdim=True) > 0).float()
        h_y, mu_y = self.regulate(h, mu, path)
        return self.decode(h_y, mu_y, mel_mask, **decode_kw), mu_y, mel_mask

    @torch.no_grad()
    def hypothesis(
        self, phonemes: torch.Tensor, ph_lengths: torch.Tensor, durations: torch.Tensor, **decode_kw
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame-aligned hypothesis from given durations (B, N).

        -> (Ŷ (B, 80, T) raw log-mel, μ_y (B, 80, T) raw aligned prior means, mask (B, 1, T)), with
        T = max_b Σ durations[b]; padded frames are 0.
        """
        h, mu, _, ph_mask = self.encode(phonemes, ph_lengths)
        y_n, mu_y, mask = self._from_durations(h, mu, durations, ph_mask, **decode_kw)
        return self.denorm(y_n) * mask, self.denorm(mu_y) * mask, mask

    @torch.no_grad()
    def predict_durations(
        self, phonemes: torch.Tensor, ph_lengths: torch.Tensor, length_scale: float = 1.0
    ) -> torch.Tensor:
        """Integer durations (B, N) ≥ 1 on valid phonemes: ceil(exp(log-duration) · length_scale)."""
        _, _, logw, ph_mask = self.encode(phonemes, ph_lengths)
        return (torch.ceil(torch.exp(logw) * length_scale).clamp_min(1) * ph_mask[:, 0]).long()

    @torch.no_grad()
    def infer(
        self, phonemes: torch.Tensor, ph_lengths: torch.Tensor | None = None, length_scale: float = 1.0, **decode_kw
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text-only synthesis with predicted durations: -> (Ŷ, μ_y, mask) as `hypothesis`."""
        if ph_lengths is None:
            ph_lengths = torch.full((phonemes.shape[0],), phonemes.shape[1], device=phonemes.device)
        dur = self.predict_durations(phonemes, ph_lengths, length_scale)
        return self.hypothesis(phonemes, ph_lengths, dur, **decode_kw)
