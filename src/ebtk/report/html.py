"""A single self-contained HTML report: images and audio embedded as data URIs, so it opens offline."""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from ebtk.io import atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:0.5em;vertical-align:top;text-align:center}
figure img{max-width:560px;border:1px solid #ddd}figcaption{font-size:0.85em;color:#555}
.audio{display:inline-block;margin:0.3em 1em 0.3em 0}.audio span{display:block;font-size:0.85em;color:#555}
code{background:#f5f5f5;padding:1px 4px}
"""


# Marks each image/audio element with data-ok="1" once it has decoded, so a headless browser (and the CI test)
# can check that every embedded medium really loads.
_STATUS_JS = """
<script>
document.querySelectorAll('audio').forEach(a => {
  a.addEventListener('loadedmetadata', () => { a.dataset.ok = a.duration > 0 ? '1' : '0'; });
  a.addEventListener('error', () => { a.dataset.ok = '0'; });
});
window.addEventListener('load', () => {
  document.querySelectorAll('img').forEach(i => { i.dataset.ok = i.complete && i.naturalWidth > 0 ? '1' : '0'; });
});
</script>"""


_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def table_html(header: list[object], rows: list[list[object]], caption: str | None = None) -> str:
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cells(line: str) -> list[str]:
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") and not s.endswith("\\|") else s
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(s)]


def markdown_to_html(text: str) -> str:
    """Markdown pipe tables become <table>s and other runs of lines become <p>s, so markdown that ebtk
    writes for humans (eval_table.md, compare tables) never shows up in a report as raw pipes."""
    lines = text.splitlines()
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(f"<p>{html.escape(' '.join(para))}</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if "|" in line and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1]):
            flush()
            header = _cells(line)
            i += 2
            rows = []
            while i < len(lines) and "|" in lines[i]:
                rows.append(_cells(lines[i]))
                i += 1
            out.append(table_html(header, rows))
            continue
        if line.strip():
            para.append(line.strip())
        else:
            flush()
        i += 1
    flush()
    return "\n".join(out)


def data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


class Report:
    """Append sections, then `save(path)`."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        aid = f' id="{html.escape(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{aid}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def table(self, header: list[str], rows: list[list[object]], caption: str | None = None) -> None:
        self.parts.append(table_html(header, rows, caption))

    def markdown(self, text: str) -> None:
        """Markdown with pipe tables (e.g. a run's eval_table.md), rendered as HTML tables and paragraphs."""
        self.parts.append(markdown_to_html(text))

    def image(self, path: Path, caption: str = "") -> None:
        if not Path(path).is_file():
            return
        cap = html.escape(caption)
        self.parts.append(f'<figure><img src="{data_uri(path)}" alt="{cap}"><figcaption>{cap}</figcaption></figure>')

    def audio(self, path: Path, label: str) -> None:
        if not Path(path).is_file():
            return
        self.parts.append(
            f'<div class="audio"><span>{html.escape(label)}</span>'
            f'<audio controls preload="metadata" src="{data_uri(path)}"></audio></div>'
        )

    def render(self) -> str:
        body = "\n".join(self.parts) + _STATUS_JS
        return (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def save(self, path: Path) -> Path:
        atomic_write_text(Path(path), self.render())
        return Path(path)
