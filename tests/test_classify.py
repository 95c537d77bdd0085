"""SequenceClassifier: validation, learning texts and numeric series (lstm and lstm-fcn), padding
invariance, probabilities, length caps, save/load, the ensemble, the splits, scikit-learn parameters."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from lstmkit.data.ts_format import read_ts, ucr_path
from lstmkit.errors import ConfigError, DataError, ModelFileError, NotFittedError, ShapeError
from lstmkit.tasks.base import random_split, stratified_split
from lstmkit.tasks.classify import DEFAULT_TRAINING, ClassifierConfig, SequenceClassifier, SequenceClassifierNet
from lstmkit.tasks.classify.model import ClassifierEnsemble
from lstmkit.tasks.forecast import LSTMForecaster
from lstmkit.train import TrainConfig

FAST = TrainConfig(max_epochs=20, batch_size=8, learning_rate=1e-2, loggers=())
COLOURS = {"red": "zebra", "green": "apple", "blue": "mango"}  # keyword -> label (labels sort unlike keywords)
FILLER = ["the", "a", "of", "some", "thing", "was", "here", "and", "then", "it"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: a second intra-op thread only waits (and spins for long on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def classifier(**changes) -> SequenceClassifier:
    return SequenceClassifier(**{"hidden_size": 8, "embedding_dim": 8, "ensemble": 1, "training": FAST, **changes})


def keyword_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Filler words with one colour word somewhere; the colour decides the label."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        keyword = list(COLOURS)[i % 3]
        words = rng.choice(FILLER, int(rng.integers(3, 9))).tolist()
        words.insert(int(rng.integers(0, len(words) + 1)), keyword)
        texts.append(" ".join(words))
        labels.append(COLOURS[keyword])
    return texts, labels


def waves(n: int, layout: str, seed: int, lengths=(16, 40)) -> tuple[object, list[str]]:
    """Noisy sine waves and square waves; ``layout`` is univariate/multivariate and equal/unequal lengths."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        length = 32 if "unequal" not in layout else (lengths[1] if i == 0 else int(rng.integers(*lengths)))
        phase = np.linspace(0, 4 * np.pi, length) + rng.uniform(0, 2 * np.pi)
        square = i % 2 == 0
        series = (np.sign(np.sin(phase)) if square else np.sin(phase)) + 0.1 * rng.standard_normal(length)
        if layout.startswith("multivariate"):
            series = np.stack([series, rng.standard_normal(length)], 1)  # a second, uninformative channel
        X.append(series)
        y.append("square" if square else "sine")
    return (X if "unequal" in layout else np.stack(X)), y


@pytest.fixture(scope="module")
def text_model() -> tuple[SequenceClassifier, list[str], list[str]]:
    texts, labels = keyword_texts(90, seed=1)
    return classifier().fit(texts, labels), *keyword_texts(60, seed=2)


@pytest.fixture(scope="module")
def fcn_model() -> tuple[SequenceClassifier, list[np.ndarray], list[str]]:
    X, y = waves(40, "multivariate-unequal", seed=1)
    return classifier(architecture="lstm-fcn").fit(X, y), *waves(30, "multivariate-unequal", seed=2, lengths=(16, 36))


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,message", [
    ({"architecture": "cnn"}, r"unknown architecture 'cnn'; expected 'auto' or one of \('lstm', 'lstm-fcn'\)"),
    ({"cell": "bogus"}, r"unknown cell='bogus'; expected one of 'standard'"),
    ({"dropout": 1.0}, r"dropout must be a probability in \[0, 1\), got 1.0"),
    ({"dropout": -0.1}, r"dropout must be a probability in \[0, 1\), got -0.1"),
    ({"ensemble": 0}, "ensemble must be >= 1, got 0"),
    ({"hidden_size": 2.5}, "hidden_size must be an int, got float 2.5"),
    ({"val_fraction": 1.0}, r"val_fraction must be a probability in \[0, 1\)"),
    ({"training": {"max_epochs": 3}}, "training must be a lstmkit.train.TrainConfig, got dict"),
    ({"training": {}}, "training must be a lstmkit.train.TrainConfig, got dict"),
])
def test_invalid_parameters_are_reported_at_fit_not_at_construction(changes, message):
    model = classifier(**changes)  # scikit-learn convention: __init__ only stores
    (name, value), = changes.items()
    assert model.get_params()[name] == value
    with pytest.raises(ConfigError, match=message):
        model.fit(["a b", "c d"], ["x", "y"])
    assert not hasattr(model, "network_")


