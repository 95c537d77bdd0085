"""The papers' task generators follow the papers; the criteria are the papers'; a smoke run works."""

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lstmkit.errors import ConfigError
from lstmkit.papers import EXPERIMENTS, markdown, run, run_profile, tasks
from lstmkit.papers.experiments import (
    Setting,
    continual_evaluate,
    continual_evaluate_network,
    final_max_error_below,
    gers_correct,
    max_error_below,
    reber_correct,
    stop_when,
    wrong_count,
)
from lstmkit.papers.runner import PaperNet

RNG = np.random.default_rng(0)


def _accepts(string: str) -> bool:
    """Walk the Reber graph: is ``string`` a Reber string?"""
    node = 0
    for symbol in string:
        options = dict(tasks._REBER[node]) if node != -1 else {}
        if symbol not in options:
            return False
        node = options[symbol]
    return node == -1


def test_reber_strings_follow_the_grammar_and_the_allowed_sets():
    for _ in range(200):
        string, allowed = tasks.reber_string(RNG)
        assert _accepts(string)
        for t in range(len(string) - 1):
            assert string[t + 1] in allowed[t]
        embedded, allowed = tasks.embedded_reber_string(RNG)
        assert embedded[0] == "B" and embedded[-1] == "E" and embedded[1] == embedded[-2] in "TP"
        assert _accepts(embedded[2:-2])
        assert allowed[-3] == embedded[1]  # after the inner E only the remembered symbol can follow
        for t in range(len(embedded) - 1):
            assert embedded[t + 1] in allowed[t]


def test_exp1_trains_on_a_fixed_set_and_is_judged_on_it_and_on_other_strings():
    """The 1997 paper's protocol: 256 training strings picked at random, 256 test strings none of
    which is in the training set, success only when both sets are predicted."""
    from lstmkit.papers.experiments import test_set, training_set
    from lstmkit.papers.runner import SequenceStream

    experiment = EXPERIMENTS["reber"]
    train, test = training_set(experiment, {}, 3), test_set(experiment, {}, 3)
    assert len(train.lengths) == 256 and len(test.lengths) == 512
    keys = [tasks.sequence_key(train, r) for r in range(256)]
    assert [tasks.sequence_key(test, r) for r in range(256)] == keys  # the training set comes first
    assert not {tasks.sequence_key(test, r) for r in range(256, 512)} & set(keys)  # then unseen strings
    assert len(set(keys)) < 256  # drawn at random: short strings repeat
    picked = SequenceStream(experiment, {}, 3, 64).__getitems__(list(range(4000)))
    # drawn at random from the whole set: every distinct training string turns up in 4000 picks
    assert len(picked.lengths) == 4000 and {tasks.sequence_key(picked, r) for r in range(4000)} == set(keys)
    assert [tasks.sequence_key(training_set(experiment, {}, 4), r) for r in range(256)] != keys  # per seed
    with pytest.raises(ValueError, match="trains on a fresh stream"):
        training_set(EXPERIMENTS["adding"], {"T": 100}, 0)
    # a task with too few distinct sequences for a separate test set says so instead of searching forever
    import dataclasses

    alike = dataclasses.replace(EXPERIMENTS["timing-gts"], train_set_size=4, test_size=2)  # every sequence the same
    with pytest.raises(ConfigError, match="found only 0 of 2 test sequences outside the training set of 4"):
        test_set(alike, {"T": 10}, 0)
    # one wrong training string fails the run, however good the test strings are
    outputs = test.targets.clone()
    outputs[0, 0] = torch.flip(outputs[0, 0], [0])
    assert not experiment.evaluate(outputs, test).success and experiment.evaluate(test.targets, test).success


def test_reber_batch_targets_and_continual_stream():
    batch = tasks.embedded_reber(RNG, 4)
    assert batch.inputs.shape[-1] == 7 and torch.all(batch.inputs.sum(-1)[batch.mask.bool()] == 1)
    assert torch.all(batch.targets.sum(-1)[batch.mask.bool()] >= 1)
    stream = tasks.continual_reber(RNG, 500)
    assert stream.inputs.shape == (1, 500, 7) and stream.mask.sum() == 500


def test_continual_stream_is_embedded_reber_strings_back_to_back():
    stream = tasks.continual_reber(RNG, 2000, batch=2)
    assert stream.inputs.shape == (2, 2000, 7)
    for b in range(2):
        symbols = "".join(tasks.REBER_SYMBOLS[i] for i in stream.inputs[b].argmax(-1).tolist())
        strings = symbols.replace("EB", "E|B").split("|")[:-1]  # the last one is cut off
        assert len(strings) > 50
        for string in strings:
            assert string[0] == "B" and string[-1] == "E" and string[1] == string[-2] in "TP"
            assert _accepts(string[2:-2])
        # after each E the next B is certain; the allowed sets match the next symbol everywhere
        ends = np.cumsum([len(string) for string in strings]) - 1  # each string's final E
        assert all(stream.targets[b, t].tolist() == [1, 0, 0, 0, 0, 0, 0] for t in ends)
        next_index = stream.inputs[b, 1:].argmax(-1)
        assert torch.all(stream.targets[b, :-1].gather(-1, next_index[:, None]) == 1)


def test_a_continual_piece_needs_at_least_one_symbol():
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="steps must be an integer >= 1"):
            tasks.continual_reber_piece(np.random.default_rng(0), bad)


