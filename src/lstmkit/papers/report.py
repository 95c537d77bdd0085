"""Running a profile of experiments and reporting it: a table beside the papers' figures, and curves.

``quick``: the T = 100 (or smallest) level of each experiment, 3 seeds, 18 minutes shared among all
runs (a run that meets its criterion early leaves its time to the others). ``full``: every level,
5 seeds, up to 10 minutes per run, written to its own section of ``docs/papers.md``
(:func:`place_full_report`). A run that does not meet the paper's criterion within its budget is
reported as not reached, with how far it got.

:func:`run_profile` makes several runs at a time in processes of their own (``jobs``; started with
``spawn``, so a script that calls it needs the ``if __name__ == "__main__":`` guard) and skips the
runs it is given as ``done``: ``lstmkit paper --resume`` keeps them in a file, so that a profile of
many hours can be stopped and continued.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lstmkit.errors import ConfigError
from lstmkit.papers.registry import EXPERIMENTS
from lstmkit.papers.runner import RunResult, run

__all__ = ["PROFILES", "Profile", "run_profile", "run_key", "markdown", "plot_curves", "FULL_BEGIN", "FULL_END",
           "place_full_report"]

SETTING_ORDER = ("paper", "no-forget", "no-peephole", "modern", "rnn", "gru")


@dataclass(frozen=True)
class Profile:
    """How much to run: levels, seeds, and each run's budget.

    Attributes:
        max_sequences, max_seconds: one run's budget (whichever ends first).
        total_seconds: if set, the whole profile's wall-time budget: each run gets an equal share
            of what is left (at most ``max_seconds``), so runs that meet the criterion early leave
            more time to the ones after them, and the profile ends on time.
    """

    name: str
    seeds: int
    max_sequences: int
    max_seconds: float
    eval_every: int
    total_seconds: float | None = None


PROFILES = {
    "quick": Profile("quick", 3, 1_000_000, 60.0, 1_000, total_seconds=18 * 60.0),
    "full": Profile("full", 5, 2_000_000, 600.0, 5_000),
    "smoke": Profile("smoke", 1, 200, 2.0, 100),
}


def _level_name(level: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in level.items())


def run_key(experiment: str, level: dict, setting: str, seed: int) -> str:
    """What identifies one run of a profile (the level as JSON reads it back: tuples are lists)."""
    return json.dumps([experiment, level, setting, seed], sort_keys=True)


def _quiet_worker(filters: list) -> None:
    """A worker process starts with the parent's warning filters (a spawned process has its own)."""
    warnings.filters[:] = filters


def _run_in_worker(key: str, level: dict, setting: str, seed: int, max_sequences: int, budget: float,
                   eval_every: int) -> RunResult:
    return run(EXPERIMENTS[key], level, setting, seed, max_sequences, budget, eval_every)


