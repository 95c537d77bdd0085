"""``lstmkit classify``, ``lstmkit tag`` and ``lstmkit textgen train|sample``: run directories, output,
built-in data, and one-line errors that leave nothing behind."""

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lstmkit.cli.main import app
from lstmkit.data import corpus
from lstmkit.tasks.base import stratified_split
from lstmkit.tasks.classify import SequenceClassifier
from lstmkit.tasks.lm import LanguageModel
from lstmkit.tasks.tag import SequenceTagger

runner = CliRunner()
FAST = ["--epochs", "3", "--ensemble", "1", "--hidden-size", "8"]
TEXTGEN_FAST = ["--hidden-size", "16", "--embedding-dim", "8", "--num-layers", "1", "--bptt", "16", "--epochs", "1"]
COLOURS = {"red": "warm", "blue": "cold", "green": "calm"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: a second intra-op thread only waits (and spins for long on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def only_run(runs: Path) -> Path:
    """The one run directory written, with nothing else (no temporary directory) beside it."""
    entries = list(runs.iterdir())
    assert len(entries) == 1 and entries[0].is_dir() and not entries[0].name.startswith("."), entries
    return entries[0]


def assert_failed(result, message: str, runs: Path | None = None) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    if runs is not None:
        assert not runs.exists() or list(runs.iterdir()) == []


def text_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        words = rng.choice(["the", "a", "car", "is", "very", "and", "sky"], 4).tolist()
        words.insert(int(rng.integers(0, 5)), colour)
        rows.append((" ".join(words), COLOURS[colour]))
    return pd.DataFrame(rows, columns=["text", "label"])


def wave_table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    phase = np.linspace(0, 4 * np.pi, 20)[None] + rng.uniform(0, 6, (n, 1))
    square = np.arange(n) % 2 == 0
    values = np.where(square[:, None], np.sign(np.sin(phase)), np.sin(phase)) + 0.1 * rng.standard_normal((n, 20))
    table = pd.DataFrame(values, columns=[f"t{k}" for k in range(20)])
    table["label"] = np.where(square, "square", "sine")
    return table


def write_ts(path: Path, n: int = 24) -> None:
    rng = np.random.default_rng(2)
    lines = ["@problemName waves", "@timeStamps false", "@univariate true", "@equalLength false",
             "@classLabel true sine square", "@data"]
    for i in range(n):
        t = np.linspace(0, 12, int(rng.integers(15, 30)))
        series = np.sin(t) if i % 2 else np.sign(np.sin(t))
        lines.append(",".join(f"{v:.3f}" for v in series) + (":sine" if i % 2 else ":square"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tag_table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    texts = ["".join(rng.choice(list("ab1 2"), int(rng.integers(3, 12)))) for _ in range(n)]
    tags = [" ".join("D" if c.isdigit() else "S" if c == " " else "L" for c in t) for t in texts]
    return pd.DataFrame({"text": texts, "tags": tags})


# -- classify ---------------------------------------------------------------------------------


def test_classify_a_text_csv_writes_a_run_directory(tmp_path):
    table = text_table()
    table.to_csv(tmp_path / "colours.csv", index=False)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["classify", "--data", str(tmp_path / "colours.csv"), *FAST, "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    run = only_run(runs)
    assert run.name.startswith("classify-colours-")
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.json", "model", "test_predictions.csv"]
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test_size"] == 12 and metrics["train_size"] == 48 and metrics["architecture"] == "lstm"
    assert set(metrics["per_class_recall"]) == {"calm", "cold", "warm"}
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stdout
    assert f"rundirectory:{run}" in "".join(result.stdout.split())  # (rich wraps long paths)
    settings = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert settings["epochs"] == 3 and settings["ensemble"] == 1 and settings["data"].endswith("colours.csv")

    # the held-out part is the stratified 20% of the seed; the saved model predicts what the file says
    predictions = pd.read_csv(run / "test_predictions.csv")
    _, test_idx = stratified_split(table["label"].to_numpy(), 0.2, 0)
    assert predictions["label"].tolist() == table["label"].iloc[test_idx].tolist()
    model = SequenceClassifier.load(run / "model")
    assert model.predict(table["text"].iloc[test_idx].tolist()).tolist() == predictions["predicted"].tolist()
    assert metrics["test_accuracy"] == pytest.approx((predictions["label"] == predictions["predicted"]).mean())


def test_classify_a_numeric_csv_and_a_ts_file(tmp_path):
    wave_table().to_csv(tmp_path / "waves.csv", index=False)
    write_ts(tmp_path / "waves.ts")
    for name in ("waves.csv", "waves.ts"):
        runs = tmp_path / f"runs-{name}"
        result = runner.invoke(app, ["classify", "--data", str(tmp_path / name), *FAST, "--runs", str(runs)])
        assert result.exit_code == 0, result.output
        run = only_run(runs)
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["architecture"] == "lstm-fcn"
        assert (metrics["train_size"], metrics["test_size"]) == ((32, 8) if name.endswith("csv") else (20, 4))
        assert "test accuracy" in result.stdout
        model = SequenceClassifier.load(run / "model")
        assert model.encoder_.kind == "numeric" and model.classes_.tolist() == ["sine", "square"]
    assert SequenceClassifier.load(only_run(tmp_path / "runs-waves.csv") / "model").network_.config.length == 20


def test_classify_a_builtin_ucr_dataset_uses_its_test_split(tmp_path):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["classify", "--data", "italypowerdemand", "--epochs", "2", "--ensemble", "1",
                                 "--hidden-size", "8", "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    run = only_run(runs)
    assert run.name.startswith("classify-ItalyPowerDemand-")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["train_size"], metrics["test_size"]) == (67, 1029)
    assert "ItalyPowerDemand: lstm-fcn, 1029 test sequences" in " ".join(result.stdout.split())


def test_classify_with_a_separate_test_file(tmp_path):
    text_table(45, seed=1).to_csv(tmp_path / "train.csv", index=False)
    text_table(15, seed=2).to_csv(tmp_path / "test.csv", index=False)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["classify", "--data", str(tmp_path / "train.csv"), "--test",
                                 str(tmp_path / "test.csv"), *FAST, "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((only_run(runs) / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["train_size"], metrics["test_size"]) == (45, 15)


# -- tag --------------------------------------------------------------------------------------


def test_tag_a_csv_writes_a_run_directory(tmp_path):
    tag_table().to_csv(tmp_path / "chars.csv", index=False)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["tag", "--data", str(tmp_path / "chars.csv"), "--epochs", "3", "--hidden-size", "8",
                                 "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    run = only_run(runs)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.json", "model", "test_predictions.csv"]
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["test_sequences"] == 8
    assert f"per-character test accuracy {metrics['test_accuracy']:.4f} on 8 sequences" in result.stdout
    predictions = pd.read_csv(run / "test_predictions.csv", keep_default_na=False)
    for text, predicted in zip(predictions["text"], predictions["predicted"]):
        assert len(predicted.split()) == len(text)
    assert SequenceTagger.load(run / "model").classes_.tolist() == ["D", "L", "S"]


def test_tag_the_builtin_python_characters(tmp_path, monkeypatch):
    # the built-in table, cut to 300 lines to keep the test fast
    monkeypatch.setattr(corpus, "code_characters", functools.partial(corpus.code_characters, max_lines=300))
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["tag", "--data", "python-chars", "--epochs", "1", "--hidden-size", "8",
                                 "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    run = only_run(runs)
    assert run.name.startswith("tag-python-chars-")
    assert "python-chars: per-character test accuracy" in result.stdout and "on 60 sequences" in result.stdout
    assert set(SequenceTagger.load(run / "model").classes_) <= set(corpus.TAGS)


# -- textgen ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def textgen_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("textgen")
    (root / "fox.txt").write_text("the quick brown fox jumps over the lazy dog. " * 30, encoding="utf-8")
    result = runner.invoke(app, ["textgen", "train", str(root / "fox.txt"), *TEXTGEN_FAST, "--runs",
                                 str(root / "runs")])
    assert result.exit_code == 0, result.output
    assert "bits per character" in result.stdout and "sample:" in result.stdout
    return only_run(root / "runs")


def test_textgen_train_writes_a_run_directory(textgen_run):
    assert textgen_run.name.startswith("textgen-fox-")
    assert sorted(p.name for p in textgen_run.iterdir()) == ["config.json", "metrics.json", "model", "sample.txt"]
    metrics = json.loads((textgen_run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["bits_per_character"] == pytest.approx(metrics["loss"] / np.log(2))
    assert metrics["validation_characters"] == 135
    sample = (textgen_run / "sample.txt").read_text(encoding="utf-8")
    assert len(sample) > 200 and sample.startswith("quick brown fox")  # the held-out text, from a whole word


def test_textgen_sample_prints_the_prompt_and_a_reproducible_continuation(textgen_run):
    command = ["textgen", "sample", "--model", str(textgen_run), "--prompt", "the la", "--tokens", "30", "--seed", "0"]
    first, second = runner.invoke(app, command), runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    assert first.stdout.startswith("the la") and len(first.stdout.rstrip("\n")) == len("the la") + 30
    greedy = runner.invoke(app, ["textgen", "sample", "--model", str(textgen_run / "model"), "--prompt", "the la",
                                 "--tokens", "30", "--temperature", "0"])
    expected = LanguageModel.load(textgen_run / "model").generate("the la", 30, temperature=0)
    assert greedy.stdout == expected + "\n"


def test_textgen_with_words_when_the_split_cuts_a_word(tmp_path):
    # the last tenth starts inside "the": the sample must not be prompted with "he", unknown to the words
    text = "the cat sat on the mat. " * 50 + "dogs and elephants"
    assert text[int(len(text) * 0.9):].startswith("he ")
    (tmp_path / "cats.txt").write_text(text, encoding="utf-8")
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["textgen", "train", str(tmp_path / "cats.txt"), "--tokenizer", "word", *TEXTGEN_FAST,
                                 "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    assert (only_run(runs) / "sample.txt").read_text(encoding="utf-8").startswith("mat. the cat sat on")


# -- errors -----------------------------------------------------------------------------------


def test_empty_and_undecodable_files(tmp_path):
    runs = tmp_path / "runs"
    (tmp_path / "empty.csv").write_text("  \n", encoding="utf-8")
    assert_failed(runner.invoke(app, ["classify", "--data", str(tmp_path / "empty.csv"), "--runs", str(runs)]),
                  "empty.csv is empty", runs)
    (tmp_path / "empty.txt").write_bytes(b"")
    assert_failed(runner.invoke(app, ["textgen", "train", str(tmp_path / "empty.txt"), "--runs", str(runs)]),
                  "empty.txt is empty", runs)
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    assert_failed(runner.invoke(app, ["classify", "--data", str(tmp_path / "latin1.csv"), "--runs", str(runs)]),
                  "latin1.csv is not UTF-8 text: undecodable byte 0xe9 at offset 14; re-save it as UTF-8", runs)
    (tmp_path / "latin1.txt").write_bytes("na\xefve text".encode("latin-1"))
    assert_failed(runner.invoke(app, ["textgen", "train", str(tmp_path / "latin1.txt"), "--runs", str(runs)]),
                  "undecodable byte 0xef at offset 2", runs)
    (tmp_path / "latin1.ts").write_bytes(b"@problemName x\n@data\n1,2:\xff\n")
    assert_failed(runner.invoke(app, ["classify", "--data", str(tmp_path / "latin1.ts"), "--runs", str(runs)]),
                  "undecodable byte 0xff at offset 25", runs)


def test_csv_errors(tmp_path):
    runs = tmp_path / "runs"
    text_table().rename(columns={"label": "colour"}).to_csv(tmp_path / "nolabel.csv", index=False)
    assert_failed(runner.invoke(app, ["classify", "--data", str(tmp_path / "nolabel.csv"), "--runs", str(runs)]),
                  "nolabel.csv has no label column 'label'; its columns are text, colour; say which with "
                  "--label-column", runs)
    (tmp_path / "ragged.csv").write_text("text,label\na,x\nb,y,z,w\n", encoding="utf-8")
    assert_failed(runner.invoke(app, ["classify", "--data", str(tmp_path / "ragged.csv"), "--runs", str(runs)]),
                  "cannot read", runs)
    assert_failed(runner.invoke(app, ["tag", "--data", str(tmp_path / "ragged.csv"), "--runs", str(runs)]),
                  "Expected 2 fields in line 3, saw 4", runs)
    pd.DataFrame({"t0": [1.0, 2.0], "t1": ["3", "x"], "label": ["a", "b"]}).to_csv(tmp_path / "words.csv", index=False)
    assert_failed(runner.invoke(app, ["classify", "--data", str(tmp_path / "words.csv"), "--runs", str(runs)]),
                  "column 't1' row 1 is 'x', not a number", runs)
    pd.DataFrame({"text": ["ab", "ab"], "tags": ["x y", "x y z w"]}).to_csv(tmp_path / "tags.csv", index=False)
    assert_failed(runner.invoke(app, ["tag", "--data", str(tmp_path / "tags.csv"), "--runs", str(runs)]),
                  "row 1 has 2 characters but 4 tags; give one tag per character", runs)
    pd.DataFrame({"text": ["ab"], "labels": ["x y"]}).to_csv(tmp_path / "notags.csv", index=False)
    assert_failed(runner.invoke(app, ["tag", "--data", str(tmp_path / "notags.csv"), "--runs", str(runs)]),
                  "notags.csv has no column 'tags'; its columns are text, labels", runs)


def test_unknown_datasets(tmp_path):
    runs = tmp_path / "runs"
    assert_failed(runner.invoke(app, ["classify", "--data", "nosuch", "--runs", str(runs)]),
                  "no file or built-in dataset named 'nosuch'; built-in: docstring-topics, gunpoint, italypowerdemand",
                  runs)
    assert_failed(runner.invoke(app, ["tag", "--data", "nosuch", "--runs", str(runs)]),
                  "no file or built-in dataset named 'nosuch'; built-in: python-chars", runs)
    assert_failed(runner.invoke(app, ["textgen", "sample", "--model", str(tmp_path / "nosuch"), "--prompt", "a"]),
                  "nosuch does not exist; expected an lstmkit model directory")


def test_a_prompt_with_an_unknown_character(textgen_run):
    result = runner.invoke(app, ["textgen", "sample", "--model", str(textgen_run), "--prompt", "the Zoo"])
    assert_failed(result, "the prompt's 'Z' at character 4 is not in the model's vocabulary")


def test_a_sequence_over_the_length_cap(tmp_path):
    table = text_table(30)
    table.loc[7, "text"] = "red " * 12
    table.to_csv(tmp_path / "long.csv", index=False)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["classify", "--data", str(tmp_path / "long.csv"), "--max-length", "8", *FAST,
                                 "--runs", str(runs)])
    assert_failed(result, "has 12 steps, over the cap max_length=8; raise max_length or pass too_long='truncate'", runs)
    result = runner.invoke(app, ["classify", "--data", str(tmp_path / "long.csv"), "--max-length", "8", "--truncate",
                                 *FAST, "--runs", str(runs)])
    assert result.exit_code == 0, result.output


def test_test_labels_never_seen_in_training(tmp_path):
    text_table(30).to_csv(tmp_path / "train.csv", index=False)
    test = text_table(6)
    test.loc[2, "label"] = "purple"
    test.to_csv(tmp_path / "test.csv", index=False)
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["classify", "--data", str(tmp_path / "train.csv"), "--test",
                                 str(tmp_path / "test.csv"), *FAST, "--runs", str(runs)])
    assert_failed(result, "labels ['purple'] were never seen in training (known: ['calm', 'cold', 'warm'])", runs)
