"""`ebtk demo` at its tiny size: every part runs and report.html holds the expected sections and media."""

import re
from pathlib import Path

from ebtk.cli import main


def test_tiny_demo_writes_report_with_all_sections(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("EBTK_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "tiny"]) == 0
    html = (out / "report.html").read_text()
    for anchor in ("toy2d", "ksweep", "digits", "tts", "timing"):
        assert f'id="{anchor}"' in html, anchor
    # every toy objective appears in the NLL table
    for obj in ("nce", "fce", "sa-nce", "cd", "pcd", "ssm", "dsm"):
        assert f"toy2d / 8gaussians / {obj}" in html, obj
    assert len(re.findall(r'<img src="data:image/png;base64,', html)) >= 7 + 1 + 2 + 2
    audios = re.findall(r'<audio [^>]*src="data:audio/', html)
    assert len(audios) >= 3  # reference / hypothesis / refined
    assert "mcd_refined" in html and "dnsmos_refined" in html
    # tables are HTML tables, never markdown pipes: the TTS eval table included
    assert not [line for line in html.splitlines() if "|---" in line]
    tts = html[html.index('id="tts"') : html.index('id="timing"')]
    from ebtk.tts.bundle import shipped_model_path

    if shipped_model_path() is None:  # two refiners trained here: 2 × (metrics, eval table)
        assert "No pretrained TTS model ships" in tts and tts.count("<table>") >= 4
    else:  # the shipped model speaks 3 sentences (hypothesis and refined), with its model card; one refiner
        pre = tts[tts.index("The pretrained model, from text"): tts.index("Training a refiner")]
        assert len(re.findall(r'<audio [^>]*src="data:audio/', pre)) == 6
        assert "Limits" in pre and "<table>" in pre  # the model card, its tables as HTML
        assert "refiner trained with delta" in tts and "refiner trained with ssm" not in tts
    assert "<th>system</th>" in tts
    # one progress line per part, with its elapsed time; no bars off a terminal
    captured = capsys.readouterr()
    for i, part in enumerate(("toy2d", "ksweep", "digits", "tts"), 1):
        assert re.search(rf"^\[demo {i}/4\] {part}: .+ … done in \d+ s$", captured.out, re.M), captured.out
    assert "it/s" not in captured.err and "utt/s" not in captured.err