def run_profile(experiments: Sequence[str], profile: str | Profile = "quick", seeds: int | None = None,
                settings: Sequence[str] = SETTING_ORDER,
                progress: Callable[[RunResult], None] | None = None, first_seed: int = 0, jobs: int = 1,
                done: Sequence[RunResult] = ()) -> list[RunResult]:
    """Run every experiment, level, setting and seed of a profile.

    Args:
        experiments: experiment keys (empty: all).
        profile: ``"quick"``, ``"full"``, ``"smoke"`` or a :class:`Profile`.
        seeds: seeds per row (default: the profile's).
        settings: which settings to run (``paper``, ``no-forget`` and ``no-peephole`` where an
            experiment has them, ``modern``, ``rnn``, ``gru``).
        progress: called after each run.
        first_seed: the seeds are ``first_seed, first_seed + 1, ...`` (a row's seeds can be split
            among processes, one per core).
        jobs: runs at a time, each in a process of its own with one thread (one per core). A
            profile's total budget (``total_seconds``) is then shared by that many cores.
        done: results of runs made before (an interrupted profile's): these runs are not made
            again, their results take their places in the list returned, and the seconds they
            took count against the profile's total budget.
    """
    chosen = PROFILES.get(profile) if isinstance(profile, str) else profile
    if chosen is None:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if isinstance(first_seed, bool) or not isinstance(first_seed, int) or first_seed < 0:
        raise ConfigError(f"first_seed must be an integer >= 0, got {first_seed!r}")
    keys = list(experiments) or list(EXPERIMENTS)
    unknown = [k for k in keys if k not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"unknown experiment(s) {unknown}; known: {', '.join(EXPERIMENTS)}")
    strange = [s for s in settings if s not in SETTING_ORDER]
    if strange:
        raise ConfigError(f"unknown setting(s) {strange}; known: {', '.join(SETTING_ORDER)}")
    level_profile = "full" if chosen.name == "full" else "quick"
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be a positive integer (runs at a time), got {jobs!r}")
    plan = [(key, level, setting, seed)
            for key in keys
            for level in EXPERIMENTS[key].levels[level_profile]
            for setting in settings if setting in EXPERIMENTS[key].settings
            for seed in range(first_seed, first_seed + (seeds or chosen.seeds))]
    made = {run_key(r.experiment, r.level, r.setting, r.seed): r for r in done}
    results: list[RunResult | None] = [None] * len(plan)
    todo = []
    for index, (key, level, setting, seed) in enumerate(plan):
        before = made.get(run_key(key, level, setting, seed))
        if before is not None:  # the plan's own level (a result read back from JSON has lists for tuples)
            results[index] = dataclasses.replace(before, level=level)
        else:
            todo.append(index)
    # a resumed profile's total: what its earlier runs took (core seconds) is spent already
    spent = sum(r.seconds for r in results if r is not None)
    deadline = time.perf_counter() + max(0.0, chosen.total_seconds - spent / jobs) if chosen.total_seconds else None

    def budget(running: Sequence[tuple[float, float]], left: int) -> float:
        """The next run's seconds: its share of the core time left before the deadline, less what
        the runs in flight (started, budget) may still take."""
        if deadline is None:
            return chosen.max_seconds
        now = time.perf_counter()
        spare = (deadline - now) * jobs - sum(max(0.0, start + b - now) for start, b in running)
        return min(chosen.max_seconds, max(1.0, spare / left))

    def finished(index: int, result: RunResult) -> None:
        results[index] = result
        if progress is not None:
            progress(result)

    if jobs == 1:
        for n, index in enumerate(todo):
            key, level, setting, seed = plan[index]
            finished(index, run(EXPERIMENTS[key], level, setting, seed, chosen.max_sequences,
                                budget((), len(todo) - n), chosen.eval_every))
        return results  # type: ignore[return-value]
    context = multiprocessing.get_context("spawn")  # not fork: torch's threads and Lightning's state
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_quiet_worker,
                             initargs=(warnings.filters[:],)) as pool:
        queue, running = list(todo), {}
        failure: Exception | None = None
        try:
            # after a run fails no new one starts, but the runs in flight finish and are kept (the
            # progress callback records them for --resume) before the failure is raised
            while (queue and failure is None) or running:
                while queue and failure is None and len(running) < jobs:
                    index = queue.pop(0)
                    share = budget([(start, b) for _, start, b in running.values()], len(queue) + 1)
                    future = pool.submit(_run_in_worker, *plan[index], chosen.max_sequences, share,
                                         chosen.eval_every)
                    running[future] = (index, time.perf_counter(), share)
                complete, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in complete:
                    index, _, _ = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as error:
                        failure = failure or error
                        continue
                    finished(index, result)
        except BaseException:  # an interrupt: stop at once
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if failure is not None:
        raise failure
    return results  # type: ignore[return-value]


def _paper_figure(key: str, level: dict) -> str:
    figures = EXPERIMENTS[key].paper
    name = _level_name(level).replace(" ", "").replace("p=", "p=")
    for figure_key, text in figures.items():
        if figure_key == "" or figure_key.replace(" ", "") in name:
            return text
    return "; ".join(figures.values())


