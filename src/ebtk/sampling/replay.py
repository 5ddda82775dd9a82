"""Replay buffer of persistent chains (PCD, persistent SA-NCE), as an nn.Module so it is checkpointed."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ReplayBuffer(nn.Module):
    """Fixed-size store of past samples: the persistent chains of PCD and persistent SA-NCE.

    The first `draw` fills all `size` slots from `init`. Each `draw(n, init)` then returns n stored chains,
    a `reinit` fraction of them restarted from `init`; `push(x)` writes the chain ends back to their slots.
    An ``nn.Module``, so the chains are checkpointed with the objective.

    Args:
        size: number of stored chains.
        reinit: fraction of drawn chains restarted from `init`, in [0, 1].
    """

    def __init__(self, size: int, reinit: float = 0.05):
        super().__init__()
        self.size = int(size)
        self.reinit = float(reinit)
        self.register_buffer("data", torch.empty(0))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._idx: torch.Tensor | None = None

    def draw(self, n: int, init: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """Take n chains at random slots (remembered for `push`), a `reinit` share restarted.

        Args:
            n: number of chains.
            init: ``init(m) -> (m, *shape)`` fresh chain starts.

        Returns:
            (n, *shape) chain states (a copy).
        """
        if int(self.count) == 0:  # first use: fill every slot with init noise (JEM/IGEBM-style)
            self.data = init(self.size).detach().clone()
            self.count.fill_(self.size)
        idx = torch.randint(0, self.size, (n,), device=self.data.device)
        x = self.data[idx].clone()
        restart = torch.rand(n, device=self.data.device) < self.reinit
        if bool(restart.any()):
            x[restart] = init(n)[restart].to(x)
        self._idx = idx
        return x

    def push(self, x: torch.Tensor) -> None:
        """Write chain ends (n, *shape) back into the slots the last `draw` took them from.

        Raises:
            RuntimeError: no `draw` since the last push.
        """
        if self._idx is None:
            raise RuntimeError("ReplayBuffer.push without a preceding draw")
        self.data[self._idx] = x.detach().to(self.data)
        self._idx = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # The buffer is allocated lazily: adopt the stored shape before the default copy.
        key = prefix + "data"
        if key in state_dict:
            self.data = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
