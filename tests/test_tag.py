"""SequenceTagger: context from both sides, texts / token lists / numbers, one tag per step, padding
left out of the loss and the accuracy, errors, save/load."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmkit.data.sequences import SequenceDataset
from lstmkit.errors import ConfigError, DataError, ModelFileError, NotFittedError, ShapeError
from lstmkit.tasks.tag import SequenceTagger, TaggerConfig, TaggerModule, TaggerNet
from lstmkit.train import TrainConfig

FAST = TrainConfig(max_epochs=10, batch_size=16, learning_rate=1e-2, loggers=())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: a second intra-op thread only waits (and spins for long on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tagger(**changes) -> SequenceTagger:
    return SequenceTagger(**{"hidden_size": 8, "embedding_dim": 8, "training": FAST, **changes})


def next_is_digit(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Random letters and digits; a character's tag says whether the NEXT one is a digit."""
    rng = np.random.default_rng(seed)
    texts = ["".join(rng.choice(list("abcd0123"), int(rng.integers(4, 16)))) for _ in range(n)]
    tags = [["D" if i + 1 < len(t) and t[i + 1].isdigit() else "-" for i in range(len(t))] for t in texts]
    return texts, tags


@pytest.fixture(scope="module")
def bidirectional():
    return tagger().fit(*next_is_digit(160, seed=1))


# -- learning ---------------------------------------------------------------------------------


def test_tags_that_depend_on_the_next_character_need_both_directions(bidirectional):
    texts, tags = next_is_digit(60, seed=2)
    forward_only = tagger(bidirectional=False).fit(*next_is_digit(160, seed=1))
    both, one = bidirectional.score(texts, tags), forward_only.score(texts, tags)
    assert bidirectional.network_.config.bidirectional and not forward_only.network_.config.bidirectional
    assert both >= 0.95
    assert one <= 0.75  # it can only guess: the next character is independent of everything it has read
    assert both - one >= 0.25


def test_one_tag_per_character_for_any_length_and_the_same_alone_or_batched(bidirectional):
    texts = ["a", "1", "ab1", "a1b2c3d4e5f6a1b2c3d4", "dcba", "0a" * 20]
    predicted = bidirectional.predict(texts)
    assert [len(p) for p in predicted] == [len(t) for t in texts]
    assert all(tag in ("D", "-") for p in predicted for tag in p)
    for text, batched in zip(texts, predicted):
        assert bidirectional.predict([text]) == [batched]  # padding never changes a prediction
    assert predicted[2] == ["-", "D", "-"] and predicted[4] == ["-"] * 4
    assert predicted[5] == ["-", "D"] * 19 + ["-", "-"]  # the last "a" has no next character


def test_token_lists_get_one_tag_per_token():
    rng = np.random.default_rng(3)
    numbers, words = ["one", "two", "three", "four"], ["cat", "sat", "on", "mat", "the"]

    def sentences(n):
        tokens = [rng.choice(numbers + words, int(rng.integers(2, 8))).tolist() for _ in range(n)]
        return tokens, [["NUM" if w in numbers else "W" for w in t] for t in tokens]

    model = tagger(hidden_size=4).fit(*sentences(100))
    assert model.encoder_.kind == "tokens" and model.network_.config.kind == "tokens"
    tokens, tags = sentences(30)
    assert model.score(tokens, tags) >= 0.95
    predicted = model.predict([["two", "cat", "sat"], ["four"]])
    assert predicted == [["NUM", "W", "W"], ["NUM"]]


def test_numeric_series_with_a_label_per_step():
    rng = np.random.default_rng(4)

    def walks(n):
        series = [np.cumsum(rng.standard_normal(int(rng.integers(5, 25)))) for _ in range(n)]
        labels = [[0] + [int(b > a) for a, b in zip(s[:-1], s[1:])] for s in series]  # up (1) or not (0)
        return series, labels

    model = tagger(training=FAST.replace(max_epochs=20)).fit(*walks(120))
    assert model.encoder_.kind == "numeric" and model.network_.config.channels == 1
    assert model.classes_.tolist() == ["0", "1"]
    series, labels = walks(40)
    assert model.score(series, labels) >= 0.9
    assert [len(p) for p in model.predict(series)] == [len(s) for s in series]


# -- errors -----------------------------------------------------------------------------------


def test_tags_must_match_the_steps(bidirectional):
    with pytest.raises(ShapeError, match="sequence 1 has 5 steps but 4 tags; give one tag per character"):
        tagger().fit(["ab", "abcde"], [["x", "y"], ["x", "y", "x", "y"]])
    with pytest.raises(ShapeError, match="2 sequences but 1 tag sequences; give one per sequence"):
        tagger().fit(["ab", "abcde"], [["x", "y"]])
    with pytest.raises(ShapeError, match="sequence 0 has 2 steps but 3 tags; give one tag per step"):
        tagger().fit([[1.0, 2.0]], [[0, 1, 0]])
    with pytest.raises(ShapeError, match="sequence 1 has 3 steps but 2 tags"):
        bidirectional.score(["a1", "ab1"], [["D", "-"], ["-", "D"]])