def markdown(results: Sequence[RunResult], profile: str) -> str:
    """The report as a Markdown table (one row per experiment, level and setting), with notes."""
    lines = [
        f"Profile `{profile}`. Success = the paper's criterion met within the run's budget; sequences = training "
        "sequences until then (median over the successful seeds); budget = the runs' median wall-time budget.",
        "",
        "| experiment | level | setting | success | median sequences to success | budget | last test | the paper |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows: dict[tuple, list[RunResult]] = {}
    for r in results:
        rows.setdefault((r.experiment, _level_name(r.level), r.setting), []).append(r)
    for (key, _, setting), group in rows.items():
        experiment = EXPERIMENTS[key]
        won = [r for r in group if r.success]
        median = f"{statistics.median(r.sequences for r in won):,.0f}" if won else \
            f"not reached ({max(r.sequences for r in group):,} seen)"
        # the level as the row's training reads it (the online learners' rows leave out train_steps)
        level_name = _level_name(experiment.level_shown(group[0].level, experiment.settings[setting]))
        cells = [experiment.title, level_name or "-", experiment.settings[setting].description,
                 f"{len(won)}/{len(group)}", median, f"{statistics.median(r.budget for r in group):.0f} s",
                 group[-1].evaluation, _paper_figure(key, group[0].level)]
        # a "|" inside a cell (as in "|error|") would end the cell: escaped, Markdown shows it as text
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    notes = {r.experiment: EXPERIMENTS[r.experiment].notes for r in results if EXPERIMENTS[r.experiment].notes}
    if notes:
        lines += ["", "Notes:"] + [f"- {EXPERIMENTS[k].title}: {v}." for k, v in notes.items()]
    return "\n".join(lines)


# the lines around the part of docs/papers.md that ``lstmkit paper --profile full`` writes; the rest of
# the page (the longer runs and side checks, written by hand) is kept
FULL_BEGIN = "<!-- begin: written by `lstmkit paper --profile full`; edits between these lines are replaced -->"
FULL_END = "<!-- end: written by `lstmkit paper --profile full` -->"


def place_full_report(page: str | None, report: str, heading: str = "## The full profile") -> str:
    """The page with the full profile's report in place of the part between :data:`FULL_BEGIN` and
    :data:`FULL_END`; a page without those lines gets the section before its first ``## `` heading
    (or at its end), and no page (``None``) becomes one with a title and the section.

    Raises:
        ConfigError: if the page has only one of the two lines, or them in the wrong order (an
            edit has broken the section: restore the line named in the message).
    """
    section = f"{FULL_BEGIN}\n{heading}\n\n{report.strip()}\n{FULL_END}"
    if page is None:
        return f"# The LSTM papers, reproduced\n\n{section}\n"
    begin, end = page.find(FULL_BEGIN), page.find(FULL_END)
    if begin >= 0 and end > begin:
        return page[:begin] + section + page[end + len(FULL_END):]
    if begin >= 0 or end >= 0:
        found, missing, where = (FULL_BEGIN, FULL_END, "after") if end <= begin else (FULL_END, FULL_BEGIN, "before")
        raise ConfigError(f"the page has the line {found!r} but not {missing!r} {where} it, so the full profile's "
                          "section cannot be told from the rest of the page; put the missing line back (or remove "
                          "both) and run again")
    first = page.find("\n## ")
    if first < 0:
        return page.rstrip("\n") + "\n\n" + section + "\n"
    return page[:first + 1] + section + "\n\n" + page[first + 1:]


def _panel_levels(group: Sequence[RunResult]) -> tuple[str, dict[str, str]]:
    """A panel's level as its title gives it (the part every setting in the panel reads) and, per
    setting, the rest of the level that this setting reads (for its legend entry): the continual
    Reber grammar's online learners do not read the whole-sequence ``train_steps``."""
    experiment, level = EXPERIMENTS[group[0].experiment], group[0].level
    shown = {r.setting: experiment.level_shown(level, experiment.settings[r.setting]) for r in group}
    common = {k: v for k, v in level.items() if all(k in s for s in shown.values())}
    extras = {setting: _level_name({k: v for k, v in s.items() if k not in common}) for setting, s in shown.items()}
    return _level_name(common), extras


def plot_curves(results: Sequence[RunResult], path: str | Path) -> Path:
    """Test error against training sequences, one panel per experiment and level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple, list[RunResult]] = {}
    for r in results:
        panels.setdefault((r.experiment, _level_name(r.level)), []).append(r)
    columns = 3
    rows = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.2 * rows), squeeze=False)
    colors = dict(zip(SETTING_ORDER, ("tab:red", "tab:orange", "tab:purple", "tab:blue", "tab:gray", "tab:green")))
    for ax, ((key, _), group) in zip(axes.flat, panels.items()):
        title, extras = _panel_levels(group)
        seen = set()
        for r in group:
            if not r.curve:
                continue
            xs, ys = zip(*r.curve)
            # the legend names the setting (its details, long, with the biases, are in the report's
            # table) and the part of the level only this setting reads
            name = EXPERIMENTS[key].settings[r.setting].label.split(",")[0]
            label = None if r.setting in seen else f"{name} ({extras[r.setting]})" if extras[r.setting] else name
            seen.add(r.setting)
            ax.plot(xs, ys, color=colors.get(r.setting, "k"), alpha=0.7, lw=1.2, label=label)
        ax.set_title(f"{EXPERIMENTS[key].title.split(':')[0]} {title}".rstrip(), fontsize=9)
        ax.set_xlabel("training sequences", fontsize=8)
        ax.set_ylabel("test error (criterion quantity)", fontsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
