"""The sequence-task benchmark runs end to end (a smoke run; the real numbers are in docs/benchmarks.md)."""

import importlib.util
from pathlib import Path

import numpy as np

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


def test_ucr_variants_quick_runs():
    path = BENCH.with_name("ucr_variants.py")
    spec = importlib.util.spec_from_file_location("ucr_variants", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = module.main(["ItalyPowerDemand", "--quick"])
    assert lines[0] == "ItalyPowerDemand: train 67, test 1029"
    row = lines[-1].split("|")
    assert row[1].strip() == "default" and 0.0 <= float(row[2]) <= 1.0 and int(row[3]) >= 0


def test_ucr_variants_differences_add_a_channel():
    spec = importlib.util.spec_from_file_location("ucr_variants", BENCH.with_name("ucr_variants.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (out,) = module.with_differences([np.array([[1.0], [3.0], [2.0]])])
    np.testing.assert_array_equal(out, [[1.0, 0.0], [3.0, 2.0], [2.0, -1.0]])