def test_needs_two_classes_and_one_label_per_sequence():
    with pytest.raises(DataError, match=r"at least two classes, got only \['a'\]"):
        classifier().fit(["a b", "c d", "e"], ["a", "a", "a"])
    with pytest.raises(ShapeError, match="3 sequences but 2 labels; give one label per sequence"):
        classifier().fit(["a b", "c d", "e"], ["a", "b"])


def test_not_fitted_errors():
    with pytest.raises(NotFittedError, match="this SequenceClassifier is not fitted yet; call fit first"):
        classifier().predict(["a b"])
    with pytest.raises(NotFittedError):
        classifier().save("nowhere")


# -- learning ---------------------------------------------------------------------------------


def test_text_classification_learns_a_keyword_task(text_model):
    model, texts, labels = text_model
    # a bidirectional LSTM head over word embeddings is the automatic choice for text
    assert model.network_.config.architecture == "lstm" and model.network_.config.bidirectional
    assert model.network_.config.kind == "tokens"
    assert model.score(texts, labels) >= 0.9  # chance is 1/3
    assert model.predict(["the red thing", "it was blue", "green"]).tolist() == ["zebra", "mango", "apple"]


@pytest.mark.parametrize("architecture", ["lstm", "lstm-fcn"])
@pytest.mark.parametrize("layout", ["univariate-equal", "multivariate-equal", "multivariate-unequal"])
def test_numeric_classification_learns_sine_from_square(architecture, layout):
    X, y = waves(40, layout, seed=1)
    X_test, y_test = waves(40, layout, seed=2, lengths=(16, 36))
    epochs = 30 if architecture == "lstm" else 15  # the convolutions learn faster
    model = classifier(architecture=architecture, training=FAST.replace(max_epochs=epochs)).fit(X, y)
    assert model.network_.config.architecture == architecture
    assert model.network_.config.kind == "numeric"
    assert model.network_.config.channels == (2 if layout.startswith("multivariate") else 1)
    assert model.score(X_test, y_test) >= 0.85  # chance is 0.5


def test_auto_architecture_is_lstm_fcn_for_numbers_and_lstm_for_text():
    auto = classifier(training=FAST.replace(max_epochs=1)).fit(*waves(10, "univariate-equal", seed=3))
    assert auto.network_.config.architecture == "lstm-fcn" and auto.network_.config.length == 32
    tokens = [t.split() for t in keyword_texts(10, seed=3)[0]]
    auto = classifier(training=FAST.replace(max_epochs=1)).fit(tokens, keyword_texts(10, seed=3)[1])
    assert auto.network_.config.architecture == "lstm" and auto.encoder_.kind == "tokens"


# -- padding invariance -----------------------------------------------------------------------


def _net(architecture: str, **changes) -> SequenceClassifierNet:
    config = ClassifierConfig(**{"kind": "numeric", "vocab_size": 0, "channels": 2, "n_classes": 3,
                                 "architecture": architecture, "embedding_dim": 4, "hidden_size": 5, "num_layers": 2,
                                 "bidirectional": True, "cell": "standard", "dropout": 0.0, "length": 20, **changes})
    net = SequenceClassifierNet(config).eval()
    if architecture == "lstm-fcn":  # give batch norm statistics that are not the identity
        for module in net.fcn:
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("architecture", ["lstm", "lstm-fcn"])
def test_a_prediction_does_not_depend_on_the_padding_of_its_batch(architecture):
    net = _net(architecture)
    short = torch.randn(7, 2)
    alone = net(short[None], torch.tensor([7]))
    padded = torch.randn(3, 20, 2) * 50  # garbage where the short sequence is padded
    padded[0, :7] = short
    batched = net(padded, torch.tensor([7, 20, 13]))
    torch.testing.assert_close(batched[0], alone[0], rtol=0, atol=1e-5)
    # the garbage is far from the real values: reading it would have changed the logits
    assert not torch.allclose(net(padded[:1], torch.tensor([20]))[0], alone[0], atol=1e-2)


