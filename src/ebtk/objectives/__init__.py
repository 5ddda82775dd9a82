"""Training objectives, one file each, registered by name; `objective(name, ...)` builds any of them.

Name → class resolution lives here (not in `base`), so `base` ← `combined` has no cycle.
"""

from __future__ import annotations

from typing import Any

from ebtk.config import SamplerConfig, from_dict
from ebtk.errors import EbtkError
from ebtk.objectives.base import Batch, LossOutput, Objective
from ebtk.objectives.combined import combined_class

__all__ = ["Batch", "LossOutput", "Objective", "available", "objective", "objective_class"]


def objective_class(name: str) -> type[Objective]:
    """The registered class for `name`; ``a+b`` names a weighted sum (ebtk.objectives.combined).

    Raises:
        EbtkError: no objective of that name is registered.
    """
    if "+" in name:
        return combined_class(name)
    from ebtk.registry import get

    return get("objective", name)


def available() -> list[str]:
    """Registered objective names, sorted (``a+b`` sums of them work too)."""
    from ebtk.registry import names

    return names("objective")


def objective(
    name: str,
    *,
    sampler: SamplerConfig | dict[str, Any] | None = None,
    init: Any = None,
    data: Any = None,
    **options: Any,
) -> Objective:
    """Build a registered objective by name, e.g. ``ebtk.objective("sa-nce", interval=5)``.

    Call the result as ``loss_fn(model, x)`` (or with ``cond=``, ``hyp=``, ``mask=``, or a `Batch`) to get a
    `LossOutput`, and ``loss_fn.after_step(model)`` after each optimiser step.

    Args:
        name: a registered name (`available()`), or ``"a+b"`` for a weighted sum.
        sampler: Langevin settings (`SamplerConfig` or a dict of its fields) for cd, pcd and sa-nce.
        init: ``init(n, device) -> (n, *shape)`` chain starts; default standard normal shaped like the data.
        data: training samples (N, *shape), a (mean, cov) pair, or a callable giving one: the fitted
            Gaussian of nce and the initial noise model of fce (nce fits its first batch when omitted).
        **options: the objective's own settings, the fields of its Config dataclass (see the objectives
            reference); for ``a+b``: ``weights=[…]`` and one dict of options per part, keyed by its name.

    Returns:
        The objective, an `Objective` (``nn.Module``): give its ``parameters()`` to the optimiser too.

    Raises:
        EbtkError: an unknown name, an unknown option or a bad value (the message names it).
    """
    cls = objective_class(name)
    cfg = cls.parse_section(options)
    if not isinstance(sampler, SamplerConfig):
        sampler = from_dict(SamplerConfig, sampler or {}, "sampler")
    obj = cls(cfg, sampler=sampler, init=init, data=data)
    if not isinstance(obj, Objective):
        raise EbtkError(f"objective {name!r} is not an Objective")
    return obj
