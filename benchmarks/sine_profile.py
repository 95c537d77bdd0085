"""Where LSTMForecaster's time goes on the seeds' sine task (the forecast_bench settings).

Times the phases of one fit with Lightning callbacks (training steps, validation, the gaps between
epochs) and, with ``--cprofile``, prints cProfile's top entries. Run after a warm-up fit, 2 threads:

    python benchmarks/sine_profile.py              # phase times over 3 fits
    python benchmarks/sine_profile.py --cprofile   # plus the profile of the last fit
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import sys
import time
import warnings
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

import lstmkit.tasks.forecast.estimator as estimator
from lstmkit.tasks.forecast import LSTMForecaster
from lstmkit.train import TaskModule, TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_bench import sine  # noqa: E402

MARKS: list[tuple[str, float]] = []


class Phases(Callback):
    """Time stamps at the hooks that separate training steps and epoch changes. (A callback of the
    validation loop's hooks or of the epoch's end would make lstmkit keep Lightning's loop: the
    validation pass that the module runs itself is timed by wrapping it, see main.)"""

    def _mark(self, name: str) -> None:
        MARKS.append((name, time.perf_counter()))

    def on_train_epoch_start(self, *args) -> None:
        self._mark("epoch start")

    def on_train_batch_start(self, *args) -> None:
        self._mark("steps start")

    def on_train_batch_end(self, *args) -> None:
        self._mark("steps end")



def fit_once(seed: int) -> None:
    model = LSTMForecaster(horizon=1, window=50, hidden_size=50, transform="none", quantiles=(), ensemble=1,
                           val_size=50, training=TrainConfig(max_epochs=20, batch_size=32, learning_rate=1e-3,
                                                             lr_schedule="none", early_stopping_patience=0,
                                                             seed=seed))
    model.fit(sine()[:800])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    warnings.simplefilter("ignore")
    original = estimator.fit
    estimator.fit = lambda *a, callbacks=(), **k: original(*a, callbacks=[*callbacks, Phases()], **k)
    validate = TaskModule._validate_inline

    def timed_validation(self: TaskModule) -> None:
        MARKS.append(("validation start", time.perf_counter()))
        validate(self)
        MARKS.append(("validation end", time.perf_counter()))

    TaskModule._validate_inline = timed_validation
    fit_once(0)  # warm-up
    for seed in (1, 2, 3):
        MARKS.clear()
        start = time.perf_counter()
        fit_once(seed)
        total = time.perf_counter() - start
        spans: dict[str, float] = collections.defaultdict(float)
        for (a, ta), (b, tb) in zip(MARKS, MARKS[1:]):
            spans[f"{a} -> {b}"] += tb - ta
        top = sorted(spans.items(), key=lambda kv: -kv[1])[:6]
        print(f"fit {total:.2f} s: " + "; ".join(f"{k} {v:.3f} s" for k, v in top))
    if args.cprofile:
        profile = cProfile.Profile()
        profile.enable()
        fit_once(4)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
