"""The self-contained HTML report: embedded media, and (where Chromium is installed) that it really loads."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ebtk.report.html import Report


def _media(tmp_path: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    png = tmp_path / "plot.png"
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(png)
    plt.close(fig)
    wav = tmp_path / "tone.wav"
    t = np.arange(22050) / 22050
    sf.write(wav, 0.3 * np.sin(2 * np.pi * 220 * t), 22050, subtype="PCM_16")
    return png, wav


def _report(tmp_path: Path) -> Path:
    png, wav = _media(tmp_path)
    rep = Report("test <report>")
    rep.heading("Section A", anchor="a")
    rep.table(["run", "nll"], [["x & y", 1.5]])
    rep.image(png, "a plot")
    rep.audio(wav, "a tone")
    rep.image(tmp_path / "missing.png", "skipped")
    return rep.save(tmp_path / "report.html")


def test_report_is_self_contained(tmp_path: Path):
    html = _report(tmp_path).read_text()
    assert "test &lt;report&gt;" in html and "x &amp; y" in html
    assert html.count("data:image/png;base64,") == 1
    assert html.count("data:audio/") == 1 or html.count("data:audio/x-wav") == 1
    # nothing refers outside the file
    assert not re.search(r'src="(?!data:)', html)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed")
def test_report_media_load_in_headless_chromium(tmp_path: Path):
    path = _report(tmp_path)
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    imgs = re.findall(r"<img[^>]*>", dom)
    audios = re.findall(r"<audio[^>]*>", dom)
    assert len(imgs) == 1 and len(audios) == 1, dom[:500]
    for tag in imgs + audios:
        assert 'data-ok="1"' in tag, tag[:200]


def test_markdown_tables_become_html_tables():
    from ebtk.report.html import markdown_to_html

    md = "| system | steps |\n|---|---|\n| hypothesis | 0 |\n| refined | 2 |\n\n"
    md += "Means over 3 test utterances;\nlower is better.\n"
    out = markdown_to_html(md)
    assert "|" not in out
    assert out.count("<tr>") == 3 and "<th>system</th>" in out and "<td>refined</td><td>2</td>" in out
    assert "<p>Means over 3 test utterances; lower is better.</p>" in out
    rep = Report("t")
    rep.markdown("a | b\n:--|--:\n1 | <x>\n")  # no outer pipes, aligned separator, escaped cell
    assert "<td>&lt;x&gt;</td>" in rep.render()
