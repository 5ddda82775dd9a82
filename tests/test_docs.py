"""The documentation as a product: the README stays short, every Python block in README.md and docs/ runs as
written, and the site builds strictly with the results files included, not copied.

Convention (CONTRIBUTING.md): every fenced block declares a language. ```python blocks run, the blocks of
one page in order in one namespace, in a temporary directory; a block preceded by the line
``<!-- not-run: REASON -->`` is skipped. ```bash / ```text blocks are shell-only and never run.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import ebtk

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```\s*$", re.M | re.S)
NOT_RUN = "<!-- not-run:"
SHELL_ONLY = {"bash", "text"}


def blocks(page: Path) -> list[tuple[str, str, bool]]:
    """(language, code, marked not-run) of each fenced block of `page`, in order."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip().splitlines()
        out.append((m.group(1), m.group(2), bool(before) and before[-1].startswith(NOT_RUN)))
    return out


def rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def run_page(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Execute the page's python blocks in order, as a reader pastes them, in a fresh directory."""
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "__docs__"}
    torch.manual_seed(0)
    for lang, code, skip in blocks(page):
        if lang == "python" and not skip:
            exec(compile(code, rel(page), "exec"), scope)  # noqa: S102 - the page's own code, run as written
    return scope


def test_readme_is_at_most_200_lines():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines; move details to docs/"