def test_continual_pieces_form_one_grammatical_stream():
    """Gers et al.'s endless training stream, made piece by piece: whole strings, every symbol an
    input, the piece's last target the next piece's first B; pieces back to back are one stream."""
    rng = np.random.default_rng(5)
    pieces = [tasks.continual_reber_piece(rng, size) for size in (1, 16, 200, 200, 200, 200)]
    symbols = ""
    for piece in pieces:
        steps = int(piece.lengths[0])
        assert steps >= 9 and piece.mask.sum() == steps  # 9: the shortest embedded string
        text = "".join(tasks.REBER_SYMBOLS[i] for i in piece.inputs[0].argmax(-1).tolist())
        assert text[0] == "B" and text[-1] == "E"
        assert piece.targets[0, -1].tolist() == [1, 0, 0, 0, 0, 0, 0]  # after the last E: the next piece's B
        next_index = piece.inputs[0, 1:].argmax(-1)  # every other target allows the symbol that follows
        assert torch.all(piece.targets[0, :-1].gather(-1, next_index[:, None]) == 1)
        symbols += text
    strings = symbols.replace("EB", "E|B").split("|")
    assert len(strings) > 4 * 200 // 30
    for string in strings:
        assert string[0] == "B" and string[-1] == "E" and string[1] == string[-2] in "TP"
        assert _accepts(string[2:-2])


def test_gers_criterion_needs_every_output_within_049_of_its_target():
    batch = tasks.embedded_reber(RNG, 3)
    good = batch.targets * 0.02 + 0.49  # possible symbols at 0.51, the others at 0.49: just wrong
    assert not gers_correct(good, batch).any()
    good = batch.targets * 0.04 + 0.4801  # 0.5201 and 0.4801: every output within 0.49 of its target
    assert gers_correct(good, batch).all()
    # the ranking criterion of Exp 1 accepts outputs that Gers et al.'s rejects: all possible
    # symbols on top, but one of them below 0.5
    ranked = batch.targets * 0.3 + 0.1
    assert reber_correct(ranked, batch).all() and not gers_correct(ranked, batch).any()
    bad = good.clone()
    step = int(batch.mask[0].nonzero()[0])
    wrong = int((batch.targets[0, step] == 0).nonzero()[0])
    bad[0, step, wrong] = 0.49
    assert gers_correct(bad, batch).tolist() == [False, True, True]
    # steps without an error signal (the padding of shorter strings) are never wrong
    short = int(batch.lengths.argmin())
    assert batch.lengths[short] < batch.mask.shape[1]
    padded = good.clone()
    padded[short, int(batch.lengths[short]):] = 0.5
    assert gers_correct(padded, batch).all()


def test_continual_criterion_counts_consecutive_correct_predictions():
    stream = tasks.continual_reber(RNG, 3000)
    perfect = stream.targets * 0.9 + 0.05
    assert continual_evaluate(perfect, stream).success
    bad = perfect.clone()
    wrong = int((stream.targets[0, 1234] == 0).nonzero()[0])
    bad[0, 1234, wrong] = 1.0
    evaluation = continual_evaluate(bad, stream)
    assert not evaluation.success and "1,234 consecutive" in evaluation.detail

    class Replay(torch.nn.Module):  # "a network" that replays fixed outputs, carrying its position
        def run(self, x, state):
            start = 0 if state is None else state
            return bad[:, start:start + x.shape[1]], start + x.shape[1]

    # pieces of 100, 200, 400, 800 ... steps: the error falls in the fourth
    assert continual_evaluate_network(Replay(), stream, first=100) == evaluation
    assert continual_evaluate_network(Replay(), stream, first=500, largest=500) == evaluation
    assert continual_evaluate_network(Replay(), stream, first=7, largest=64) == evaluation
    bad = perfect  # the success path: every piece, to the end of the stream
    assert continual_evaluate_network(Replay(), stream, first=100).success
    assert continual_evaluate_network(Replay(), stream, first=7, largest=64) == continual_evaluate(perfect, stream)


def test_streamed_evaluation_of_a_real_network_equals_the_whole_stream():
    from lstmkit.papers.experiments import Setting

    torch.manual_seed(0)
    net = PaperNet(Setting("lstm", "standard", 4, "sgd", 0.1, 1, 0.0), 7, 7)
    stream = tasks.continual_reber(RNG, 1500)
    with torch.no_grad():
        whole = continual_evaluate(net(stream.inputs), stream)
    assert continual_evaluate_network(net, stream, first=100) == whole


def test_timed_spikes():
    batch = tasks.timed_spikes(RNG, 2, T=7, spikes=4)
    assert batch.inputs.shape == (2, 29, 1) and batch.inputs[:, :, 0].sum(-1).tolist() == [1, 1]
    assert batch.inputs[0, 0, 0] == 1
    assert batch.targets[0, :, 0].nonzero().flatten().tolist() == [7, 14, 21, 28]
    assert batch.mask.sum() == 2 * 29


def test_spike_delays():
    batch = tasks.spike_delays(np.random.default_rng(3), 200, intervals=(49, 50), spikes=4)
    classes = []
    for b in range(200):
        length = int(batch.lengths[b])
        times = batch.inputs[b, :length, 0].nonzero().flatten()
        gaps = set(times.diff().tolist())
        assert len(times) == 4 and len(gaps) == 1 and gaps <= {49, 50}
        assert times[0] < 50 and times[-1] == length - 1  # the stream ends at the last spike
        assert batch.mask[b].nonzero().flatten().tolist() == times[1:].tolist()
        target = batch.targets[b, times[1:], 0]
        assert torch.all(target == (1.0 if gaps == {50} else 0.0))
        classes.append(gaps == {50})
    assert 70 < sum(classes) < 130  # both intervals, about equally often (binomial, p = 0.5)


