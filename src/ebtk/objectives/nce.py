"""Binary noise-contrastive estimation (Gutmann & Hyvärinen) with a noise of known log-density.

The model is trained to tell data from ν noise samples per data point with the logit
G(u) = −E_θ(u) − c − log q(u) − log ν, where c is a learned log-normaliser (so the model need not be
normalised: at the optimum c = log Z_θ). Loss = −E_data log σ(G) − ν·E_noise log(1 − σ(G)).

Noise choices:
* ``gaussian``: N(μ, s·Σ) fitted to the (flattened) training data (the `data` argument; without it,
  to the first batch), with ``noise_scale`` s inflating the covariance so the noise covers the data's tails.
* ``hyp``: for refiner batches, q(u | Ŷ) = N(u; Ŷ, σ²I) around the hypothesis. Its log-density is taken
  *without* the constant −(n/2)·log 2πσ² (n = valid elements): for a mel of 80×T elements that constant
  is in the tens of thousands, which a learned c or an energy bias could only reach after millions of
  steps; dropping it leaves the classifier's optimum the same up to a constant that c absorbs.

This module also holds helpers shared by the other NCE-type objectives (SA-NCE, FCE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective, data_stats
from ebtk.registry import register


def tile_cond(cond: Any, k: int) -> Any:
    """`k` copies of a conditioning stacked along the batch dim (tensors, dicts, tuples; None stays)."""
    if cond is None or k == 1:
        return cond
    if isinstance(cond, torch.Tensor):
        return torch.cat([cond] * k, 0)
    if isinstance(cond, dict):
        return {key: tile_cond(v, k) for key, v in cond.items()}
    if isinstance(cond, tuple | list):
        return type(cond)(tile_cond(v, k) for v in cond)
    return cond


def nce_loss(g_data: torch.Tensor, g_noise: torch.Tensor, nu: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Binary NCE loss from logits of data (B,) and noise (ν·B,) points, plus its terms and accuracy.

    −mean log σ(G_data) − ν·mean log(1 − σ(G_noise)); log(1 − σ(G)) = logsigmoid(−G) is stable.
    Accuracy is that of the Bayes rule G > 0 ⇔ "data" over all B + νB points.
    """
    term_data = -F.logsigmoid(g_data).mean()
    term_noise = -nu * F.logsigmoid(-g_noise).mean()
    with torch.no_grad():
        correct = (g_data > 0).sum() + (g_noise <= 0).sum()
        acc = correct.float() / (g_data.numel() + g_noise.numel())
    loss = term_data + term_noise
    return loss, {"loss_data": term_data.detach(), "loss_noise": term_noise.detach(), "acc": acc}


def hyp_log_q(u: torch.Tensor, hyp: torch.Tensor, std: float, mask: torch.Tensor | None) -> torch.Tensor:
    """Unnormalised log N(u; Ŷ, std²I) per sample (B,): −‖(u − Ŷ)·m‖² / (2 std²) (see module doc)."""
    d = u - hyp
    if mask is not None:
        d = d * mask
    return -d.flatten(1).pow(2).sum(1) / (2 * std**2)


@dataclass
class NCEConfig:
    """Options of `nce`.

    Attributes:
        nu: ν, noise samples per data sample (≥ 1).
        noise: ``gaussian`` (N(μ, s·Σ) fitted to the data) or ``hyp`` (N(Ŷ, noise_std²I) around the
            hypothesis, for refiners).
        noise_scale: ``gaussian``: covariance multiplier s (> 1 covers the data's tails).
        noise_std: ``hyp``: std of the perturbation kernel around the hypothesis.
    """
    nu: int = 1  # noise samples per data sample
    noise: str = "gaussian"  # gaussian (fitted to the data) | hyp (N(Ŷ, noise_std²) for refiners)
    noise_scale: float = 1.0  # gaussian: covariance multiplier (> 1 covers the data's tails)
    noise_std: float = 0.1  # hyp: std of the perturbation kernel around the hypothesis

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if self.nu < 1:
            raise EbtkError(f"objective.nu must be an integer ≥ 1, got {self.nu}; hint: nu=1 is balanced NCE")
        if self.noise not in ("gaussian", "hyp"):
            raise EbtkError(f"objective.noise must be gaussian or hyp, got {self.noise!r}")
        if self.noise_scale <= 0 or self.noise_std <= 0:
            raise EbtkError("objective.noise_scale and objective.noise_std must be > 0")


