"""MkDocs hook: include repository files (results tables, model card, changelog) into pages at build time.

A docs page says ``<!-- include: results/sa_nce/tuned.md -->`` on a line of its own; at build time that line
is replaced by the file's text (path relative to the repository root), so a results page always shows what
the study script last wrote and cannot drift from it. While including, the hook

* demotes the file's headings so that its top level sits just below the section the include line is in
  (the wrapper page owns the page title and the section);
* rewrites the file's relative links: to a page that includes the target, to a copy of an included image
  (served under ``assets/included/``), or, for targets outside the site (raw CSVs, scripts), to the
  repository path as inline code, so ``mkdocs build --strict`` still checks every remaining link.

A page's own links that leave docs/ (``[tuned.md](../../results/sa_nce/tuned.md)``: right when docs/ is
read on GitHub) are rewritten the same way.

A missing file fails the build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

DIRECTIVE = re.compile(r"^<!-- include: (\S+) -->\s*$", re.M)
LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".svg", ".gif")
ASSETS = "assets/included"

_included: dict[str, str] = {}  # repository path of an included file -> src_uri of the page links go to


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def _read(root: Path, rel: str, where: str) -> str:
    path = (root / rel).resolve()
    if not path.is_file() or root not in path.parents:
        raise PluginError(f"{where}: include {rel!r}: no such file in the repository")
    return path.read_text(encoding="utf-8")


def on_files(files, config):
    """Find every page's includes; serve the images they link to."""
    root, docs = _root(config), Path(config.docs_dir)
    _included.clear()
    images: set[str] = set()
    docs_rel = docs.resolve().relative_to(root).as_posix()

    def collect(text: str, rel: str) -> None:
        for bang, _, target in LINK.findall(text):
            target = target.split("#")[0]
            if bang and target.lower().endswith(IMAGE_EXT) and "://" not in target:
                path = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
                if not (path + "/").startswith(docs_rel + "/"):
                    images.add(path)

    # a file included on several pages is linked to its results page, if any, else the first page by name
    for f in sorted(files.documentation_pages(), key=lambda f: (not f.src_uri.startswith("results/"), f.src_uri)):
        own = (docs / f.src_uri).read_text(encoding="utf-8")
        collect(own, f"{docs_rel}/{f.src_uri}")
        for rel in DIRECTIVE.findall(own):
            rel = posixpath.normpath(rel)
            _included.setdefault(rel, f.src_uri)
            collect(_read(root, rel, f.src_uri), rel)
    for img in sorted(images):
        if not (root / img).is_file():
            raise PluginError(f"included results link to a missing image {img!r}")
        files.append(File.generated(config, f"{ASSETS}/{img}", abs_src_path=str(root / img)))
    return files


def _rewrite_links(text: str, rel: str, page_uri: str, docs: str | None = None) -> str:
    """Links of `text`, read from repository file `rel`, as seen from page `page_uri`.

    With `docs` (the docs dir, relative to the root), links that stay inside it are left alone: a page's
    own links to repository files (``../../results/…``, which also work when reading docs/ on GitHub).
    """
    here = posixpath.dirname(page_uri) or "."

    def sub(m: re.Match) -> str:
        bang, label, target = m.groups()
        if "://" in target or target.startswith(("#", "mailto:")):
            return m.group(0)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target.split("#")[0]))
        if docs is not None and (path + "/").startswith(docs + "/"):
            return m.group(0)
        if bang and path.lower().endswith(IMAGE_EXT):
            return f"{bang}[{label}]({posixpath.relpath(f'{ASSETS}/{path}', here)})"
        if path in _included:
            return f"[{label}]({posixpath.relpath(_included[path], here)})"
        return f"{label} (`{path}`)" if label and label.strip("`/") != path else f"`{path}`"

    return LINK.sub(sub, text)


def _headings(text: str) -> list[int]:
    """Levels of the ATX headings of `text`, outside code fences."""
    levels, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#{1,6}) ", line)):
            levels.append(len(m.group(1)))
    return levels


def _demote(text: str, by: int) -> str:
    """Headings `by` levels deeper (at most h6)."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#{1,6}) ", line)):
            line = "#" * min(6, len(m.group(1)) + by) + line[len(m.group(1)):]
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    """Replace each include line by the repository file's text, headings demoted and links rewritten."""
    root = _root(config)
    docs = Path(config.docs_dir).resolve().relative_to(root).as_posix()

    own = _rewrite_links(markdown, f"{docs}/{page.file.src_uri}", page.file.src_uri, docs)

    def sub(m: re.Match) -> str:
        rel = posixpath.normpath(m.group(1))
        text = _rewrite_links(_read(root, rel, page.file.src_uri), rel, page.file.src_uri)
        above = _headings(own[: m.start()])  # the section the include sits in
        top = min(_headings(text), default=1)
        return _demote(text, (above[-1] if above else 1) + 1 - top) + "\n"

    return DIRECTIVE.sub(sub, own)