@pytest.mark.parametrize("variant", ["a", "b"])
def test_long_lag_a_and_b(variant):
    batch = tasks.long_lag(RNG, 6, p=10, variant=variant)
    x, y, m = batch.inputs, batch.targets, batch.mask
    assert x.shape == (6, 10, 11)
    first = x[:, 0].argmax(-1)
    assert torch.equal(y[:, -1].argmax(-1), first)  # the last symbol repeats the first
    assert set(first.tolist()) <= {9, 10}  # x or y
    torch.testing.assert_close(y[:, :-1], x[:, 1:])  # every other target is the next input
    assert m.sum() == 60  # every next symbol carries an error signal, in 2b as in 2a
    if variant == "a":
        assert torch.equal(x[0, 1:].argmax(-1), torch.arange(9))  # the fixed middle a_1..a_{p-1}
    else:
        middle = x[:, 1:].argmax(-1)
        assert middle.max() <= 8  # over a_1 .. a_{p-1} only
        assert len(set(map(tuple, middle.tolist()))) == 6  # random: six different middles


def test_long_lag_c():
    batch = tasks.long_lag(RNG, 5, p=20, variant="c")
    x, y, m = batch.inputs, batch.targets, batch.mask
    assert x.shape[-1] == 24 and y.shape[-1] == 2
    relevant = x[:, 1].argmax(-1) - 22  # 0: x, 1: y
    rows = torch.arange(5)
    last = batch.lengths - 1
    assert torch.equal(y[rows, last].argmax(-1), relevant)
    assert torch.all(x[:, 0].argmax(-1) == 20) and torch.all(x[rows, last].argmax(-1) == 21)  # b first, e last
    assert torch.equal(m.sum(-1), torch.ones(5)) and torch.all(m[rows, last] == 1)  # the error at e only
    for b in range(5):  # in between only distractors, at least q = p of them
        assert int(last[b]) - 2 >= 20 and x[b, 2:last[b]].argmax(-1).max() < 20


def test_long_lag_c_lengths_follow_the_papers_generator():
    # after the q = p distractors, another with probability 9/10, else e: k extra distractors with
    # P(k) = 0.1 * 0.9^k, mean 9 and standard deviation sqrt(0.9) / 0.1 = 9.49; with the final
    # symbol the sequences are q + 4 long at least (the paper's minimum) and q + 13 on average (the
    # paper's sum 4 + sum_k 0.1 * 0.9^k (q + k); it prints the result as q + 14)
    batch = tasks.long_lag(np.random.default_rng(5), 4000, p=10, variant="c")
    with_final = batch.lengths.double() + 1
    assert with_final.min() == 14
    assert abs(with_final.mean().item() - 23) < 4 * 9.49 / 4000 ** 0.5
    extra = (with_final - 14).long()
    assert abs((extra == 0).double().mean().item() - 0.1) < 4 * (0.09 / 4000) ** 0.5  # P(k = 0) = 0.1


def test_two_sequence_problem():
    batch = tasks.two_sequence(RNG, 200, T=100, N=3)
    assert torch.all((batch.lengths >= 100) & (batch.lengths <= 110))
    signs = batch.inputs[:, :3, 0]
    assert torch.all((signs == 1) | (signs == -1)) and torch.all(signs == signs[:, :1])
    final = batch.targets[torch.arange(200), batch.lengths - 1, 0]
    assert torch.equal(final, (signs[:, 0] == 1).float())
    noise = torch.cat([batch.inputs[b, 3: batch.lengths[b], 0] for b in range(200)])
    assert abs(noise.var().item() - 0.2) < 0.02 and abs(noise.mean().item()) < 0.02


@pytest.mark.parametrize("kind", ["adding", "multiplication"])
def test_adding_and_multiplication_follow_the_paper(kind):
    make = tasks.adding if kind == "adding" else tasks.multiplication
    batch = make(RNG, 300, T=100)
    for b in range(300):
        n = int(batch.lengths[b])
        assert 100 <= n <= 110
        values, markers = batch.inputs[b, :n, 0], batch.inputs[b, :n, 1]
        marked = (markers == 1).nonzero().flatten().tolist()
        # one mark among the first 10 pairs, the other among the first T/2 - 1 (in either order)
        assert len(marked) == 2 and min(marked) < 10 and max(marked) < 49
        assert markers[-1] == -1 and (markers[0] == -1 or 0 in marked)
        neutral = 0.0 if kind == "adding" else 1.0
        x1, x2 = (neutral if p == 0 else float(values[p]) for p in marked)
        expected = 0.5 + (x1 + x2) / 4 if kind == "adding" else x1 * x2
        assert batch.targets[b, n - 1, 0].item() == pytest.approx(expected, abs=1e-6)
        assert batch.mask[b].sum() == 1 and batch.mask[b, n - 1] == 1
        low = -1 if kind == "adding" else 0
        assert values.min() >= low and values.max() <= 1


