"""``lstmkit paper``: run the LSTM papers' experiments and set the results beside the papers' figures."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lstmkit.cli.common import app, console, fail, new_run
from lstmkit.errors import ConfigError, LstmkitError

if TYPE_CHECKING:
    from lstmkit.papers.report import Profile
    from lstmkit.papers.runner import RunResult


def _print_run(r: RunResult) -> None:
    console.print(f"  {r.experiment} {r.setting} seed {r.seed}: {'success' if r.success else 'not reached'} "
                  f"after {r.sequences:,} sequences ({r.seconds:.0f} s)", markup=False, highlight=False)


class _Record:
    """The ``--resume`` file: the plan's budgets and every finished run, rewritten whole after each."""

    def __init__(self, path: Path | None, profile: Profile | None) -> None:
        from lstmkit.errors import DataError
        from lstmkit.papers.runner import RunResult

        self.path, self.done = path, []
        self.plan = dataclasses.asdict(profile) if profile is not None else None
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            plan, runs = saved["plan"], saved["runs"]
            self.done = [RunResult(**{**r, "curve": [tuple(point) for point in r["curve"]]}) for r in runs]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path} is not a results file of `lstmkit paper --resume` ({error}); give another "
                            "file, or remove this one to start afresh") from None
        if plan != self.plan:
            raise ConfigError(f"{path} holds runs made with other budgets ({plan}, now {self.plan}); continue "
                              "with the same profile and --budget, or give another file")

    def add(self, result: RunResult) -> None:
        if self.path is None:
            return
        from lstmkit.io import atomic_write_text

        self.done.append(result)
        atomic_write_text(self.path, json.dumps({"plan": self.plan,
                                                 "runs": [dataclasses.asdict(r) for r in self.done]}, indent=1))


@app.command()
def paper(
    experiments: Annotated[list[str] | None, typer.Argument(help="Experiments to run (default: all): reber, lag-2a, "
                                                                 "lag-2b, lag-2c, noise-3a, adding, multiplication, "
                                                                 "order-6a, order-6b (1997); continual-reber "
                                                                 "(2000); timing-gts, timing-msd (2002).")] = None,
    profile: Annotated[str, typer.Option(help="quick (T = 100 levels, 3 seeds, 18 min in all), full (every level; "
                                              "writes its section of docs/papers.md) or smoke (seconds).")] = "quick",
    seeds: Annotated[int | None, typer.Option(help="Seeds per row (default: the profile's).")] = None,
    first_seed: Annotated[int, typer.Option(help="The first seed (the seeds run from here): split a row's seeds "
                                                 "among processes, one per core.", min=0)] = 0,
    budget: Annotated[float | None, typer.Option(help="Seconds per run, instead of the profile's budget (the quick "
                                                      "profile's shared 18 minutes included).", min=1.0)] = None,
    max_sequences: Annotated[int | None, typer.Option(help="Training sequences per run, instead of the profile's "
                                                           "(quick 1,000,000, full 2,000,000); rounded up to whole "
                                                           "test intervals.",
                                                      min=1)] = None,
    settings: Annotated[str, typer.Option(help="Comma-separated settings: paper, no-forget, no-peephole (the papers' "
                                               "ablations, where an experiment has them), modern, rnn, gru.")] =
    "paper,no-forget,no-peephole,modern,rnn,gru",
    runs: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    jobs: Annotated[int, typer.Option(help="Runs at a time, each in a process of its own with one thread (one per "
                                           "core).", min=1)] = 1,
    resume: Annotated[Path | None, typer.Option(help="Keep every finished run in this JSON file and skip the runs "
                                                     "already in it: the same command with the same file continues "
                                                     "a profile that was stopped.")] = None,
) -> None:
    """Reproduce Hochreiter & Schmidhuber (1997) experiments 1-6, the continual embedded Reber grammar of
    Gers et al. (2000) and the timing tasks of Gers et al. (2002): each in the paper's settings (the
    1997 network of memory-cell blocks, learning online with its truncated gradient after every step,
    with the forget gates of 2000 and the peepholes of 2002; the paper's learning rate and criterion;
    with and without forget gate or peepholes where the paper compares them) and in modern
    settings (Adam, mini-batches, standard cell), with an Elman RNN and a GRU under the same budget.

    Examples:

      lstmkit paper --profile smoke reber

      lstmkit paper adding order-6a --seeds 3

      lstmkit paper reber adding --settings paper,modern --budget 300

      lstmkit paper order-6b --settings paper --budget 900 --max-sequences 1500000

      lstmkit paper continual-reber --settings paper --seeds 3 --first-seed 3

      lstmkit paper --profile full --jobs 2 --resume runs/paper-full.json
    """
    from lstmkit.papers import PROFILES, markdown, plot_curves, run_profile
    from lstmkit.papers.report import Profile, place_full_report

    chosen = [s.strip() for s in settings.split(",") if s.strip()]
    plan: str | Profile = profile
    label = profile
    if budget is not None and profile in PROFILES:
        plan = dataclasses.replace(PROFILES[profile], max_seconds=budget, total_seconds=None)
        label = f"{profile}, {budget:g} s per run"
    if max_sequences is not None and profile in PROFILES:
        plan = dataclasses.replace(PROFILES[profile] if isinstance(plan, str) else plan, max_sequences=max_sequences)
        label += f", up to {max_sequences:,} sequences per run"
    try:
        record = _Record(resume, plan if isinstance(plan, Profile) else PROFILES.get(plan))
        if record.done:
            console.print(f"{len(record.done)} runs already in {resume}: not run again", markup=False,
                          highlight=False)

        def progress(result: RunResult) -> None:
            record.add(result)
            _print_run(result)

        with new_run(runs, f"paper-{profile}") as (tmp, final):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = run_profile(experiments or [], plan, seeds, chosen, first_seed=first_seed,
                                      progress=progress, jobs=jobs, done=list(record.done))
            report = markdown(results, label)
            (tmp / "report.md").write_text(report + "\n", encoding="utf-8")
            (tmp / "results.json").write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1),
                                              encoding="utf-8")
            plot_curves(results, tmp / "curves.png")
    except LstmkitError as error:
        fail(str(error))
        return
    console.print(report, markup=False, highlight=False)
    if profile == "full" and Path("docs").is_dir():
        from lstmkit.io import atomic_write_text

        page = Path("docs/papers.md")
        try:  # the hand-written sections around the profile's own are kept
            text = place_full_report(page.read_text(encoding="utf-8") if page.exists() else None,
                                     f"{report}\n\nLearning curves: `{final / 'curves.png'}`.")
        except LstmkitError as error:
            fail(f"{error} (the report is in {final / 'report.md'})")
            return
        atomic_write_text(page, text)
        console.print("wrote the full profile's section of docs/papers.md")
    console.print(f"run directory: [bold]{final}[/]")
