"""The forecasting benchmark runs end to end (a smoke run; the real numbers are in docs/benchmarks.md)."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "forecast_bench.py"


def test_forecast_bench_quick_runs_and_leaves_the_doc_alone():
    spec = importlib.util.spec_from_file_location("forecast_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc_before = module.DOC.read_text() if module.DOC.exists() else None
    text = module.main(["--quick", "--write-doc"])
    assert "hand-written loop" in text and "lstmkit LSTMForecaster" in text
    assert "| seasonal_naive |" in text and "| auto_ets |" in text and "Target: mean LSTM MASE" in text
    assert (module.DOC.read_text() if module.DOC.exists() else None) == doc_before
