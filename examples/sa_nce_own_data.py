"""SA-NCE on your own 2-D tensor with your own MLP: the library API, no task and no config tree.

    python examples/sa_nce_own_data.py --steps 2000

The data is a tensor you already have (here: a two-component Gaussian mixture, made below). The model is
any module returning one energy per sample; `ebtk.EnergyModel` wraps it. The objective's snapshot is
refreshed every `interval` optimiser steps by `after_step`. At the end the script prints the exact NLL of
the trained model on a grid (2-D only) and the mean of Langevin samples next to the data's.
"""

from __future__ import annotations

import argparse
import math

import torch

import ebtk


def my_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """Your data: here a mixture of N((±1.5, 0), 0.3²I), (n, 2)."""
    sign = torch.randint(0, 2, (n, 1), generator=gen) * 2.0 - 1.0
    return torch.cat([1.5 * sign, torch.zeros(n, 1)], 1) + 0.3 * torch.randn(n, 2, generator=gen)


def grid_nll(model: torch.nn.Module, x: torch.Tensor, half: float = 8.0, n: int = 400) -> float:
    """Test NLL with the normaliser summed on a grid over [−half, half]² (ample for this data)."""
    axis = torch.linspace(-half, half, n)
    cell = (axis[1] - axis[0]) ** 2
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        log_z = torch.logsumexp(-model(grid), 0) + math.log(cell)
        return float(model(x).mean() + log_z)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--interval", type=int, default=5, help="K: refresh the snapshot every K steps")
    args = p.parse_args()
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    train, test = my_data(20_000, gen), my_data(5_000, gen)

    net = torch.nn.Sequential(torch.nn.Linear(2, 128), torch.nn.SiLU(), torch.nn.Linear(128, 128),
                              torch.nn.SiLU(), torch.nn.Linear(128, 1))
    model = ebtk.EnergyModel(net)
    loss_fn = ebtk.objective("sa-nce", interval=args.interval, alpha=0.01,
                             sampler={"steps": 20, "step_size": 0.01, "persistent": True})
    opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-3)
    loader = torch.utils.data.DataLoader(train, batch_size=256, shuffle=True, generator=gen)
    step = 0
    while step < args.steps:
        for x in loader:
            out = loss_fn(model, x)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            loss_fn.after_step(model)
            step += 1
            if step % 500 == 0 or step == args.steps:
                print(f"step {step}: loss {out.loss.item():.4f}, snapshot refreshes {int(loss_fn.refreshes)}")
            if step == args.steps:
                break

    samples = ebtk.langevin(model, torch.randn(2000, 2), steps=200, step_size=0.01)
    print(f"test NLL {grid_nll(model, test):.3f} (true {true_nll(test):.3f}, "
          f"standard normal {normal_nll(test):.3f})")
    print(f"|sample x| mean {samples[:, 0].abs().mean():.2f} (data {test[:, 0].abs().mean():.2f})")


def true_nll(x: torch.Tensor) -> float:
    """−mean log p(x) under the data's own mixture, for reference."""
    comps = [torch.distributions.Normal(torch.tensor([m, 0.0]), 0.3) for m in (-1.5, 1.5)]
    log_p = torch.logsumexp(torch.stack([c.log_prob(x).sum(1) for c in comps]), 0) - math.log(2)
    return float(-log_p.mean())


def normal_nll(x: torch.Tensor) -> float:
    return float(0.5 * x.pow(2).sum(1).mean() + math.log(2 * math.pi))


if __name__ == "__main__":
    main()