def test_lstm_head_takes_both_directions_at_the_true_last_step():
    net = _net("lstm", num_layers=1)
    x = torch.randn(1, 7, 2)
    out, _ = net.lstm(x)  # (1, 7, 2H) unpacked: forward state at step 6, reverse state at step 0
    features = torch.cat([out[0, -1, :5], out[0, 0, 5:]])
    torch.testing.assert_close(net(x, torch.tensor([7]))[0], net.head(features), rtol=0, atol=1e-5)


@pytest.mark.parametrize("architecture", ["lstm", "lstm-fcn"])
def test_estimator_predictions_are_the_same_alone_and_batched_with_longer_sequences(architecture):
    X, y = waves(20, "univariate-unequal", seed=4)
    model = classifier(architecture=architecture, training=FAST.replace(max_epochs=2)).fit(X, y)
    short = [X[3][:17]]
    longer = [x for x in X if len(x) >= 35]
    assert longer
    alone = model.predict_proba(short)
    batched = model.predict_proba(longer + short + longer)
    np.testing.assert_allclose(batched[len(longer)], alone[0], rtol=0, atol=1e-6)


# -- probabilities and scores -----------------------------------------------------------------


def test_predict_proba_rows_sum_to_one_and_columns_follow_classes(text_model):
    model, texts, labels = text_model
    assert model.classes_.tolist() == ["apple", "mango", "zebra"]  # sorted labels, not keyword order
    proba = model.predict_proba(texts)
    assert proba.shape == (len(texts), 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    # column k is the probability of classes_[k]: "red" texts are "zebra", the last column
    red = [i for i, t in enumerate(texts) if "red" in t.split()]
    assert (proba[red].argmax(1) == 2).mean() >= 0.9
    assert model.predict(texts).tolist() == model.classes_[proba.argmax(1)].tolist()
    # batching does not change the numbers
    np.testing.assert_allclose(model.predict_proba(texts, batch_size=7), proba, atol=1e-6)


def test_score_with_labels_never_seen_in_training_names_them(text_model):
    model, texts, labels = text_model
    with pytest.raises(DataError, match=r"labels \['kiwi', 'plum'\] were never seen in training \(known: "
                                        r"\['apple', 'mango', 'zebra'\]\)"):
        model.score(texts[:3], ["kiwi", "apple", "plum"])


def test_unknown_words_at_predict_time_are_read_as_unknown(text_model):
    model, _, _ = text_model
    assert model.predict(["never seen words red"]).tolist() == ["zebra"]


def test_numeric_labels_are_compared_as_text():
    X, y = waves(20, "univariate-equal", seed=5)
    numbers = [1 if label == "square" else 0 for label in y]
    model = classifier(architecture="lstm-fcn").fit(X, numbers)
    assert model.classes_.tolist() == ["0", "1"]
    assert model.score(X, numbers) == model.score(X, [str(v) for v in numbers]) >= 0.9


# -- length caps ------------------------------------------------------------------------------


def test_sequences_over_the_cap_are_an_error_naming_them_or_truncated():
    X = [np.arange(n, dtype=float) for n in (4, 5, 8, 3)]
    y = ["a", "b", "a", "b"]
    with pytest.raises(DataError, match=r"sequence 2 has 8 steps, over the cap max_length=5; raise max_length or pass "
                                        r"too_long='truncate'"):
        classifier(architecture="lstm", max_length=5).fit(X, y)
    texts = ["one two", "three four five six seven", "eight"]
    with pytest.raises(DataError, match="sequence 1 has 5 steps, over the cap max_length=4"):
        classifier(max_length=4).fit(texts, ["a", "b", "a"])

    model = classifier(architecture="lstm", max_length=5, too_long="truncate",
                       training=FAST.replace(max_epochs=2)).fit(X, y)
    long = np.linspace(-1, 1, 30)
    np.testing.assert_array_equal(model.predict_proba([long]), model.predict_proba([long[:5]]))
    with pytest.raises(ConfigError, match="too_long must be 'error' or 'truncate', got 'cut'"):
        classifier(too_long="cut").fit(X, y)


def test_lstm_fcn_reads_the_training_length_and_rejects_longer_series(fcn_model):
    model, X_test, y_test = fcn_model
    assert model.network_.config.length == 40 == model.encoder_.max_length
    assert model.score(X_test, y_test) >= 0.9
    with pytest.raises(DataError, match="sequence 1 has 41 steps, over the cap max_length=40"):
        model.predict([X_test[0], np.zeros((41, 2))])


def test_lstm_fcn_with_an_explicit_cap_reads_whole_series_up_to_it():
    X, y = waves(20, "univariate-unequal", seed=6, lengths=(16, 30))
    model = classifier(architecture="lstm-fcn", max_length=50, training=FAST.replace(max_epochs=2)).fit(X, y)
    # the network reads 50 steps: a 45-step series is read whole, not cut to the longest training series
    assert model.network_.config.length == 50 == model.encoder_.max_length
    series = np.sin(np.linspace(0, 9, 45))
    assert not np.allclose(model.predict_proba([series]), model.predict_proba([series[:30]]), atol=1e-4)
    with pytest.raises(DataError, match="sequence 0 has 51 steps, over the cap max_length=50"):
        model.predict([np.zeros(51)])


# -- save / load ------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["text", "fcn"])
def test_save_load_predicts_identical_probabilities(which, text_model, fcn_model, tmp_path):
    model, X_test, _ = text_model if which == "text" else fcn_model
    path = model.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert document["kind"] == "classifier" and document["config"]["members"] == 1
    loaded = SequenceClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))
    assert loaded.classes_.tolist() == model.classes_.tolist()
    assert loaded.get_params() == {**model.get_params(), "training": FAST, "run_dir": None}
    assert loaded.encoder_.max_length == model.encoder_.max_length


