"""What the benchmark scripts share: the machine's name and their sections of docs/benchmarks.md."""

from __future__ import annotations

import platform
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def replace_section(document: str, start: str, end: str, body: str) -> str:
    """``document`` with the text between the markers replaced by ``body`` (appended if absent)."""
    section = f"{start}\n{body}\n{end}"
    i, j = document.find(start), document.find(end)
    if i == -1 or j < i:
        return document.rstrip("\n") + "\n\n" + section + "\n"
    return document[:i] + section + document[j + len(end):]


def write_section(start: str, end: str, body: str, doc: Path = DOC) -> None:
    """Rewrite one section of ``doc`` (written to a temporary file, then renamed)."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    current = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(replace_section(current, start, end, body), encoding="utf-8")
    tmp.replace(doc)
