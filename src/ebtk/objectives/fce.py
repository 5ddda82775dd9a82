"""Flow contrastive estimation baseline: NCE against a learned tractable noise model.

The noise q_φ is a Gaussian mixture (full or diagonal covariances) or a small RealNVP flow, with an exact
log-density and exact sampling. The logit is NCE's, G(u) = −E_θ(u) − c − log q_φ(u) − log ν, with a
learned c.

How q_φ is trained: by **maximum likelihood on the data batch**, jointly with the EBM (loss = NCE(θ, c)
+ `noise_weight`·mean −log q_φ(x); the NCE term sees log q_φ detached, so each part trains only its own
parameters under the trainer's single optimiser). The original FCE (Gao et al. 2020) instead lets q_φ
maximise the NCE value adversarially; that min-max needs separate step sizes and alternating updates
and is known to oscillate, while ML is a plain minimisation that drives q_φ towards the data, which is
where NCE is statistically efficient (q close to p). It is the "auxiliary noise model" that SA-NCE
replaces by a snapshot of the EBM itself.
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
from ebtk.objectives.nce import nce_loss
from ebtk.registry import register

LOG_2PI = math.log(2 * math.pi)


class GaussianMixture(nn.Module):
    """K-component Gaussian mixture on R^D with exact `log_prob` (N, D) → (N,) and `sample(n)` → (n, D).

    Covariances are Σ_k = L_k L_kᵀ with L_k lower-triangular (positive diagonal via exp), or diagonal.
    Components start at data-distributed means with the data covariance, so q covers the data at once.
    """

    def __init__(self, dim: int, components: int, full: bool = True,
                 mean: torch.Tensor | None = None, cov: torch.Tensor | None = None):
        super().__init__()
        mean = torch.zeros(dim) if mean is None else mean.float()
        cov = torch.eye(dim) if cov is None else cov.float()
        chol = torch.linalg.cholesky(cov + 1e-4 * cov.diagonal().mean() * torch.eye(dim))
        self.full = full
        self.logits = nn.Parameter(torch.zeros(components))
        self.loc = nn.Parameter(mean + torch.randn(components, dim) @ chol.T)
        if full:
            raw = chol.tril(-1) + torch.diag_embed(chol.diagonal().log())
            self.raw_tril = nn.Parameter(raw.expand(components, dim, dim).clone())
        else:
            self.log_scale = nn.Parameter(chol.diagonal().log().expand(components, dim).clone())

    def scale_tril(self) -> torch.Tensor:
        """The (K, D, D) lower-triangular scales of the components (diagonal for ``covariance=diag``)."""
        """(K, D, D) lower-triangular factors."""
        if self.full:
            return self.raw_tril.tril(-1) + torch.diag_embed(self.raw_tril.diagonal(dim1=-2, dim2=-1).exp())
        return torch.diag_embed(self.log_scale.exp())

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log q(x) (B,) of points x (B, D)."""
        d = x.shape[1]
        diff = x.unsqueeze(0) - self.loc.unsqueeze(1)  # (K, N, D)
        if self.full:
            z = torch.linalg.solve_triangular(self.scale_tril(), diff.transpose(1, 2), upper=False)  # (K, D, N)
            sq, logdet = z.pow(2).sum(1), self.raw_tril.diagonal(dim1=-2, dim2=-1).sum(-1)
        else:
            sq, logdet = (diff / self.log_scale.exp().unsqueeze(1)).pow(2).sum(-1), self.log_scale.sum(-1)
        comp = -0.5 * sq - logdet.unsqueeze(1) - 0.5 * d * LOG_2PI  # (K, N)
        return torch.logsumexp(F.log_softmax(self.logits, 0).unsqueeze(1) + comp, 0)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Draw n samples (n, D), without gradient."""
        k = torch.multinomial(F.softmax(self.logits, 0), n, replacement=True)
        eps = torch.randn(n, self.loc.shape[1], 1, device=self.loc.device, dtype=self.loc.dtype)
        return self.loc[k] + (self.scale_tril()[k] @ eps).squeeze(-1)


class _Coupling(nn.Module):
    """Affine coupling: the unmasked half moves by exp(s)·x + t, with s, t from the masked half."""

    def __init__(self, mask: torch.Tensor, hidden: int):
        super().__init__()
        d = len(mask)
        self.register_buffer("mask", mask)
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * d))
        nn.init.zeros_(self.net[-1].weight)  # identity at init
        nn.init.zeros_(self.net[-1].bias)

    def _st(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_masked).chunk(2, 1)
        free = 1 - self.mask
        return torch.tanh(s) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._st(x * self.mask)
        return x * s.exp() + t, s.sum(1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        s, t = self._st(z * self.mask)
        return (z - t) * (-s).exp()


class RealNVP(nn.Module):
    """Small RealNVP flow on R^D (D ≥ 2) with a standard-normal base; data standardised by fixed stats.

    `log_prob(x)` (N, D) → (N,) by change of variables; `sample(n)` → (n, D) by the exact inverse.
    """

    def __init__(self, dim: int, layers: int = 6, hidden: int = 64,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        if dim < 2:
            raise EbtkError("fce noise_model=flow needs data of ≥ 2 dimensions; hint: use noise_model=gmm")
        self.register_buffer("shift", torch.zeros(dim) if mean is None else mean.float())
        self.register_buffer("scale", torch.ones(dim) if std is None else std.float().clamp_min(1e-3))
        parity = torch.arange(dim) % 2
        self.layers = nn.ModuleList(_Coupling((parity == (i % 2)).float(), hidden) for i in range(layers))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log q(x) (B,) of points x (B, D) by the change of variables."""
        z = (x - self.shift) / self.scale
        logdet = -self.scale.log().sum().expand(len(x))
        for layer in self.layers:
            z, ld = layer(z)
            logdet = logdet + ld
        return -0.5 * z.pow(2).sum(1) - 0.5 * z.shape[1] * LOG_2PI + logdet

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Draw n samples (n, D) through the inverse flow, without gradient."""
        z = torch.randn(n, len(self.shift), device=self.shift.device)
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z * self.scale + self.shift


@dataclass
class FCEConfig:
    """Options of `fce`.

    Attributes:
        noise_model: the learned noise q_φ: ``gmm`` (Gaussian mixture) or ``flow`` (RealNVP).
        components: ``gmm``: mixture components.
        covariance: ``gmm``: ``full`` or ``diag``.
        flow_layers: ``flow``: coupling layers.
        flow_hidden: ``flow``: hidden width of each coupling net.
        nu: ν, noise samples per data sample.
        noise_weight: weight of the noise model's maximum-likelihood term in the loss.
    """
    noise_model: str = "gmm"  # gmm | flow
    components: int = 8  # gmm: mixture components
    covariance: str = "full"  # gmm: full | diag
    flow_layers: int = 6  # flow: coupling layers
    flow_hidden: int = 64  # flow: hidden width of each coupling net
    nu: int = 1  # noise samples per data sample
    noise_weight: float = 1.0  # weight of the noise model's maximum-likelihood term

    def validate(self) -> None:
        """Check the options (`ebtk.objective` and config parsing call this).

        Raises:
            EbtkError: a value out of range; the message names the key.
        """
        if self.noise_model not in ("gmm", "flow"):
            raise EbtkError(f"objective.noise_model must be gmm or flow, got {self.noise_model!r}")
        if self.covariance not in ("full", "diag"):
            raise EbtkError(f"objective.covariance must be full or diag, got {self.covariance!r}")
        for key in ("components", "flow_layers", "flow_hidden", "nu"):
            if getattr(self, key) < 1:
                raise EbtkError(f"objective.{key} must be ≥ 1, got {getattr(self, key)}")
        if self.noise_weight <= 0:
            raise EbtkError(f"objective.noise_weight must be > 0 (the noise model must train), got {self.noise_weight}")


@register("objective", "fce")
class FCE(Objective):
    """NCE with a jointly trained GMM / RealNVP noise (trained by ML on the data; see module docs)."""

    name: ClassVar[str] = "fce"
    Config: ClassVar[type] = FCEConfig
    needs_energy: ClassVar[bool] = True

    def __init__(self, cfg: FCEConfig | None = None, **inputs: Any):
        super().__init__(cfg, **inputs)
        cfg = self.cfg
        stats = data_stats(inputs.get("data"))
        if stats is None:
            raise EbtkError("fce needs data= (training samples (N, *shape) or a (mean, cov) pair): its noise "
                            "model's size and starting point come from the data")
        mean, cov = stats[0].flatten().float(), stats[1].float()
        dim = len(mean)
        cov = cov.reshape(dim, dim)
        if cfg.noise_model == "gmm":
            self.noise = GaussianMixture(dim, cfg.components, cfg.covariance == "full", mean, cov)
        else:
            self.noise = RealNVP(dim, cfg.flow_layers, cfg.flow_hidden, mean, cov.diagonal().sqrt())
        self.c = nn.Parameter(torch.zeros(()))

    def forward(self, model: nn.Module, batch: Batch) -> LossOutput:
        """NCE against q_φ plus noise_weight·mean −log q_φ(x) on one batch (each part trains its own parameters).

        Args:
            model: an energy model.
            batch: x (B, D) data.

        Returns:
            `LossOutput`; negatives are the noise model's samples.

        Raises:
            EbtkError: `model` is a score network.
        """
        self.check_model(model)
        if batch.cond is not None or batch.hyp is not None:
            raise EbtkError("fce models unconditional data only; hint: for refiners use nce (noise=hyp) or sa-nce")
        nu, b, shape = self.cfg.nu, len(batch), batch.x.shape[1:]
        x = batch.x.flatten(1)
        u = self.noise.sample(nu * b).to(x.dtype)
        log_q_x = self.noise.log_prob(x)  # with grad: the noise model's ML term
        with torch.no_grad():
            log_q_u = self.noise.log_prob(u)
        e = model(torch.cat([x, u], 0).reshape(-1, *shape), None)
        e_pos, e_neg = e[:b], e[b:]
        log_nu = math.log(nu)
        g_data = -e_pos - self.c - log_q_x.detach() - log_nu
        g_noise = -e_neg - self.c - log_q_u - log_nu
        loss_nce, metrics = nce_loss(g_data, g_noise, nu)
        nll_q = -log_q_x.mean()
        loss = loss_nce + self.cfg.noise_weight * nll_q
        metrics.update(loss_nce=loss_nce.detach(), nll_noise=nll_q.detach(), c=self.c.detach(),
                       e_pos=e_pos.detach().mean(), e_neg=e_neg.detach().mean())
        return LossOutput(loss, metrics, u.reshape(-1, *shape))
