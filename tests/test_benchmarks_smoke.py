"""benchmarks/lstm_speed.py runs end to end (``--quick``) and rewrites only its own doc section.

Not a benchmark: the timings of a quick run mean nothing, only that every table and ratio is there.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import lstmkit.nn as lnn

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "lstm_speed.py"
RATIO = re.compile(r"\d+\.\d\dx")


@pytest.fixture(scope="module")
def lstm_speed():
    spec = importlib.util.spec_from_file_location("lstm_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look up their module there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _sections(output: str) -> dict[str, str]:
    """The printed report split at its ``### `` headings, keyed by the heading's first word."""
    return {part.split()[0]: part for part in output.split("\n### ")[1:]}


def _ratios(table: str, label: str) -> list[str]:
    row = next(line for line in table.splitlines() if line.startswith(f"| {label} "))
    return [cell.strip() for cell in row.split("|") if RATIO.fullmatch(cell.strip())]


def test_quick_run_prints_every_table_and_ratio(lstm_speed, capsys):
    doc = lstm_speed.DOC_PATH
    before = doc.read_text() if doc.exists() else None

    assert lstm_speed.main(["--quick"]) == 0

    output = capsys.readouterr().out
    sections = _sections(output)
    assert set(sections) == {"Sequence", "Streaming", "Peak", "Targets:"}, output
    labels = ["torch.nn.LSTM", *(f"{kind} {v}" for v in lnn.VARIANTS for kind in ("lstmkit", "loop")),
              "lstmkit standard (fused)", "torch.nn.GRU", "lstmkit GRU", "lstmkit GRU (fused)"]
    for label in labels:
        assert len(_ratios(sections["Sequence"], label)) == 2, f"{label}: no train and inference ratio"
    for variant in lnn.VARIANTS:
        assert len(_ratios(sections["Peak"], f"lstmkit {variant}")) == 1
    for variant in ("standard", "peephole", "layernorm"):
        assert re.search(rf"\| lstmkit {variant} step\(x\) .*(PASS|MISS)", sections["Streaming"])
    assert (doc.read_text() if doc.exists() else None) == before  # no --write-doc, no write


def test_help(lstm_speed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lstm_speed.main(["--help"])
    assert exit_info.value.code == 0
    assert "--write-doc" in capsys.readouterr().out


def test_replace_section_keeps_the_rest_of_the_document(lstm_speed):
    start, end = lstm_speed.DOC_START, lstm_speed.DOC_END
    document = f"# Benchmarks\n\nintro\n\n{start}\nold tables\n{end}\n\n## Other\nkept\n"
    assert lstm_speed.replace_section(document, "new tables") == (
        f"# Benchmarks\n\nintro\n\n{start}\nnew tables\n{end}\n\n## Other\nkept\n")
    assert lstm_speed.replace_section("# Benchmarks\n", "tables") == f"# Benchmarks\n\n{start}\ntables\n{end}\n"


def test_kernel_choice_quick_run_prints_both_grids(lstm_speed, capsys):
    """benchmarks/kernel_choice.py (which reuses lstm_speed's timing) prints a ratio per shape."""
    spec = importlib.util.spec_from_file_location("kernel_choice", SCRIPT.with_name("kernel_choice.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = lstm_speed.DOC_PATH
    before = doc.read_text() if doc.exists() else None

    assert module.main(["--quick"]) == 0

    sections = _sections(capsys.readouterr().out)
    assert set(sections) == {"standard", "GRU,"}
    for name, mode in (("standard", "LSTM"), ("GRU,", "GRU")):
        for shape in module.QUICK:
            assert len(_ratios(sections[name], f"{mode} {shape}")) == 2
    assert (doc.read_text() if doc.exists() else None) == before
