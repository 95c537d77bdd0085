"""The sequence-task benchmark runs end to end (a smoke run; the real numbers are in docs/benchmarks.md)."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "text_bench.py"


def test_text_bench_quick_runs_and_leaves_the_doc_alone():
    spec = importlib.util.spec_from_file_location("text_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc_before = module.DOC.read_text() if module.DOC.exists() else None
    text = module.main(["--quick", "--write-doc"])
    assert "hand-written Embedding + nn.LSTM + Linear" in text and "lstmkit LanguageModel" in text
    assert "| ItalyPowerDemand | 67 / 1029 |" in text
    assert (module.DOC.read_text() if module.DOC.exists() else None) == doc_before
