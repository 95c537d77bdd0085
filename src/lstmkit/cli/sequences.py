"""``lstmkit classify``, ``lstmkit tag`` and ``lstmkit textgen train|sample``.

Inputs are files (CSV, UCR/UEA ``.ts``, plain text) or built-in data that ships with lstmkit or
Python. Every training command holds out a test part, prints how the model did on it and writes a
run directory (``model/``, predictions, ``metrics.json``, ``config.json``) under a temporary name
renamed at the end.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.table import Table

from lstmkit.cli.common import app, console, fail, new_run, read_text_file
from lstmkit.errors import LstmkitError

__all__ = ["textgen"]

textgen = typer.Typer(help="""Train a language model on a text, and sample from it.

    Examples:

      lstmkit textgen train stdlib --epochs 5

      lstmkit textgen sample --model runs/textgen-stdlib-20261122-120000 --prompt "Return the " --top-p 0.9
    """, no_args_is_help=True)
app.add_typer(textgen, name="textgen")

BUILTIN_CLASSIFY = ("docstring-topics", "gunpoint", "italypowerdemand")
BUILTIN_TAG = ("python-chars",)


def _training(epochs: int | None, learning_rate: float | None, seed: int, progress: bool, default: Any) -> Any:
    changes = {"seed": seed, "progress_bar": progress}
    if epochs is not None:
        changes["max_epochs"] = epochs
    if learning_rate is not None:
        changes["learning_rate"] = learning_rate
    return default.replace(**changes)


def _split(n: int, fraction: float, seed: int, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    from lstmkit.tasks.base import random_split, stratified_split

    return stratified_split(labels, fraction, seed) if labels is not None else random_split(n, fraction, seed)


def _read_csv(path: Path, **options: Any) -> pd.DataFrame:
    """A UTF-8 CSV file; unreadable files are one-line errors."""
    try:
        return pd.read_csv(pd.io.common.StringIO(read_text_file(path)), **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        fail(f"cannot read {path} as CSV: {' '.join(str(error).split())}")
    raise AssertionError  # unreachable


def _classify_data(data: str, text_column: str, label_column: str) -> tuple[Any, list[str], str]:
    """Inputs, labels and a name, from a built-in name, a .ts file or a CSV."""
    from lstmkit.data.ts_format import read_ts, ucr_path

    key = data.lower()
    if key == "docstring-topics":
        from lstmkit.data.corpus import docstring_topics

        table = docstring_topics()
        return table["text"].tolist(), table["label"].tolist(), key
    if key in ("gunpoint", "italypowerdemand"):
        name = {"gunpoint": "GunPoint", "italypowerdemand": "ItalyPowerDemand"}[key]
        cases = read_ts(ucr_path(name, "TRAIN"))
        return cases.series, cases.labels, name
    path = Path(data)
    if not path.is_file():
        fail(f"no file or built-in dataset named {data!r}; built-in: {', '.join(BUILTIN_CLASSIFY)}")
    if path.suffix.lower() == ".ts":
        cases = read_ts(path)
        return cases.series, cases.labels, path.stem
    table = _read_csv(path)
    if label_column not in table.columns:
        fail(f"{path} has no label column {label_column!r}; its columns are {', '.join(map(str, table.columns))}; "
             "say which with --label-column")
    labels = table[label_column].astype(str).tolist()
    if text_column in table.columns:
        return table[text_column].astype(str).tolist(), labels, path.stem
    values = table.drop(columns=[label_column])
    numeric = values.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        fail(f"{path}: column {values.columns[column]!r} row {row} is {values.iat[row, column]!r}, not a number; a "
             f"numeric CSV has one sequence per row (or give the text column with --text-column)")
    return numeric.to_numpy(dtype=float), labels, path.stem


@app.command()
def classify(
    data: Annotated[str, typer.Option(help="CSV (a text column or one numeric sequence per row), .ts file, or "
                                           "built-in: docstring-topics, gunpoint, italypowerdemand.")],
    test: Annotated[str | None, typer.Option(help="A separate test file in the same layout (default: 20% held "
                                                  "out, stratified; for gunpoint/italypowerdemand their TEST part).")]
    = None,
    text_column: Annotated[str, typer.Option(help="CSV column with the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="CSV column with the label.")] = "label",
    architecture: Annotated[str, typer.Option(help="auto, lstm or lstm-fcn.")] = "auto",
    cell: Annotated[str, typer.Option(help="LSTM variant.")] = "standard",
    hidden_size: Annotated[int, typer.Option(help="LSTM units.")] = 64,
    tokenizer: Annotated[str, typer.Option(help="word, char or bpe (text).")] = "word",
    max_length: Annotated[int | None, typer.Option(help="Length cap for a sequence.")] = None,
    truncate: Annotated[bool, typer.Option(help="Truncate sequences over the cap instead of failing.")] = False,
    ensemble: Annotated[int, typer.Option(help="Networks averaged (more: steadier, slower).")] = 3,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    runs: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = False,
) -> None:
    """Train a sequence classifier (texts or numeric series) and report its test accuracy.

    Examples:

      lstmkit classify --data italypowerdemand

      lstmkit classify --data reviews.csv --text-column review --label-column sentiment
    """
    from lstmkit.data.ts_format import read_ts, ucr_path
    from lstmkit.tasks.classify import DEFAULT_TRAINING, SequenceClassifier

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in locals().items()
                if k not in ("read_ts", "ucr_path", "DEFAULT_TRAINING", "SequenceClassifier")}
    try:
        inputs, labels, name = _classify_data(data, text_column, label_column)
        if test is not None:
            test_inputs, test_labels, _ = _classify_data(test, text_column, label_column)
            train_inputs, train_labels = inputs, labels
        elif data.lower() in ("gunpoint", "italypowerdemand"):
            cases = read_ts(ucr_path(name, "TEST"))
            train_inputs, train_labels, test_inputs, test_labels = inputs, labels, cases, cases.labels
        else:
            train_idx, test_idx = _split(len(labels), 0.2, seed, np.asarray(labels))
            pick = (lambda idx: [inputs[i] for i in idx]) if isinstance(inputs, list) else (lambda idx: inputs[idx])
            train_inputs, test_inputs = pick(train_idx), pick(test_idx)
            train_labels = [labels[i] for i in train_idx]
            test_labels = [labels[i] for i in test_idx]
        model = SequenceClassifier(architecture, cell, hidden_size, tokenizer=tokenizer, max_length=max_length,
                                   too_long="truncate" if truncate else "error", ensemble=ensemble,
                                   training=_training(epochs, learning_rate, seed, progress, DEFAULT_TRAINING))
        with new_run(runs, f"classify-{name}") as (tmp, final):
            model.run_dir = tmp / "training"
            with console.status(f"training {ensemble} network(s)..."), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(train_inputs, train_labels)
            model.run_dir = None
            accuracy = model.score(test_inputs, test_labels)
            predicted = model.predict(test_inputs)
            model.save(tmp / "model")
            shutil.rmtree(tmp / "training", ignore_errors=True)
            pd.DataFrame({"label": [str(v) for v in test_labels], "predicted": predicted}).to_csv(
                tmp / "test_predictions.csv", index=False)
            truth = np.asarray([str(v) for v in test_labels])
            per_class = {c: float((predicted[truth == c] == c).mean()) for c in model.classes_ if (truth == c).any()}
            metrics = {"test_accuracy": accuracy, "test_size": len(truth), "train_size": len(train_labels),
                       "per_class_recall": per_class, "architecture": model.network_.config.architecture}
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
            (tmp / "config.json").write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    except LstmkitError as error:
        fail(str(error))
        return
    view = Table(title=f"{name}: {model.network_.config.architecture}, {len(truth)} test sequences")
    view.add_column("class")
    view.add_column("recall", justify="right")
    for label, recall in per_class.items():
        view.add_row(label, f"{recall:.3f}")
    console.print(view)
    console.print(f"test accuracy [bold]{accuracy:.4f}[/]")
    console.print(f"run directory: [bold]{final}[/]")


def _tag_data(data: str, text_column: str, tags_column: str) -> tuple[list[str], list[list[str]], str]:
    if data.lower() == "python-chars":
        from lstmkit.data.corpus import code_characters

        table = code_characters()
        name = "python-chars"
    else:
        path = Path(data)
        if not path.is_file():
            fail(f"no file or built-in dataset named {data!r}; built-in: {', '.join(BUILTIN_TAG)}")
        table = _read_csv(path, keep_default_na=False)
        name = path.stem
        for column in (text_column, tags_column):
            if column not in table.columns:
                fail(f"{path} has no column {column!r}; its columns are {', '.join(map(str, table.columns))}")
    texts = table[text_column].astype(str).tolist()
    tags = [str(t).split() for t in table[tags_column]]
    for row, (text, row_tags) in enumerate(zip(texts, tags)):
        # checked here, before the split, so that the message names the row of the file
        if len(row_tags) != len(text):
            fail(f"{data}: row {row} has {len(text)} characters but {len(row_tags)} tags; give one tag per character "
                 f"(separated by spaces) in the {tags_column!r} column")
    return texts, tags, name


@app.command()
def tag(
    data: Annotated[str, typer.Option(help="CSV with a text column and a column of space-separated tags (one per "
                                           "character), or built-in: python-chars.")],
    text_column: Annotated[str, typer.Option(help="CSV column with the text.")] = "text",
    tags_column: Annotated[str, typer.Option(help="CSV column with the tags.")] = "tags",
    cell: Annotated[str, typer.Option(help="LSTM variant.")] = "standard",
    hidden_size: Annotated[int, typer.Option(help="LSTM units per direction.")] = 64,
    bidirectional: Annotated[bool, typer.Option(help="Read both ways.")] = True,
    max_length: Annotated[int | None, typer.Option(help="Length cap for a sequence.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    runs: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = False,
) -> None:
    """Train a sequence tagger (one tag per character) and report its per-character accuracy on a held-out 20%.

    Example:

      lstmkit tag --data python-chars
    """
    from lstmkit.tasks.tag import DEFAULT_TRAINING, SequenceTagger

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in locals().items()
                if k not in ("DEFAULT_TRAINING", "SequenceTagger")}
    try:
        texts, tags, name = _tag_data(data, text_column, tags_column)
        train_idx, test_idx = _split(len(texts), 0.2, seed)
        model = SequenceTagger(cell, hidden_size, bidirectional=bidirectional, max_length=max_length,
                               training=_training(epochs, learning_rate, seed, progress, DEFAULT_TRAINING))
        with new_run(runs, f"tag-{name}") as (tmp, final):
            model.run_dir = tmp / "training"
            with console.status("training..."), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit([texts[i] for i in train_idx], [tags[i] for i in train_idx])
            model.run_dir = None
            test_texts, test_tags = [texts[i] for i in test_idx], [tags[i] for i in test_idx]
            accuracy = model.score(test_texts, test_tags)
            predicted = model.predict(test_texts)
            model.save(tmp / "model")
            shutil.rmtree(tmp / "training", ignore_errors=True)
            pd.DataFrame({"text": test_texts, "tags": [" ".join(t) for t in test_tags],
                          "predicted": [" ".join(p) for p in predicted]}).to_csv(tmp / "test_predictions.csv",
                                                                                index=False)
            (tmp / "metrics.json").write_text(json.dumps({"test_accuracy": accuracy, "test_sequences": len(test_idx)},
                                                         indent=2), encoding="utf-8")
            (tmp / "config.json").write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    except LstmkitError as error:
        fail(str(error))
        return
    console.print(f"{name}: per-character test accuracy [bold]{accuracy:.4f}[/] on {len(test_idx)} sequences")
    example = test_texts[0]
    console.print(f"  {example}\n  {' '.join(t[:1] for t in predicted[0])}  (first letter of each tag)")
    console.print(f"run directory: [bold]{final}[/]")


def _sample_prompt(model: Any, held_out: str, text: str) -> str:
    """A prompt the model can read, of whole words (the split may cut one, which a word model does not know):
    the start of the held-out text, else of the training text."""
    unknown = getattr(model.tokenizer_, "unknown_pieces", lambda _: [])

    def first_words(words: list[str], limit: int = 20) -> str:
        prompt = ""
        for word in words:
            if prompt and len(prompt) + 1 + len(word) > limit:
                break
            prompt = f"{prompt} {word}" if prompt else word
        return prompt

    candidates = [first_words(held_out.split()[1:]), first_words(text.split())]
    return next((c for c in candidates if c and not unknown(c)), candidates[-1])


@textgen.command("train")
def textgen_train(
    corpus: Annotated[str, typer.Argument(help="A UTF-8 text file, or 'stdlib' (the docstrings of Python's "
                                               "standard library, built in).")],
    tokenizer: Annotated[str, typer.Option(help="char, word or bpe.")] = "char",
    embedding_dim: Annotated[int, typer.Option(help="Embedding size.")] = 128,
    hidden_size: Annotated[int, typer.Option(help="LSTM units.")] = 256,
    num_layers: Annotated[int, typer.Option(help="LSTM layers.")] = 2,
    cell: Annotated[str, typer.Option(help="LSTM variant.")] = "standard",
    bptt: Annotated[int, typer.Option(help="Truncated-BPTT segment length.")] = 128,
    weight_drop: Annotated[float, typer.Option(help="DropConnect on hidden-to-hidden weights (AWD-LSTM).")] = 0.0,
    max_chars: Annotated[int | None, typer.Option(help="Use at most this many characters of the corpus.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    runs: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = False,
) -> None:
    """Train a language model; report validation perplexity and bits per character; print a sample.

    Example:

      lstmkit textgen train stdlib --max-chars 300000 --epochs 3
    """
    from lstmkit.tasks.lm import DEFAULT_TRAINING, LanguageModel

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in locals().items()
                if k not in ("DEFAULT_TRAINING", "LanguageModel")}
    if corpus == "stdlib":
        from lstmkit.data.corpus import docstrings

        text = docstrings(max_chars=max_chars or 2_000_000)
        name = "stdlib"
    else:
        path = Path(corpus)
        text = read_text_file(path)[: max_chars or None]
        name = path.stem
    try:
        model = LanguageModel(tokenizer, embedding_dim, hidden_size, num_layers, cell, bptt=bptt,
                              weight_drop=weight_drop,
                              training=_training(epochs, learning_rate, seed, progress, DEFAULT_TRAINING))
        with new_run(runs, f"textgen-{name}") as (tmp, final):
            model.run_dir = tmp / "training"
            with console.status(f"training on {len(text):,} characters..."), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(text)
            model.run_dir = None
            held_out = text[int(len(text) * (1 - model.val_fraction)):]
            scores = model.evaluate(held_out)
            sample = model.generate(_sample_prompt(model, held_out, text), max_tokens=200, temperature=0.8, seed=seed)
            model.save(tmp / "model")
            shutil.rmtree(tmp / "training", ignore_errors=True)
            (tmp / "metrics.json").write_text(json.dumps({**scores, "validation_characters": len(held_out)},
                                                         indent=2), encoding="utf-8")
            (tmp / "sample.txt").write_text(sample, encoding="utf-8")
            (tmp / "config.json").write_text(json.dumps(settings, indent=2, default=str), encoding="utf-8")
    except LstmkitError as error:
        fail(str(error))
        return
    console.print(f"validation: perplexity {scores['perplexity']:.2f}, [bold]{scores['bits_per_character']:.3f} "
                  f"bits per character[/]")
    console.print("sample:", style="bold")
    console.print(sample, markup=False, highlight=False)
    console.print(f"run directory: [bold]{final}[/]")


@textgen.command("sample")
def textgen_sample(
    model: Annotated[Path, typer.Option(help="A textgen run directory (or its model/ directory).")],
    prompt: Annotated[str, typer.Option(help="The text to continue.")],
    tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 200,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0: greedy).")] = 0.8,
    top_k: Annotated[int | None, typer.Option(help="Sample among the k most probable tokens.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling: the smallest set with probability p.")]
    = None,
    seed: Annotated[int | None, typer.Option(help="Random seed for a reproducible sample.")] = None,
) -> None:
    """Continue a prompt, streaming the text to the terminal as it is generated.

    Example:

      lstmkit textgen sample --model runs/textgen-stdlib-20261122-120000 --prompt "Return the " --top-p 0.9
    """
    from lstmkit.tasks.lm import LanguageModel

    directory = model / "model" if (model / "model").is_dir() else model
    try:
        lm = LanguageModel.load(directory)
        console.print(prompt, end="", markup=False, highlight=False)
        lm.generate(prompt, tokens, temperature, top_k, top_p, seed,
                    stream=lambda piece: console.print(piece, end="", markup=False, highlight=False))
        console.print()
    except LstmkitError as error:
        console.print()
        fail(str(error))
