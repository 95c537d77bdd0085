"""Built-in text data that ships with Python itself: nothing is downloaded.

The source of Python's standard library is on every machine that runs lstmkit. Its files are read
and parsed with :mod:`ast` and :mod:`tokenize` (never imported, so no module code runs), in sorted
path order, which makes every dataset here deterministic for a given Python version:

* :func:`docstrings`: the docstrings of modules, classes and functions, a corpus of English
  technical prose for language models and text generation;
* :func:`docstring_topics`: a text-classification table: the first paragraph of a docstring and
  the package it documents (``email``, ``asyncio``, ...);
* :func:`code_characters`: a sequence-labelling table: lines of code and, for every character, the
  kind of token it belongs to (``name``, ``keyword``, ``op``, ``number``, ``string``, ``comment``,
  ``space``): a string or a comment is only recognisable from the characters around it.
"""

from __future__ import annotations

import ast
import io
import keyword
import sysconfig
import tokenize
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pandas as pd

__all__ = ["stdlib_files", "docstrings", "docstring_topics", "code_characters", "TOPICS", "TAGS"]

TOPICS = ("asyncio", "email", "http", "importlib", "logging", "multiprocessing", "unittest", "urllib", "xml")
TAGS = ("space", "name", "keyword", "op", "number", "string", "comment")
_SKIP = ("test", "tests", "idlelib", "turtledemo", "lib2to3", "site-packages", "dist-packages", "ensurepip",
         "tkinter", "pydoc_data", "__pycache__")


@lru_cache(maxsize=1)
def stdlib_files() -> tuple[Path, ...]:
    """The standard library's ``.py`` files (tests and bundled tools excluded), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if not any(part in _SKIP for part in p.relative_to(root).parts)]
    return tuple(sorted(files, key=lambda p: p.relative_to(root).as_posix()))


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return None


def _documented(tree: ast.Module) -> Iterator[str]:
    nodes = [tree, *[n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef,
                                                                   ast.AsyncFunctionDef))]]
    for node in nodes:
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc) >= 20:
            yield doc


@lru_cache(maxsize=4)
def docstrings(max_chars: int | None = 2_000_000) -> str:
    """The standard library's docstrings, one after another, separated by blank lines.

    Args:
        max_chars: stop after about this many characters (``None``: all of them).

    Example:
        >>> text = docstrings(max_chars=10_000)
        >>> 10_000 <= len(text) < 20_000 and text == docstrings(max_chars=10_000)
        True
    """
    parts: list[str] = []
    total = 0
    for path in stdlib_files():
        tree = _parse(path)
        if tree is None:
            continue
        for doc in _documented(tree):
            parts.append(doc)
            total += len(doc) + 2
            if max_chars is not None and total >= max_chars:
                return "\n\n".join(parts)
    return "\n\n".join(parts)


def docstring_topics(max_per_topic: int = 250) -> pd.DataFrame:
    """Text classification: the first paragraph of a docstring and its package.

    Returns:
        a DataFrame with columns ``text`` and ``label`` (one of :data:`TOPICS`), at most
        ``max_per_topic`` rows per label, in file order.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    rows: dict[str, list[str]] = {topic: [] for topic in TOPICS}
    for path in stdlib_files():
        topic = path.relative_to(root).parts[0]
        if topic not in rows or len(rows[topic]) >= max_per_topic:
            continue
        tree = _parse(path)
        if tree is None:
            continue
        for doc in _documented(tree):
            paragraph = doc.split("\n\n")[0].strip()
            if len(paragraph) >= 30 and len(rows[topic]) < max_per_topic:
                rows[topic].append(" ".join(paragraph.split()))
    return pd.DataFrame([(text, topic) for topic, texts in rows.items() for text in texts],
                        columns=["text", "label"])


def _tag(token: tokenize.TokenInfo) -> str | None:
    if token.type == tokenize.NAME:
        return "keyword" if keyword.iskeyword(token.string) else "name"
    return {tokenize.OP: "op", tokenize.NUMBER: "number", tokenize.STRING: "string",
            tokenize.COMMENT: "comment"}.get(token.type)


def code_characters(max_lines: int = 4000, max_length: int = 80) -> pd.DataFrame:
    """Sequence labelling: lines of standard-library code and a tag for each of their characters.

    Returns:
        a DataFrame with ``text`` (a line, without its newline) and ``tags`` (a space-separated
        tag per character, from :data:`TAGS`), lines of 10 to ``max_length`` characters.

    Example:
        >>> row = code_characters(max_lines=50).iloc[0]
        >>> len(row.text) == len(row.tags.split())
        True
    """
    rows: list[tuple[str, str]] = []
    for path in stdlib_files():
        try:
            source = path.read_text(encoding="utf-8")
            tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
        except (SyntaxError, UnicodeDecodeError, tokenize.TokenError, IndentationError, OSError):
            continue
        lines = source.splitlines()
        tags = [["space"] * len(line) for line in lines]
        for token in tokens:
            kind = _tag(token)
            if kind is None:
                continue
            (r0, c0), (r1, c1) = token.start, token.end
            for r in range(r0, r1 + 1):
                if r - 1 >= len(tags):
                    break
                start = c0 if r == r0 else 0
                stop = c1 if r == r1 else len(tags[r - 1])
                for c in range(start, min(stop, len(tags[r - 1]))):
                    tags[r - 1][c] = kind
        for line, line_tags in zip(lines, tags):
            stripped = line.rstrip()
            if 10 <= len(stripped) <= max_length and stripped.strip():
                rows.append((stripped, " ".join(line_tags[: len(stripped)])))
                if len(rows) >= max_lines:
                    return pd.DataFrame(rows, columns=["text", "tags"])
    return pd.DataFrame(rows, columns=["text", "tags"])
