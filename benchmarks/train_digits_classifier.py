"""Train the digits feature classifier used by FD/KID and write it to src/ebtk/data/digits_classifier.pt.

Deterministic (fixed seed, one thread, sklearn's bundled data only, no download):
    python benchmarks/train_digits_classifier.py [--epochs 40] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ebtk.io import atomic_path
from ebtk.metrics.frechet import SHIPPED, digits_split, train_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=SHIPPED)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = train_classifier(epochs=args.epochs, seed=args.seed, verbose=True)
    _, _, xte, yte = digits_split()
    with torch.no_grad():
        acc = (net(xte).argmax(1) == yte).float().mean().item()
    print(f"held-out accuracy: {acc:.4f} on {len(yte)} digits")
    with atomic_path(args.out) as tmp:
        torch.save(net.state_dict(), tmp)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