def test_readme_keeps_the_two_commands_that_ci_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    two = re.search(r"## Two commands\n.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in two.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["bash scripts/install.sh && ebtk demo --out demo_out", "python3 -m pytest -q"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in ci and any(ln.startswith("EBTK_BROWSER=1 bash scripts/install.sh") for ln in ci)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_block_declares_a_language_and_python_blocks_are_run_or_marked(page):
    for lang, code, skip in blocks(page):
        assert lang in SHELL_ONLY | {"python"}, f"{rel(page)}: a block without a known language: {code[:60]!r}"
        assert not (skip and lang != "python"), f"{rel(page)}: not-run marks only python blocks"


def test_readme_quick_starts_run_and_do_what_they_say(tmp_path, monkeypatch):
    s = run_page(ROOT / "README.md", tmp_path, monkeypatch)
    import soundfile as sf

    # speak a sentence: a finite float32 waveform of about a second or more, written as a 22 050 Hz wav
    wav = s["wav"]
    assert wav.dtype.name == "float32" and wav.ndim == 1 and 22050 * 1 < len(wav) < 22050 * 10
    assert bool(torch.from_numpy(wav).isfinite().all()) and 0.01 < float(abs(wav).max()) <= 1.0
    info = sf.info(str(tmp_path / "hello.wav"))
    assert info.samplerate == 22050 and info.frames == len(wav)
    # SA-NCE on your tensors: one pass over the loader, a snapshot refresh after steps 5, 10, …
    samples, loss_fn = s["samples"], s["loss_fn"]
    assert samples.shape == (256, 2) and bool(samples.isfinite().all())
    n_batches = len(s["my_loader"])
    assert int(loss_fn.steps_seen) == n_batches and int(loss_fn.refreshes) == n_batches // 5
    # the refiner: one step moves the hypotheses towards the references (seed 0: MSE 0.021 -> 0.007)
    ref, hyp, refined = s["ref"], s["hyp"], s["refined"]
    before, after = (hyp - ref).pow(2).mean().item(), (refined - ref).pow(2).mean().item()
    assert after < 0.5 * before, (before, after)


def test_getting_started_runs(tmp_path, monkeypatch):
    s = run_page(DOCS / "getting-started.md", tmp_path, monkeypatch)
    assert (tmp_path / "fox.wav").is_file() and s["wav"].ndim == 1 and len(s["wav"]) > 22050
    assert s["samples"].shape == (512, 2) and bool(s["samples"].isfinite().all())
    assert int(s["loss_fn"].refreshes) == len(s["data"]) // 256 // 5  # 16 batches: refreshes after 5, 10, 15


def test_library_guide_runs(tmp_path, monkeypatch):
    s = run_page(DOCS / "guides" / "library.md", tmp_path, monkeypatch)
    assert s["samples"].shape[0] == 1000 and s["step"] == 20
    assert s["metrics"]["objective"] == "sa-nce" and math.isfinite(s["metrics"]["nll"])
    assert set(s["out"].metrics) and all(bool(v.isfinite()) for v in s["out"].metrics.values())
    assert "needs a scalar energy" in s["message"] and set(s["ebtk"].available()) >= {"nce", "sa-nce", "delta"}


def test_sa_nce_concept_page_runs(tmp_path, monkeypatch):
    s = run_page(DOCS / "concepts" / "sa-nce.md", tmp_path, monkeypatch)
    assert int(s["loss_fn"].refreshes) == 2 and int(s["loss_fn"].steps_seen) == 10
    assert all(math.isfinite(float(v)) for v in s["out"].metrics.values())


def test_tts_guide_runs(tmp_path, monkeypatch):
    s = run_page(DOCS / "guides" / "tts.md", tmp_path, monkeypatch)
    wav, hyp, chunks = s["wav"], s["hyp"], s["chunks"]
    assert wav.shape == hyp.shape and float(abs(wav - hyp).max()) > 1e-3  # one step changes the audio
    assert len(s["wavs"]) == 2 and len(chunks) > 1


def test_every_page_with_python_has_a_test():
    """A page with runnable python blocks must be run by one of the tests above."""
    tested = {"README.md", "docs/getting-started.md", "docs/guides/library.md", "docs/concepts/sa-nce.md",
              "docs/guides/tts.md"}
    runnable = {rel(p) for p in PAGES if any(lang == "python" and not skip for lang, _, skip in blocks(p))}
    assert runnable <= tested, f"pages whose python blocks no test runs: {sorted(runnable - tested)}"


def test_version_and_changelog_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == ebtk.__version__
    assert f"\n## {ebtk.__version__}\n" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_site_builds_strictly_and_includes_the_results_files(tmp_path):
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    # a results page shows the generated file's rows as they are now (included at build time, not copied)
    row = next(ln for ln in (ROOT / "results/sa_nce/tuned.md").read_text().splitlines() if ln.startswith("| pcd"))
    html = (site / "results" / "sa-nce" / "index.html").read_text(encoding="utf-8")
    assert all(cell.strip() in html for cell in row.split("|")[1:6])
    card = (ROOT / "src/ebtk/data/MODEL_CARD.md").read_text().splitlines()[2]
    assert card.split()[3] in (site / "results" / "shipped-model" / "index.html").read_text(encoding="utf-8")
    # the API reference renders the docstrings of the public names
    api = (site / "api" / "ebtk" / "index.html").read_text(encoding="utf-8")
    for name in ("EnergyModel", "ScoreModel", "score_of", "objective", "langevin", "descend", "EbtkError"):
        assert f'id="ebtk.{name}"' in api or f"ebtk.{name}" in api, name
    assert "interval" in (site / "api" / "objectives" / "index.html").read_text(encoding="utf-8")


def _hook():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_include_hook", DOCS / "hooks" / "include.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_include_hook_rewrites_links_and_nests_headings():
    hook = _hook()
    hook._included.clear()
    hook._included["results/tts/v2/seeds.md"] = "results/tts-v2.md"
    text = ("# Title\n\nsee [seeds](seeds.md), [curves](raw/a.csv), ![plot](k.png) and [web](https://x.org)\n"
            "```text\n# not a heading\n```\n## Sub\n")
    out = hook._rewrite_links(text, "results/tts/v2/table.md", "guides/tts.md")
    assert "[seeds](../results/tts-v2.md)" in out  # a file included elsewhere: its page
    assert "curves (`results/tts/v2/raw/a.csv`)" in out  # outside the site: the repository path as code
    assert "![plot](../assets/included/results/tts/v2/k.png)" in out and "[web](https://x.org)" in out
    # a page's own link that stays inside docs/ is left alone; one that leaves it is rewritten
    own = hook._rewrite_links("[a](../api/io.md) [b](../../CHANGELOG.md)", "docs/guides/x.md", "guides/x.md", "docs")
    assert own == "[a](../api/io.md) b (`CHANGELOG.md`)"
    assert hook._demote(text, 2).splitlines()[0] == "### Title" and "#### Sub" in hook._demote(text, 2)
    assert "# not a heading" in hook._demote(text, 2).splitlines()  # code fences are not touched


def test_include_of_a_missing_file_fails_the_build(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# x\n\n<!-- include: results/nope.md -->\n")
    (tmp_path / "mkdocs.yml").write_text(f"site_name: t\nhooks:\n  - {DOCS / 'hooks' / 'include.py'}\n")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "results/nope.md" in res.stderr