@pytest.mark.parametrize("relevant,windows", [(2, [(10, 20), (50, 60)]), (3, [(10, 20), (33, 43), (66, 76)])])
def test_temporal_order(relevant, windows):
    batch = tasks.temporal_order(RNG, 200, relevant)
    for b in range(200):
        n = int(batch.lengths[b])
        symbols = batch.inputs[b, :n].argmax(-1)
        assert symbols[0] == 0 and symbols[-1] == 1 and 100 <= n <= 110
        positions = ((symbols == 2) | (symbols == 3)).nonzero().flatten().tolist()
        assert len(positions) == relevant
        assert all(low <= p <= high for p, (low, high) in zip(positions, windows))
        label = 0
        for p in positions:
            label = 2 * label + int(symbols[p] == 3)
        assert batch.targets[b, n - 1].argmax() == label and batch.targets[b, n - 1].sum() == 1


def test_criteria_golden():
    batch = tasks.adding(RNG, 4, T=100)
    perfect = batch.targets.clone()
    assert wrong_count(0.04)(perfect, batch).success
    off = perfect.clone()
    rows = torch.arange(4)
    off[rows, batch.lengths - 1] += 0.05
    evaluation = wrong_count(0.04, allowed=3)(off, batch)
    assert not evaluation.success and evaluation.error == 1.0 and "4 of 4 wrong" in evaluation.detail
    assert max_error_below(0.25)(perfect + 0.2 * batch.mask.unsqueeze(-1), batch).success
    assert not max_error_below(0.25)(perfect + 0.3 * batch.mask.unsqueeze(-1), batch).success
    assert max_error_below(0.49)(perfect + 0.48 * batch.mask.unsqueeze(-1), batch).success
    assert not max_error_below(0.49)(perfect + 0.5 * batch.mask.unsqueeze(-1), batch).success
    # ST3(0.01): the recent sequences' mean error below 0.01 and none of them wrong
    assert stop_when(0.01, 0)(0.001, 0)
    assert not stop_when(0.01, 0)(0.001, 1)
    assert not stop_when(0.01, 5)(0.02, 0)
    assert not stop_when(0.01, 0)(0.01, 0)  # "below"
    # Exp 5's rule: fewer than 140 of the 2000 most recent wrong, whatever their mean error
    assert stop_when(None, 139)(0.5, 139)
    assert not stop_when(None, 139)(0.5, 140)


def test_the_recent_window_keeps_the_mean_error_and_the_wrong_count_of_the_last_sequences():
    from lstmkit.papers.runner import RecentWindow

    rng = np.random.default_rng(0)
    errors = rng.exponential(0.05, 1000)
    correct = rng.random(1000) < 0.9
    window = RecentWindow(64)
    for i, (error, ok) in enumerate(zip(errors, correct)):
        window.push(float(error), bool(ok))
        start = max(0, i + 1 - 64)
        assert window.full == (i + 1 >= 64)
        assert window.mean == pytest.approx(errors[start:i + 1].mean(), rel=1e-12)
        assert window.wrong == int((~correct[start:i + 1]).sum())


def test_final_max_error_bounds_only_the_sequence_ends():
    batch = tasks.long_lag(RNG, 5, p=10, variant="b")  # error signals at every step
    outputs = batch.targets.clone()
    outputs[:, :-1] = 1 - outputs[:, :-1]  # every middle prediction as wrong as can be
    last = torch.arange(5), batch.lengths - 1
    outputs[last] += 0.24
    evaluation = final_max_error_below(0.25)(outputs, batch)
    assert evaluation.success and evaluation.error == pytest.approx(0.24) and "sequence ends" in evaluation.detail
    outputs[0, -1, 3] = 0.26  # one non-target output at one sequence's end
    assert not final_max_error_below(0.25)(outputs, batch).success
    assert not max_error_below(0.25)(batch.targets.clone().add_(0.3), batch).success


def test_reber_criterion_needs_exactly_the_possible_symbols_on_top():
    batch = tasks.embedded_reber(RNG, 3)
    good = batch.targets * 0.9 + 0.05  # allowed symbols on top
    assert reber_correct(good, batch).all()
    bad = good.clone()
    step = int(batch.mask[0].nonzero()[0])
    wrong = int((batch.targets[0, step] == 0).nonzero()[0])
    bad[0, step, wrong] = 1.0  # a symbol that cannot follow is now the most active
    assert reber_correct(bad, batch).tolist() == [False, True, True]


def test_smoke_run_and_report():
    result = run(EXPERIMENTS["reber"], {}, "modern", seed=0, max_sequences=300, max_seconds=20, eval_every=100)
    assert result.sequences > 0 and result.curve and not result.success
    assert result.curve[-1][0] == result.sequences
    assert "of 512 strings" in result.evaluation  # judged on the training set and 256 unseen strings
    text = markdown([result], "smoke")
    assert "1997 Exp 1" in text and "not reached" in text and "39,740" in text
    # a "|" inside a cell is escaped, so that every row has the header's 8 cells
    from lstmkit.papers import RunResult

    lagged = RunResult("lag-2c", {"p": 100}, "paper", 0, False, 10, 1.0, "max |error| 0.5 (criterion < 0.2)")
    table = [line for line in markdown([result, lagged], "smoke").splitlines() if line.startswith("|")]
    assert len(table) == 4 and "max \\|error\\| 0.5" in table[-1]
    assert {len(re.split(r"(?<!\\)\|", line)) for line in table} == {10}  # 8 cells between 9 bars
    with pytest.raises(ConfigError, match="unknown experiment"):
        run_profile(["nope"], "smoke")
    with pytest.raises(ConfigError, match="unknown profile"):
        run_profile(["reber"], "long")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['modren'\]"):
        run_profile(["reber"], "smoke", settings=["modern", "modren"])


