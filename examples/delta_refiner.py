"""The delta loss on your own (hypothesis, reference) tensors: a refiner whose one step lands on the reference.

    python examples/delta_refiner.py --steps 1500

`reference` stands for the ground truth (e.g. mel spectrograms, (B, channels, frames)) and `hypothesis`
for what your first-stage model predicted for it. The delta loss regresses the refiner's score s(Ŷ) onto
Y − Ŷ, so one noise-free step Ŷ + 1·s(Ŷ) (`ebtk.descend`) moves the hypothesis towards the reference. The
script prints the held-out MSE to the reference before and after one step.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import ebtk


def my_pairs(n: int, gen: torch.Generator, channels: int = 8, frames: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Your data: smooth references and hypotheses that are blurred, damped and noisy copies of them."""
    t = torch.linspace(0, 1, frames)
    freq = 1 + 4 * torch.rand(n, channels, 1, generator=gen)
    phase = 6.28 * torch.rand(n, channels, 1, generator=gen)
    reference = torch.sin(6.28 * freq * t + phase)
    blurred = nn.functional.avg_pool1d(reference, 5, stride=1, padding=2, count_include_pad=False)
    hypothesis = 0.7 * blurred + 0.05 * torch.randn(reference.shape, generator=gen)
    return hypothesis, reference


class Refiner(nn.Module):
    """s(x) = conv net of x: (B, C, T) -> (B, C, T). Your own architecture goes here."""

    def __init__(self, channels: int = 8, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(channels, hidden, 5, padding=2), nn.SiLU(),
                                 nn.Conv1d(hidden, hidden, 5, padding=2), nn.SiLU(),
                                 nn.Conv1d(hidden, channels, 5, padding=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    hyp, ref = my_pairs(4096, gen)
    hyp_test, ref_test = my_pairs(512, gen)

    model = ebtk.ScoreModel(Refiner())
    loss_fn = ebtk.objective("delta", step_size=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(ref), (128,), generator=gen)
        out = loss_fn(model, ref[idx], hyp=hyp[idx])  # x = the reference, hyp = the hypothesis
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        loss_fn.after_step(model)
        if step % 500 == 0 or step == args.steps:
            print(f"step {step}: delta loss {out.loss.item():.4f}")

    refined = ebtk.descend(model, hyp_test, steps=1, step_size=1.0)
    before = (hyp_test - ref_test).pow(2).mean().item()
    after = (refined - ref_test).pow(2).mean().item()
    print(f"held-out MSE to the reference: hypothesis {before:.4f}, after one step {after:.4f}")


if __name__ == "__main__":
    main()