def test_load_errors(text_model, tmp_path):
    model, _, _ = text_model
    path = model.save(tmp_path / "model")
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="is not a readable safetensors file"):
        SequenceClassifier.load(path)

    path = model.save(tmp_path / "model2")
    document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    del document["config"]["network"]
    (path / "config.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ModelFileError, match="does not describe a valid classifier \\(KeyError: 'network'\\)"):
        SequenceClassifier.load(path)

    document = json.loads((model.save(tmp_path / "model3") / "config.json").read_text(encoding="utf-8"))
    document["config"]["network"]["hidden_size"] = 9  # the weights no longer fit
    (tmp_path / "model3" / "config.json").write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ModelFileError, match="does not describe a valid classifier \\(RuntimeError"):
        SequenceClassifier.load(tmp_path / "model3")

    (tmp_path / "model3" / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFileError, match="is not valid JSON"):
        SequenceClassifier.load(tmp_path / "model3")


def test_loading_a_forecaster_is_a_wrong_kind_error(tmp_path):
    t = np.arange(48)
    table = pd.DataFrame({"month": pd.date_range("2015-01-01", periods=48, freq="MS"), "y": np.sin(t / 2) + 0.1 * t})
    forecaster = LSTMForecaster(horizon=3, hidden_size=4, ensemble=1, transform="none",
                                training=TrainConfig(max_epochs=1, loggers=())).fit(table, "y", time="month")
    path = forecaster.save(tmp_path / "forecaster")
    with pytest.raises(ModelFileError, match="holds a 'forecaster' model, not a 'classifier'"):
        SequenceClassifier.load(path)


# -- the ensemble -----------------------------------------------------------------------------


def test_ensemble_output_is_the_log_of_the_mean_member_probabilities():
    config = _net("lstm").config
    ensemble = ClassifierEnsemble(config, 3).eval()
    x, lengths = torch.randn(4, 9, 2), torch.tensor([9, 3, 5, 1])
    members = [m(x, lengths).softmax(-1) for m in ensemble.members]
    expected = ((members[0] + members[1] + members[2]) / 3).log()
    torch.testing.assert_close(ensemble(x, lengths), expected, rtol=0, atol=1e-6)
    # members are different networks (otherwise averaging would be pointless)
    assert not torch.allclose(members[0], members[1])
    # softmax reads the output as logits and gives back the mean probabilities
    torch.testing.assert_close(ensemble(x, lengths).softmax(-1), expected.exp(), rtol=0, atol=1e-6)