def test_tags_never_seen_in_training_are_an_error_at_score_time(bidirectional):
    with pytest.raises(DataError, match=r"tags \['X', 'Z'\] \(sequence 1\) were never seen in training \(known: "
                                        r"\['-', 'D'\]\)"):
        bidirectional.score(["ab", "ab1"], [["-", "-"], ["Z", "X", "-"]])


@pytest.mark.parametrize("changes,message", [
    ({"cell": "gru"}, "unknown cell='gru'"),
    ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\), got 1.0"),
    ({"val_fraction": 1.0}, r"val_fraction must be a probability in \[0, 1\), got 1.0"),
    ({"num_layers": 0}, "num_layers must be >= 1, got 0"),
    ({"training": {}}, "training must be a lstmkit.train.TrainConfig, got dict"),
])
def test_invalid_parameters(changes, message):
    with pytest.raises(ConfigError, match=message):
        tagger(**changes).fit(["ab"], [["x", "y"]])


def test_not_fitted():
    with pytest.raises(NotFittedError, match="this SequenceTagger is not fitted yet"):
        tagger().predict(["ab"])


def test_length_cap_error_or_truncation_of_the_sequence_and_its_tags():
    texts, tags = next_is_digit(20, seed=5)
    texts[0], texts[1], tags[0], tags[1] = "ab", "1", ["-", "-"], ["-"]
    texts[2], tags[2] = "a1b2", ["D", "-", "D", "-"]
    with pytest.raises(DataError, match="sequence 2 has 4 steps, over the cap max_length=3"):
        tagger(max_length=3).fit(texts, tags)
    model = tagger(max_length=3, too_long="truncate", training=FAST.replace(max_epochs=1)).fit(texts, tags)
    assert [len(p) for p in model.predict(["a1b2c3", "ab"])] == [3, 2]
    # the score counts the steps kept: the first three of each sequence
    predicted = model.predict(texts)
    kept = [t[:3] for t in tags]
    correct = sum(p == t for ps, ts in zip(predicted, kept) for p, t in zip(ps, ts))
    assert model.score(texts, tags) == correct / sum(len(t) for t in kept)
    with pytest.raises(ShapeError, match="sequence 0 has 6 steps but 5 tags"):  # checked before truncation
        model.score(["a1b2c3"], [["-"] * 5])


# -- padding in the loss and the accuracy -----------------------------------------------------


def test_padded_steps_are_left_out_of_the_loss_and_the_accuracy():
    config = TaggerConfig("tokens", vocab_size=6, channels=0, n_tags=3, embedding_dim=4, hidden_size=5, num_layers=1,
                          bidirectional=True, cell="standard", dropout=0.0)
    net = TaggerNet(config).eval()
    module = TaggerModule(net, TrainConfig())
    generator = torch.Generator().manual_seed(0)
    sequences = [torch.randint(2, 6, (n,), generator=generator) for n in (7, 2, 4)]
    tags = [torch.randint(0, 3, (n,), generator=generator) for n in (7, 2, 4)]
    batch = SequenceDataset(sequences, tags).__getitems__([0, 1, 2])
    assert batch[0].shape == (3, 7) and (batch[2] == -100).sum() == 5 + 3

    # by hand: each sequence on its own (no padding anywhere), the mean over the 13 real steps
    losses, correct = [], 0
    for s, t in zip(sequences, tags):
        logits = net(s[None], torch.tensor([len(s)]))[0]
        losses.append(F.cross_entropy(logits, t, reduction="sum"))
        correct += int((logits.argmax(-1) == t).sum())
    expected = sum(losses) / 13
    with torch.no_grad():
        torch.testing.assert_close(module.step_loss(batch), expected, rtol=0, atol=1e-6)
        metrics = module.validation_metrics(batch)
    torch.testing.assert_close(metrics["val_loss"], expected, rtol=0, atol=1e-6)
    assert float(metrics["val_accuracy"]) == pytest.approx(correct / 13)
    # a mean over all 21 positions (padding included) would be another number
    with torch.no_grad():
        everything = F.cross_entropy(net(batch[0], batch[1]).flatten(0, 1), batch[2].clamp(min=0).flatten())
    assert not torch.isclose(everything, expected, atol=1e-3)


# -- save / load ------------------------------------------------------------------------------


def test_save_load_round_trip(bidirectional, tmp_path):
    path = bidirectional.save(tmp_path / "tagger")
    document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert document["kind"] == "tagger" and document["config"]["classes"] == ["-", "D"]
    loaded = SequenceTagger.load(path)
    texts, tags = next_is_digit(20, seed=6)
    assert loaded.predict(texts) == bidirectional.predict(texts)
    assert loaded.score(texts, tags) == bidirectional.score(texts, tags)
    for a, b in zip(loaded._logits(loaded.encoder_.encode(texts)), bidirectional._logits(
            bidirectional.encoder_.encode(texts))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ModelFileError, match="holds a 'tagger' model, not a 'classifier'"):
        from lstmkit.tasks.classify import SequenceClassifier

        SequenceClassifier.load(path)
    document["config"]["network"]["n_tags"] = 5
    (path / "config.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ModelFileError, match="does not describe a valid tagger"):
        SequenceTagger.load(path)
