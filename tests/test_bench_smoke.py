"""Smoke test of benchmarks/peers.py: every shared objective runs on both sides and gives a finite ratio."""

from __future__ import annotations

import math

import pytest

from bench_fixtures import load_benchmark

pytest.importorskip("torchebm")
pytest.importorskip("ebm")


def test_peer_table_has_a_finite_row_per_objective(monkeypatch):
    peers = load_benchmark("peers")
    # a tiny case: short chains and a small replay buffer keep torchebm's 100-step buffer warm-up cheap
    monkeypatch.setattr(peers, "K_STEPS", 2)
    monkeypatch.setattr(peers, "BUFFER", 64)
    rows = peers.speed_rows([2], [32], repeats=1, warmup=0, pairs=peers.PAIRS, log=lambda _: None)
    assert [(r["objective"], r["peer"]) for r in rows] == peers.PAIRS
    for r in rows:
        assert math.isfinite(r["ratio"]) and r["ratio"] > 0, r
        assert r["ebtk_ms"] > 0 and r["peer_ms"] > 0
    table = peers.speed_table(rows).splitlines()
    assert len(table) == 2 + len(peers.PAIRS)  # header, separator, one row per (objective, peer)
