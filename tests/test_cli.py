"""End-to-end CLI: every objective writes a run dir; resume; bad input gives one `error:` line and exit 2."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = ["train.batch_size=64", "sampler.steps=5", "eval.grid=40", "eval.n_samples=200", "--quiet"]
TOY_OBJECTIVES = ["nce", "sa-nce", "fce", "cd", "pcd", "ssm", "dsm"]


@pytest.mark.parametrize("objective", TOY_OBJECTIVES)
def test_every_objective_writes_run_dir(run_cli, tmp_path: Path, objective: str):
    out = tmp_path / objective
    code, stdout, err = run_cli("train", "toy2d", "--objective", objective, "--steps", "4", "--out", out, *TINY)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "toy2d" and m["objective"] == objective and m["steps"] == 4
    for key in ("nll", "true_nll", "kl", "mmd"):
        assert isinstance(m[key], float), key
    assert (out / "config.yaml").is_file() and (out / "checkpoint.pt").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert json.loads(stdout)["objective"] == objective
    # evaluate rewrites the same metrics from the checkpoint
    code, stdout, err = run_cli("evaluate", out)
    assert code == 0, err
    again = json.loads((out / "metrics.json").read_text())
    assert again["nll"] == pytest.approx(m["nll"], abs=1e-9)


def test_sample_and_compare(run_cli, tmp_path: Path):
    dirs = []
    for seed in (0, 1):
        d = tmp_path / f"s{seed}"
        assert (
            run_cli("train", "toy2d", "--objective", "dsm", "--steps", "3", "--seed", seed, "--out", d, *TINY)[0] == 0
        )
        dirs.append(d)
    code, _, err = run_cli("sample", dirs[0], "--n", "50", "--out", tmp_path / "s.png")
    assert code == 0, err
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    code, table, err = run_cli("compare", *dirs, "--out", tmp_path / "report.html")
    assert code == 0, err
    nlls = [json.loads((d / "metrics.json").read_text())["nll"] for d in dirs]
    mean = sum(nlls) / 2
    assert "| toy2d / 8gaussians / dsm | 2 |" in table
    assert f"{mean:.4g} ±" in table
    html = (tmp_path / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html


def _cmd(out: Path, steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ebtk",
        "train",
        "toy2d",
        "--objective",
        "pcd",
        "--steps",
        str(steps),
        "--out",
        str(out),
        "train.batch_size=64",
        "sampler.steps=20",
        "train.ckpt_every=5",
        "eval.grid=40",
        "eval.n_samples=200",
        "--quiet",
    ]


def test_kill9_then_rerun_resumes_and_matches_uninterrupted(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ref, 40), check=True, env=env, capture_output=True)
    run = tmp_path / "run"
    p = subprocess.Popen(_cmd(run, 40), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if ckpt.exists():
            step = torch.load(ckpt, weights_only=True)["step"]
            if step >= 10:
                break
        time.sleep(0.05)
    assert p.poll() is None, "training finished before it could be killed; make it slower"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed_at = torch.load(ckpt, weights_only=True)["step"]
    assert 10 <= killed_at < 40 and not (run / "metrics.json").exists()
    subprocess.run(_cmd(run, 40), check=True, env=env, capture_output=True)
    a = json.loads((ref / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert b["steps"] == 40
    for key in ("nll", "kl", "mmd"):
        assert b[key] == pytest.approx(a[key], rel=1e-6, abs=1e-9), key
    wa = torch.load(ref / "checkpoint.pt", weights_only=True)["model"]
    wb = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory) -> Path:
    from ebtk.cli import main

    d = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", "toy2d", "--objective", "cd", "--steps", "2", "--out", str(d), *TINY]) == 0
    return d


BAD = {
    "unknown objective": (["train", "toy2d", "--objective", "nope"], "unknown objective 'nope'"),
    "unknown task": (["train", "nope", "--objective", "ssm"], "unknown task 'nope'"),
    "unknown key": (["train", "toy2d", "--objective", "ssm", "train.lrr=1"], "unknown config key train.lrr"),
    "malformed override": (["train", "toy2d", "--objective", "ssm", "train.lr"], "unrecognized arguments"),
    "bad value": (["train", "toy2d", "--objective", "ssm", "train.steps=abc"], "train.steps"),
    "negative step size": (["train", "toy2d", "--objective", "cd", "sampler.step_size=-1"], "step_size"),
    "negative K": (["train", "toy2d", "--objective", "sa-nce", "objective.interval=-1"], "interval"),
    "K=0": (["train", "toy2d", "--objective", "sa-nce", "objective.interval=0"], "interval must be ≥ 1, or 'never'"),
    "score model to energy objective": (
        ["train", "toy2d", "--objective", "cd", "model.kind=score"],
        "another config: model.kind ('energy' → 'score')",
    ),
    "another task's run dir": (["train", "toy2d", "--objective", "nce"], "holds a run of task"),
    "changed config on resume": (
        ["train", "toy2d", "--objective", "cd", "--steps", "3", *TINY[:-1], "data.name=checkerboard"],
        "another config: data.name ('8gaussians' → 'checkerboard')",
    ),
    "changed lr and seed on resume": (
        ["train", "toy2d", "--objective", "cd", "--seed", "5", *TINY[:-1], "train.lr=0.01"],
        "train.lr (0.003 → 0.01), train.seed (0 → 5)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_error_and_run_dir_untouched(run_cli, existing_run: Path, tmp_path: Path, case: str):
    argv, needle = BAD[case]
    before = _snapshot(existing_run)
    code, _, err = run_cli(*argv, "--out", existing_run, "--quiet")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert needle in lines[0]
    assert _snapshot(existing_run) == before


def test_resume_extends_steps_and_changes_eval_settings_then_restart_starts_over(run_cli, existing_run: Path,
                                                                                  tmp_path: Path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(existing_run, d)
    tiny = [a for a in TINY if not a.startswith("eval.grid")]
    code, _, err = run_cli("train", "toy2d", "--objective", "cd", "--steps", "4", "--out", d, *tiny, "eval.grid=30")
    assert code == 0, err  # more steps and another evaluation grid: a resume, from step 2
    m = json.loads((d / "metrics.json").read_text())
    assert m["steps"] == 4
    # the training time counts both attempts: the checkpoint carries the first one's
    first = torch.load(existing_run / "checkpoint.pt", weights_only=True)["train_seconds"]
    total = torch.load(d / "checkpoint.pt", weights_only=True)["train_seconds"]
    assert 0 < first < total and m["train_seconds"] == round(total, 3)
    code, _, err = run_cli("train", "toy2d", "--objective", "cd", "--steps", "3", "--out", d, *TINY,
                           "data.name=checkerboard", "--restart")
    assert code == 0, err
    m = json.loads((d / "metrics.json").read_text())
    assert m["steps"] == 3 and m["data"] == "checkerboard"
    assert torch.load(d / "checkpoint.pt", weights_only=True)["config"]["data"]["name"] == "checkerboard"


def test_a_run_made_before_a_config_key_existed_resumes_at_its_default(run_cli, existing_run: Path,
                                                                        tmp_path: Path):
    """A checkpoint from an older ebtk lacks keys added since: they count at their defaults on resume."""
    import shutil

    d = tmp_path / "old"
    shutil.copytree(existing_run, d)
    ck = torch.load(d / "checkpoint.pt", weights_only=True)
    del ck["config"]["train"]["weight_decay"], ck["config"]["eval"]["split"]
    torch.save(ck, d / "checkpoint.pt")
    code, _, err = run_cli("train", "toy2d", "--objective", "cd", "--out", d, "--quiet", "train.weight_decay=0.5",
                           *TINY)
    assert code == 2 and "train.weight_decay ('<unset>' → 0.5)" not in err and "train.weight_decay (0.0 → 0.5)" in err
    code, _, err = run_cli("train", "toy2d", "--objective", "cd", "--steps", "3", "--out", d, *TINY)
    assert code == 0, err
    assert json.loads((d / "metrics.json").read_text())["steps"] == 3


def test_score_model_for_an_energy_objective_is_refused(run_cli, tmp_path: Path):
    code, _, err = run_cli("train", "toy2d", "--objective", "cd", "model.kind=score", "--out", tmp_path / "r", *TINY)
    assert code == 2 and err.startswith("error:") and "needs a scalar energy model" in err
    assert len(err.strip().splitlines()) == 1


def test_malformed_yaml_config(run_cli, tmp_path: Path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lr: [1,\n")
    code, _, err = run_cli("train", "toy2d", "--objective", "ssm", "--config", cfg, "--out", tmp_path / "r")
    assert code == 2 and err.startswith("error: malformed YAML") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_corrupt_checkpoint(run_cli, existing_run: Path, tmp_path: Path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(existing_run, d)
    (d / "checkpoint.pt").write_bytes(b"garbage")
    for argv in (["evaluate", d], ["train", "toy2d", "--objective", "cd", "--steps", "3", "--out", d, *TINY]):
        code, _, err = run_cli(*argv)
        assert code == 2 and err.startswith("error: corrupt or unreadable checkpoint"), err
    assert (d / "checkpoint.pt").read_bytes() == b"garbage"