def test_the_report_leaves_out_the_level_settings_a_rows_training_does_not_read():
    # the continual Reber grammar's online learners train on streams that end at the first error:
    # the whole-sequence level train_steps=500 is not theirs
    from lstmkit.papers import RunResult

    level = EXPERIMENTS["continual-reber"].levels["quick"][0]
    results = [RunResult("continual-reber", level, setting, 0, False, 100, 1.0, "max |error| 0.9") for setting in
               ("paper", "modern")]
    paper_row, modern_row = [line for line in markdown(results, "smoke").splitlines() if "Gers et al. 2000" in line
                             and line.startswith("|")]
    assert "test_steps=1000000" in paper_row and "train_steps" not in paper_row
    assert "train_steps=500, test_steps=1000000" in modern_row


def test_the_curves_panel_shows_each_setting_the_level_it_reads(tmp_path, monkeypatch):
    # the panel's title has what every setting reads; train_steps goes to the legend of the settings
    # that train on whole sequences, not to the online learners'
    import matplotlib.pyplot as plt

    from lstmkit.papers import RunResult
    from lstmkit.papers.report import plot_curves

    level = EXPERIMENTS["continual-reber"].levels["quick"][0]
    results = [RunResult("continual-reber", level, setting, 0, False, 100, 1.0, "x", curve=[(50, 0.5), (100, 0.4)])
               for setting in ("paper", "modern")]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read it back
    plot_curves(results, tmp_path / "curves.png")
    (ax, *_), = [figure.axes for figure in figures]
    assert ax.get_title() == "Gers et al. 2000 test_steps=1000000"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0].startswith("paper: ") and "train_steps" not in labels[0]
    assert labels[1] == "modern: standard LSTM (train_steps=500)"


