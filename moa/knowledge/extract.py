"""Text out of files: Markdown, plain text, CSV, JSON, source code, HTML and PDF; everything else is skipped.

`extract` is synchronous and may take a while on a large PDF: call it in a worker thread
(`asyncio.to_thread`). It never raises for a bad file: a file it cannot use comes back as `Skipped` with a reason
for the log.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

log = logging.getLogger("moa.knowledge")

MB = 1024 * 1024
TEXT_SUFFIXES = frozenset(
    ".md .markdown .mdx .txt .text .rst .adoc .org .log .csv .tsv .json .jsonl .ndjson .yaml .yml .toml .ini "
    ".cfg .conf .env.example .xml .tex".split()
)
CODE_SUFFIXES = frozenset(
    ".py .pyi .js .mjs .cjs .ts .tsx .jsx .go .rs .java .kt .kts .scala .c .h .cc .cpp .cxx .hpp .cs .rb .php "
    ".swift .m .mm .sh .bash .zsh .fish .ps1 .sql .css .scss .sass .less .lua .r .pl .pm .ex .exs .erl .hrl .hs "
    ".clj .dart .vue .svelte .tf .proto .graphql .gradle .cmake .el .vim .nim .zig .jl .groovy .bat".split()
)
CODE_NAMES = frozenset({"dockerfile", "makefile", "justfile", "procfile", "gemfile", "rakefile", "readme", "license"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED = "Markdown, plain text, CSV, JSON, source code, HTML, PDF"


@dataclass(frozen=True)
class Extracted:
    text: str


@dataclass(frozen=True)
class Skipped:
    reason: str


def kind_of(name: str) -> str | None:
    """"text", "html" or "pdf" for a file name this module reads; None for any other."""
    path = PurePath(name.lower())
    suffix = path.suffix
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in TEXT_SUFFIXES or suffix in CODE_SUFFIXES or path.name in CODE_NAMES:
        return "text"
    return None


def unsupported(name: str) -> Skipped | None:
    return Skipped(f"not a supported type ({SUPPORTED})") if kind_of(name) is None else None


def too_large(size: int, max_bytes: int) -> Skipped | None:
    if size > max_bytes:
        return Skipped(f"too large ({size / MB:.1f} MB; the limit is {max_bytes / MB:g} MB)")
    return None


def extract(name: str, data: bytes, *, max_bytes: int) -> Extracted | Skipped:
    """The text of a file called `name` holding `data`."""
    kind = kind_of(name)
    if (refused := unsupported(name) or too_large(len(data), max_bytes)) is not None:
        return refused
    if kind == "pdf":
        result = _pdf(data)
    else:
        decoded = _decode(data)
        if decoded is None:
            return Skipped("binary content, not text")
        result = Extracted(html_to_text(decoded) if kind == "html" else decoded)
    if isinstance(result, Extracted) and not result.text.strip():
        return Skipped("no text in it")
    return result


def _decode(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    text = data.decode("utf-8-sig", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):
        text = data.decode("latin-1")  # an 8-bit encoding: readable enough to be searched
    return text


def _pdf(data: bytes) -> Extracted | Skipped:
    import pypdf  # only when a PDF comes: it takes a while to import

    # pypdf logs every malformed object it recovers from; one line per skipped file is enough
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return Skipped("an encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # noqa: BLE001 - a damaged PDF may fail anywhere inside pypdf
        return Skipped(f"an unreadable PDF ({type(exc).__name__})")
    return Extracted("\n\n".join(p.strip() for p in pages if p.strip()))


class _TextOfHtml(HTMLParser):
    BLOCKS = frozenset(
        "p div br li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer pre blockquote dt dd".split()
    )
    HIDDEN = frozenset({"script", "style", "noscript", "template", "head"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