def test_an_ensemble_of_two_trains_two_different_members_and_averages_them():
    texts, labels = keyword_texts(30, seed=3)
    model = classifier(ensemble=2, training=FAST.replace(max_epochs=2)).fit(texts, labels)
    first, second = model.network_.members
    assert len(model.fit_results_) == 2
    assert not torch.equal(first.head.weight, second.head.weight)
    encoded = model.encoder_.encode(texts[:5])
    padded = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True)
    lengths = torch.tensor([len(s) for s in encoded])
    with torch.no_grad():
        mean = (first(padded, lengths).softmax(-1) + second(padded, lengths).softmax(-1)) / 2
    np.testing.assert_allclose(model.predict_proba(texts[:5]), mean.numpy(), atol=1e-6)


# -- splits -----------------------------------------------------------------------------------


def test_stratified_split_keeps_class_proportions_and_a_training_example_of_every_class():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 2 + [3] * 1)
    np.random.default_rng(0).shuffle(labels)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert [int((labels[val] == k).sum()) for k in range(4)] == [10, 6, 1, 0]
    assert [int((labels[train] == k).sum()) for k in range(4)] == [40, 24, 1, 1]
    # even a huge fraction leaves one example of each class in training
    train, val = stratified_split(labels, 0.95, seed=0)
    kept = [int((labels[train] == k).sum()) for k in range(4)]
    assert min(kept) >= 1 and kept[2:] == [1, 1] and len(val) > 0.9 * len(labels)
    assert len(stratified_split(labels, 0.0, seed=0)[1]) == 0
    # the seed decides which examples, reproducibly
    assert np.array_equal(stratified_split(labels, 0.2, 1)[1], stratified_split(labels, 0.2, 1)[1])
    assert not np.array_equal(stratified_split(labels, 0.2, 1)[1], stratified_split(labels, 0.2, 2)[1])


def test_random_split_sizes():
    train, val = random_split(10, 0.25, seed=0)
    assert len(val) == 2 and len(train) == 8 and not set(train) & set(val)
    assert len(random_split(10, 0.01, seed=0)[1]) == 1  # at least one when the fraction is > 0
    assert random_split(1, 0.5, seed=0)[1].tolist() == []  # never the only sequence
    assert random_split(10, 0.0, seed=0)[1].tolist() == []


def test_the_default_validation_part_is_none_below_200_sequences(text_model):
    model, _, _ = text_model
    assert model.fit_results_[0].monitor == "train_loss"
    texts, labels = keyword_texts(200, seed=4)
    big = classifier(training=FAST.replace(max_epochs=1)).fit(texts, labels)
    assert big.fit_results_[0].monitor == "val_loss"


# -- scikit-learn parameters ------------------------------------------------------------------


def test_get_params_set_params_and_clone_behave_like_scikit_learn(text_model):
    model, _, _ = text_model
    params = model.get_params()
    assert list(params) == ["architecture", "cell", "hidden_size", "num_layers", "bidirectional", "embedding_dim",
                            "dropout", "tokenizer", "max_length", "too_long", "val_fraction", "ensemble", "training",
                            "run_dir"]
    assert params["hidden_size"] == 8 and params["training"] is FAST

    copy = clone(model)
    assert type(copy) is SequenceClassifier and copy is not model
    assert copy.get_params() == params
    assert not hasattr(copy, "network_") and not hasattr(copy, "classes_")

    assert copy.set_params(hidden_size=5, dropout=0.0) is copy
    assert copy.hidden_size == 5 and copy.dropout == 0.0 and model.hidden_size == 8
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['bogus'\]; SequenceClassifier takes "
                                          r"\['architecture'"):
        copy.set_params(bogus=1, hidden_size=7)
    assert copy.hidden_size == 5  # nothing was set
    assert repr(copy) == f"SequenceClassifier(hidden_size=5, embedding_dim=8, dropout=0.0, ensemble=1, " \
                         f"training={FAST!r})"
    assert SequenceClassifier().training is None and DEFAULT_TRAINING.max_epochs == 500


# -- a real dataset ---------------------------------------------------------------------------


def test_italy_power_demand_quick_fit():
    train = read_ts(ucr_path("ItalyPowerDemand", "TRAIN"))
    test = read_ts(ucr_path("ItalyPowerDemand", "TEST"))
    assert (len(train), len(test)) == (67, 1029)
    model = SequenceClassifier(ensemble=1, training=TrainConfig(max_epochs=30, batch_size=16, loggers=()))
    model.fit(train, train.labels)
    assert model.network_.config.architecture == "lstm-fcn"
    assert model.score(test, test.labels) > 0.85