def test_paper_command_writes_a_run_directory(tmp_path):
    from lstmkit.cli.main import app

    result = CliRunner().invoke(app, ["paper", "reber", "--profile", "smoke", "--settings", "modern,rnn",
                                      "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_directory,) = tmp_path.iterdir()
    assert {p.name for p in run_directory.iterdir()} == {"report.md", "results.json", "curves.png"}
    results = json.loads((run_directory / "results.json").read_text())
    assert [r["setting"] for r in results] == ["modern", "rnn"]
    assert (run_directory / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "Elman RNN" in result.output


@pytest.mark.parametrize("key", ["continual-reber", "timing-gts", "timing-msd"])
def test_gers_experiments_smoke(key):
    experiment = EXPERIMENTS[key]
    level = experiment.levels["quick"][0]
    if key == "continual-reber":
        level = {**level, "test_steps": 5000}  # the paper's 10^6 is the profiles' business
    result = run(experiment, level, "paper", seed=0, max_sequences=40, max_seconds=20, eval_every=20)
    assert result.sequences == 40 and len(result.curve) == 2
    assert "no-peephole" in experiment.settings or "no-forget" in experiment.settings


def test_a_total_budget_is_shared_among_the_runs():
    import time

    from lstmkit.papers.report import Profile

    shared = Profile("shared", seeds=1, max_sequences=10**7, max_seconds=30.0, eval_every=500, total_seconds=6.0)
    start = time.perf_counter()
    results = run_profile(["lag-2a"], shared, settings=["modern", "gru"])
    elapsed = time.perf_counter() - start
    assert [r.setting for r in results] == ["modern", "gru"]
    assert results[0].budget == pytest.approx(3.0, abs=0.1)  # half of the total, not max_seconds
    assert results[0].budget + results[1].budget <= 6.0 + 1e-6
    assert all(r.seconds < r.budget + 3.0 for r in results)  # max_time stops each run near its share
    assert elapsed < 6.0 + 8.0
    assert "| 3 s |" in markdown(results[:1], "shared")


def test_paper_command_budget_overrides_the_profile(tmp_path):
    from lstmkit.cli.main import app

    result = CliRunner().invoke(app, ["paper", "lag-2a", "--profile", "smoke", "--settings", "gru", "--budget", "1",
                                      "--seeds", "2", "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_directory,) = tmp_path.iterdir()
    results = json.loads((run_directory / "results.json").read_text())
    assert [r["budget"] for r in results] == [1.0, 1.0] and [r["seed"] for r in results] == [0, 1]
    assert "Profile `smoke, 1 s per run`" in (run_directory / "report.md").read_text()
    bad = CliRunner().invoke(app, ["paper", "lag-2a", "--profile", "smoke", "--budget", "0"])
    assert bad.exit_code != 0 and "budget" in bad.output.lower()


def test_paper_command_max_sequences_overrides_the_profile(tmp_path):
    """--max-sequences caps each run's training sequences: 96 here, one test interval of the GRU's
    batches of 16 (the smoke profile's 200 would be rounded up to 288)."""
    from lstmkit.cli.main import app

    result = CliRunner().invoke(app, ["paper", "lag-2a", "--profile", "smoke", "--settings", "gru", "--budget", "30",
                                      "--max-sequences", "96", "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_directory,) = tmp_path.iterdir()
    (only,) = json.loads((run_directory / "results.json").read_text())
    assert not only["success"] and only["sequences"] == 96
    assert "Profile `smoke, 30 s per run, up to 96 sequences per run`" in (run_directory / "report.md").read_text()
    bad = CliRunner().invoke(app, ["paper", "lag-2a", "--profile", "smoke", "--max-sequences", "0"])
    assert bad.exit_code != 0 and "max-sequences" in bad.output.lower()


def test_a_rows_seeds_can_start_anywhere(tmp_path):
    """--first-seed splits a row's seeds among processes: seeds 3 and 4 here, as the results say."""
    from lstmkit.cli.main import app

    result = CliRunner().invoke(app, ["paper", "lag-2a", "--profile", "smoke", "--settings", "gru", "--budget", "1",
                                      "--seeds", "2", "--first-seed", "3", "--runs", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_directory,) = tmp_path.iterdir()
    assert [r["seed"] for r in json.loads((run_directory / "results.json").read_text())] == [3, 4]
    assert "gru seed 3" in result.output and "gru seed 4" in result.output
    bad = CliRunner().invoke(app, ["paper", "lag-2a", "--profile", "smoke", "--first-seed", "-1"])
    assert bad.exit_code != 0 and "first-seed" in bad.output.lower()
    with pytest.raises(ConfigError, match="first_seed must be an integer >= 0"):
        run_profile(["lag-2a"], "smoke", 1, ["gru"], first_seed=-2)


def test_input_output_connections_add_the_input_term():
    from lstmkit.papers.experiments import Setting

    torch.manual_seed(0)
    plain = PaperNet(Setting("lstm", "vanilla", 1, "sgd", 1.0, 1, 0.0), 5, 5)
    wired = PaperNet(Setting("lstm", "vanilla", 1, "sgd", 1.0, 1, 0.0, shortcut=True), 5, 5)
    assert plain.shortcut is None and wired.shortcut.weight.shape == (5, 5)
    wired.recurrent.load_state_dict(plain.recurrent.state_dict())
    wired.head.load_state_dict(plain.head.state_dict())
    x = torch.randn(2, 7, 5)
    with torch.no_grad():
        expected = torch.sigmoid(torch.logit(plain(x)) + x @ wired.shortcut.weight.T)
        assert torch.allclose(wired(x), expected, atol=1e-5)
    assert EXPERIMENTS["lag-2a"].settings["paper"].shortcut  # a 1-cell net cannot carry 100 successors


def test_modern_settings_use_cross_entropy_for_01_targets_and_paper_settings_the_papers_loss():
    for key, experiment in EXPERIMENTS.items():
        batch = experiment.make(np.random.default_rng(0), 8, experiment.levels["quick"][0])
        binary = bool(torch.all((batch.targets == 0) | (batch.targets == 1)))
        for name, setting in experiment.settings.items():
            if name in ("modern", "rnn", "gru"):
                assert setting.loss == ("cross-entropy" if binary else "squared"), (key, name)
                assert ("cross-entropy" if binary else "squared error") in setting.label
            else:  # every paper setting learns with the papers' squared error
                assert setting.loss == "squared", (key, name)


def test_paper_module_losses_are_the_papers_and_binary_cross_entropy_at_the_error_steps():
    from lstmkit.papers.runner import PaperModule
    from lstmkit.train import TrainConfig

    experiment = EXPERIMENTS["lag-2c"]  # error signal at the last step only
    batch = experiment.make(np.random.default_rng(1), 4, {"p": 10})
    assert batch.mask.sum() == 4
    torch.manual_seed(0)
    net = PaperNet(experiment.settings["modern"], batch.inputs.shape[-1], batch.targets.shape[-1])
    logits, _ = net.logits(batch.inputs)
    p, y, m = torch.sigmoid(logits), batch.targets, batch.mask.unsqueeze(-1)
    expected_squared = 0.5 * (((p - y) ** 2) * m).sum() / 4
    expected_entropy = (-(y * torch.log(p) + (1 - y) * torch.log(1 - p)) * m).sum() / 4
    for loss, expected in (("squared", expected_squared), ("cross-entropy", expected_entropy)):
        module = PaperModule(net, TrainConfig(), experiment, batch, loss)
        torch.testing.assert_close(module.step_loss(batch), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        PaperModule(net, TrainConfig(), experiment, batch, "hinge")


def test_cross_entropy_keeps_a_gradient_where_the_squared_error_saturates():
    # an output unit stuck at sigmoid(-8) ~ 0.0003 whose target is 1: the lag-2a failure mode
    logit = torch.tensor([-8.0], requires_grad=True)
    squared = 0.5 * (torch.sigmoid(logit) - 1) ** 2
    (squared_grad,) = torch.autograd.grad(squared.sum(), logit)
    entropy = torch.nn.functional.binary_cross_entropy_with_logits(logit, torch.ones(1))
    (entropy_grad,) = torch.autograd.grad(entropy, logit)
    assert abs(squared_grad.item()) < 5e-4 and abs(entropy_grad.item()) > 0.99


def test_every_row_label_shows_the_gate_bias_initialisation():
    """The 1997 paper leans on gate-bias initialisation; the report must show it, not hide it."""
    for experiment in EXPERIMENTS.values():
        for setting in experiment.settings.values():
            text = setting.description
            assert text.startswith(setting.label)
            for name, value in (("input-gate", setting.input_bias), ("forget-gate", setting.forget_bias),
                                ("output-gate", setting.output_gate_bias)):
                if isinstance(value, tuple):
                    assert f"{name} biases {' '.join(f'{v:+g}' for v in value)}" in text, (experiment.key, text)
                elif value is not None:
                    assert f"{name} bias {value:+g}" in text, (experiment.key, text)


def test_description_names_each_bias_once():
    setting = Setting("lstm", "standard", 4, "adam", 1e-3, 1, 0.0, input_bias=-3.0, forget_bias=1.0, label="x")
    assert setting.description == "x, forget-gate bias +1, input-gate bias -3"
    assert Setting("gru", "", 4, "adam", 1e-3, 1, 0.0, label="GRU").description == "GRU"
    per_block = Setting("lstm1997", "", 2, "sgd", 0.5, 1, 0.0, input_bias=(-3.0, -6.0), output_gate_bias=-1.0,
                        label="y")
    assert per_block.description == "y, input-gate biases -3 -6, output-gate bias -1"
    for experiment in EXPERIMENTS.values():  # the description adds them; a label naming one would repeat it
        for setting in experiment.settings.values():
            assert "gate bias" not in setting.label, (experiment.key, setting.label)


def _deterministic_plan():
    from lstmkit.papers.report import Profile

    # runs end on their sequence count, not on the clock: the same runs give the same results
    return Profile("counted", seeds=2, max_sequences=400, max_seconds=120.0, eval_every=200)


def test_runs_in_parallel_processes_give_the_runs_made_one_after_another():
    plan = _deterministic_plan()
    one = run_profile(["reber"], plan, settings=["modern", "gru"], jobs=1)
    seen = []
    two = run_profile(["reber"], plan, settings=["modern", "gru"], jobs=2, progress=seen.append)
    assert [(r.setting, r.seed) for r in two] == [("modern", 0), ("modern", 1), ("gru", 0), ("gru", 1)]
    assert sorted((r.setting, r.seed) for r in seen) == sorted((r.setting, r.seed) for r in two)
    for a, b in zip(one, two):
        assert (a.sequences, a.success, a.evaluation, a.curve) == (b.sequences, b.success, b.evaluation, b.curve)
    with pytest.raises(ConfigError, match="jobs must be a positive integer"):
        run_profile(["reber"], plan, jobs=0)


def test_a_total_budget_is_shared_by_the_parallel_runs():
    from lstmkit.papers.report import Profile

    shared = Profile("shared", seeds=1, max_sequences=10**7, max_seconds=30.0, eval_every=500, total_seconds=4.0)
    results = run_profile(["lag-2a"], shared, settings=["modern", "gru"], jobs=2)
    # two cores for 4 s: each run its 4 s, not half of them
    assert [r.budget for r in results] == [pytest.approx(4.0, abs=0.3)] * 2


def test_a_failed_parallel_run_keeps_the_run_beside_it(monkeypatch):
    """With --jobs, a run that fails stops new runs from starting, but the one in flight finishes and
    reaches the progress callback (the --resume record) before the failure is raised."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import lstmkit.papers.report as report
    from lstmkit.errors import TrainingError
    from lstmkit.papers import RunResult

    # the scheduling under test, without processes: threads see the patched worker
    monkeypatch.setattr(report, "ProcessPoolExecutor",
                        lambda jobs, mp_context, initializer, initargs: ThreadPoolExecutor(jobs))
    started, failed = [], threading.Event()

    def worker(key, level, setting, seed, max_sequences, budget, eval_every):
        started.append(seed)
        if seed == 0:
            failed.set()
            raise TrainingError("seed 0 went non-finite")
        failed.wait(5)
        time.sleep(0.2)  # still running when seed 0's failure arrives
        return RunResult(key, level, setting, seed, True, 10, 0.2, "kept")

    monkeypatch.setattr(report, "_run_in_worker", worker)
    kept = []
    with pytest.raises(TrainingError, match="seed 0 went non-finite"):
        run_profile(["lag-2a"], "smoke", seeds=4, settings=["gru"], jobs=2, progress=kept.append)
    assert sorted(started) == [0, 1]  # seeds 2 and 3 never started
    assert [(r.seed, r.evaluation) for r in kept] == [(1, "kept")]


def test_a_resumed_profile_counts_the_time_of_its_earlier_runs():
    from lstmkit.papers import RunResult
    from lstmkit.papers.report import Profile

    shared = Profile("shared", seeds=2, max_sequences=10**7, max_seconds=30.0, eval_every=500, total_seconds=8.0)
    before = RunResult("lag-2a", {"p": 100}, "gru", 0, False, 100, 5.0, "read back")
    results = run_profile(["lag-2a"], shared, settings=["gru"], done=[before])
    # 8 s in all, 5 of them spent by seed 0 before: seed 1 has the 3 left, not 8
    assert results[0].evaluation == "read back"
    assert results[1].budget == pytest.approx(3.0, abs=0.3)


def test_runs_made_before_are_not_made_again():
    from lstmkit.papers import RunResult

    plan = _deterministic_plan()
    # a result read back from JSON: the level's tuple is a list there
    before = RunResult("timing-msd", {"intervals": [49, 50]}, "modern", 0, True, 123, 1.0, "read back")
    ran = []
    results = run_profile(["timing-msd"], dataclasses.replace(plan, seeds=1), settings=["modern"], done=[before],
                          progress=ran.append)
    assert ran == [] and results[0].evaluation == "read back" and results[0].sequences == 123
    assert results[0].level == {"intervals": (49, 50)}  # the plan's own level, as the report names it


def test_paper_command_resumes_from_its_record(tmp_path):
    from lstmkit.cli.main import app

    record = tmp_path / "record.json"
    command = ["paper", "reber", "--profile", "smoke", "--settings", "modern", "--seeds", "2", "--runs",
               str(tmp_path / "runs"), "--resume", str(record)]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    saved = json.loads(record.read_text())
    assert saved["plan"]["name"] == "smoke" and [r["seed"] for r in saved["runs"]] == [0, 1]
    second = CliRunner().invoke(app, [*command, "--settings", "modern,rnn", "--jobs", "2"])
    assert second.exit_code == 0, second.output
    assert "2 runs already in" in second.output and "reber modern seed" not in second.output
    assert "reber rnn seed 0" in second.output and "reber rnn seed 1" in second.output
    # the record keeps the runs in the order they finished (two at a time here)
    assert sorted((r["setting"], r["seed"]) for r in json.loads(record.read_text())["runs"]) == \
        [("modern", 0), ("modern", 1), ("rnn", 0), ("rnn", 1)]
    latest = max((tmp_path / "runs").iterdir())
    assert [r["setting"] for r in json.loads((latest / "results.json").read_text())] == ["modern"] * 2 + ["rnn"] * 2
    other = CliRunner().invoke(app, [*command, "--budget", "5"])
    assert other.exit_code != 0 and "holds runs made with other budgets" in other.output
    record.write_text("{not json")
    broken = CliRunner().invoke(app, command)
    assert broken.exit_code != 0 and "is not a results file of `lstmkit paper --resume`" in broken.output
    bad = CliRunner().invoke(app, [*command[:-2], "--jobs", "0"])
    assert bad.exit_code != 0 and "jobs" in bad.output.lower()


def test_the_full_profiles_section_replaces_only_itself():
    from lstmkit.papers.report import FULL_BEGIN, FULL_END, place_full_report

    def section(table: str) -> str:
        return f"{FULL_BEGIN}\n## The full profile\n\n{table}\n{FULL_END}"

    page = "# Title\n\nIntro.\n\n## Longer runs\n\nBy hand.\n"
    first = place_full_report(page, "| table one |")
    # placed before the first section, the hand-written text around it kept
    assert first.startswith("# Title\n\nIntro.\n\n" + section("| table one |"))
    assert first.endswith("\n\n## Longer runs\n\nBy hand.\n")
    second = place_full_report(first.replace("By hand.", "By hand, edited."), "| table two |\n")
    assert "| table two |" in second and "table one" not in second and "By hand, edited." in second
    assert second.count(FULL_BEGIN) == second.count(FULL_END) == 1
    assert place_full_report(second, "| table two |") == second  # the same report: the same page
    assert place_full_report(None, "| t |") == f"# The LSTM papers, reproduced\n\n{section('| t |')}\n"
    assert place_full_report("# Title\n\nNo sections.\n", "| t |") == f"# Title\n\nNo sections.\n\n{section('| t |')}\n"
    for broken, missing in ((f"# T\n\n{FULL_BEGIN}\nold\n", FULL_END), (f"# T\n\n{FULL_END}\nold\n", FULL_BEGIN),
                            (f"# T\n\n{FULL_END}\nold\n{FULL_BEGIN}\n", FULL_END)):
        with pytest.raises(ConfigError, match=re.escape(f"but not {missing!r}")):
            place_full_report(broken, "| t |")


def test_the_full_profile_writes_its_section_and_keeps_the_rest_of_the_page(tmp_path, monkeypatch):
    """`lstmkit paper --profile full` run from the repository's root: the hand-written sections of
    docs/papers.md survive, the profile's own is replaced (the profile's runs are faked here: the
    real one takes a day)."""
    import lstmkit.papers
    from lstmkit.cli.main import app
    from lstmkit.papers import RunResult
    from lstmkit.papers.report import FULL_BEGIN

    made = [RunResult("reber", {}, "modern", 0, True, 1234, 1.0, "0 of 512 strings with a wrong prediction",
                      [(1234, 0.0)], 600.0)]
    monkeypatch.setattr(lstmkit.papers, "run_profile", lambda *args, **kwargs: made)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "papers.md"
    page.write_text("# The LSTM papers, reproduced\n\nIntro.\n\n## A side check\n\nBy hand.\n", encoding="utf-8")
    command = ["paper", "reber", "--profile", "full", "--settings", "modern", "--runs", str(tmp_path / "runs")]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "wrote the full profile's section of docs/papers.md" in result.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# The LSTM papers, reproduced\n\nIntro.\n\n" + FULL_BEGIN)
    assert "| 1/1 | 1,234 |" in text and text.endswith("## A side check\n\nBy hand.\n")
    made[0] = dataclasses.replace(made[0], sequences=999, curve=[(999, 0.0)])
    assert CliRunner().invoke(app, command).exit_code == 0
    again = page.read_text(encoding="utf-8")
    assert "| 1/1 | 999 |" in again and "1,234" not in again and again.endswith("By hand.\n")
    page.write_text(again.replace(FULL_BEGIN, ""), encoding="utf-8")  # a broken page is left as it is
    broken = CliRunner().invoke(app, command)
    assert broken.exit_code != 0 and "put the missing line back" in broken.output
    assert page.read_text(encoding="utf-8") == again.replace(FULL_BEGIN, "")