@register("objective", "nce")
class NCE(Objective):
    """Binary NCE with Gaussian or hypothesis-kernel noise and a learned log-normaliser c."""

    name: ClassVar[str] = "nce"
    Config: ClassVar[type] = NCEConfig
    needs_energy: ClassVar[bool] = True

    def __init__(self, cfg: NCEConfig | None = None, **inputs: Any):
        super().__init__(cfg, **inputs)
        self.c = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_mean", torch.empty(0))
        self.register_buffer("noise_chol", torch.empty(0))
        if self.cfg.noise == "gaussian":
            stats = data_stats(inputs.get("data"))
            if stats is not None:
                self.fit_noise(*stats)

    def fit_noise(self, mean: torch.Tensor, cov: torch.Tensor) -> None:
        """Set q = N(mean, noise_scale·cov) (flattened); a singular covariance gets a small jitter."""
        mean = mean.detach().double().flatten()
        cov = cov.detach().double().reshape(len(mean), len(mean)) * self.cfg.noise_scale
        chol, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:  # constant dimensions (digits' corner pixels) make the covariance singular
            jitter = 1e-6 + 1e-4 * float(cov.diagonal().mean())
            chol = torch.linalg.cholesky(cov + jitter * torch.eye(len(mean), dtype=cov.dtype, device=cov.device))
        dev = self.c.device
        self.noise_mean = mean.float().to(dev)
        self.noise_chol = chol.float().to(dev)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        # A noise fitted lazily (first batch) has no fixed size at construction: take the checkpoint's.
        for key in ("noise_mean", "noise_chol"):
            if prefix + key in state_dict:
                setattr(self, key, torch.empty_like(state_dict[prefix + key], device=self.c.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- noise ------------------------------------------------------------------------------------
    def gaussian_log_q(self, u: torch.Tensor) -> torch.Tensor:
        """Log N(u; μ, L Lᵀ) per sample (B,) for u (B, *shape), normalised."""
        diff = (u.flatten(1) - self.noise_mean).T  # (D, B)
        z = torch.linalg.solve_triangular(self.noise_chol, diff, upper=False)
        d = diff.shape[0]
        return -0.5 * z.pow(2).sum(0) - self.noise_chol.diagonal().log().sum() - 0.5 * d * math.log(2 * math.pi)

    def noise_and_log_q(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ν·B noise points u (ν·B, *shape), log q(u) (ν·B,) and log q(x_data) (B,)."""
        x, nu = batch.x, self.cfg.nu
        if self.cfg.noise == "gaussian":
            if self.noise_mean.numel() == 0:  # no data= given: fit the first batch
                if len(x) < 2:
                    raise EbtkError("nce: fitting the Gaussian noise needs a batch of ≥ 2 samples, or pass data=")
                self.fit_noise(*data_stats(x))
            if self.noise_mean.numel() != x[0].numel():
                raise EbtkError(
                    f"nce: data has {x[0].numel()} dims but the fitted noise has {self.noise_mean.numel()}"
                )
            z = torch.randn(nu * len(x), self.noise_mean.numel(), device=x.device, dtype=x.dtype)
            u = (self.noise_mean + z @ self.noise_chol.T).reshape(nu * len(x), *x.shape[1:])
            return u, self.gaussian_log_q(u), self.gaussian_log_q(x)
        if batch.hyp is None:
            raise EbtkError("nce with noise=hyp needs batches with a hypothesis (a refiner task); "
                            "hint: use noise=gaussian for unconditional data")
        hyp = tile_cond(batch.hyp, nu)
        mask = tile_cond(batch.mask, nu)
        eps = torch.randn_like(hyp) * self.cfg.noise_std
        u = hyp + (eps * mask if mask is not None else eps)
        std = self.cfg.noise_std
        return u, hyp_log_q(u, hyp, std, mask), hyp_log_q(x, batch.hyp, std, batch.mask)

    # -- loss -------------------------------------------------------------------------------------
    def logit(self, energy: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        """G(u) = −E_θ(u) − c − log q(u) − log ν (B,): log-odds that u is data rather than noise."""
        return -energy - self.c - log_q - math.log(self.cfg.nu)

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """−mean log σ(G(x)) − ν·mean log(1 − σ(G(u))) on one batch, u ~ q.

        Args:
            model: an energy model.
            batch: x (B, *shape); for ``noise=hyp`` also hyp (B, *shape) and optionally mask.

        Returns:
            `LossOutput`; metrics include the classification accuracy and c; negatives are the noise samples.

        Raises:
            EbtkError: `model` is a score network, or ``noise=hyp`` without a hypothesis.
        """
        self.check_model(model)
        nu, b = self.cfg.nu, len(batch)
        u, log_q_u, log_q_x = self.noise_and_log_q(batch)
        e = model(torch.cat([batch.x, u.detach()], 0), tile_cond(batch.cond, 1 + nu))  # one forward call
        e_pos, e_neg = e[:b], e[b:]
        loss, metrics = nce_loss(self.logit(e_pos, log_q_x), self.logit(e_neg, log_q_u), nu)
        metrics.update(c=self.c.detach(), e_pos=e_pos.detach().mean(), e_neg=e_neg.detach().mean())
        return LossOutput(loss, metrics, u.detach())
