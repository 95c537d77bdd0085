"""LanguageModel and its network: batches of parallel streams, truncated BPTT, AWD-LSTM regularisers,
tied weights, evaluation, generation and sampling, tokenizers, save/load."""

import json
import math

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from lstmkit.errors import ConfigError, DataError, ModelFileError, NotFittedError
from lstmkit.tasks.lm import LanguageModel, LanguageModelNet, LMConfig, sample_next
from lstmkit.tasks.lm.model import LMModule, SegmentDataset, batchify
from lstmkit.train import TaskModule, TrainConfig

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
FAST = TrainConfig(max_epochs=30, learning_rate=1e-2, loggers=())
NO_DROPOUT = {"input_dropout": 0.0, "hidden_dropout": 0.0, "output_dropout": 0.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny networks: a second intra-op thread only waits (and spins for long on a busy machine)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def language_model(**changes) -> LanguageModel:
    return LanguageModel(**{"embedding_dim": 16, "hidden_size": 16, "num_layers": 1, "bptt": 32, "streams": 4,
                            **NO_DROPOUT, "training": FAST, **changes})


def config(**changes) -> LMConfig:
    return LMConfig(**{"vocab_size": 12, "embedding_dim": 6, "hidden_size": 7, "num_layers": 2, "cell": "standard",
                       "tie_weights": True, "embedding_dropout": 0.0, "input_dropout": 0.0, "hidden_dropout": 0.0,
                       "output_dropout": 0.0, "weight_drop": 0.0, **changes})


@pytest.fixture(scope="module")
def char_lm() -> LanguageModel:
    return language_model().fit(TEXT)


# -- batches ----------------------------------------------------------------------------------


def test_batchify_cuts_the_text_into_parallel_streams():
    rows = batchify(torch.arange(11), 3)
    assert rows.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # the remainder (9, 10) is dropped
    assert batchify(torch.arange(4), 4).tolist() == [[0], [1], [2], [3]]


def test_segments_are_in_order_with_targets_shifted_by_one_and_a_shorter_last_one():
    rows = batchify(torch.arange(20), 2)  # [[0..9], [10..19]]
    segments = SegmentDataset(rows, bptt=4)
    assert len(segments) == 3
    inputs, targets = segments.__getitems__([0])
    assert inputs.tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]]
    assert targets.tolist() == [[1, 2, 3, 4], [11, 12, 13, 14]]
    inputs, targets = segments.__getitems__([2])
    assert inputs.tolist() == [[8], [18]] and targets.tolist() == [[9], [19]]  # the last column is never an input
    joined = torch.cat([segments.__getitems__([i])[0] for i in range(len(segments))], 1)
    assert torch.equal(joined, rows[:, :-1])
    with pytest.raises(ValueError):
        segments.__getitems__([0, 1])  # one segment per optimiser step


# -- truncated BPTT ---------------------------------------------------------------------------


def test_the_state_is_carried_detached_from_segment_to_segment_and_reset_each_epoch(monkeypatch):
    torch.manual_seed(0)
    net = LanguageModelNet(config())
    module = LMModule(net, TrainConfig())
    segments = SegmentDataset(batchify(torch.randint(0, 12, (60,)), 3), bptt=5)
    first, second = segments.__getitems__([0]), segments.__getitems__([1])

    loss = module.step_loss(first)
    _, expected = net(first[0])
    for (h, c), (h_ref, c_ref) in zip(module._state, expected):
        assert h.grad_fn is None and c.grad_fn is None and not h.requires_grad
        torch.testing.assert_close(h, h_ref.detach(), rtol=0, atol=0)
        torch.testing.assert_close(c, c_ref.detach(), rtol=0, atol=0)
        assert h.shape == (1, 3, h.shape[-1])
    loss.backward()  # gradients flow inside the segment

    carried = module._state
    loss = module.step_loss(second)
    logits, after = net(second[0], carried)
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), second[1].flatten()), rtol=0, atol=0)
    zero_state, _ = net(second[0])  # from a zero state the loss would differ
    assert not torch.isclose(loss, F.cross_entropy(zero_state.flatten(0, 1), second[1].flatten()))
    torch.testing.assert_close(module._state[0][0], after[0][0].detach(), rtol=0, atol=0)
    loss.backward()  # the carried state is detached: no second backward through the first segment

    module.on_train_epoch_start()
    assert module._state is None
    module._state = carried
    module.on_validation_epoch_start()  # validation reads from a zero state and gives the training state back
    assert module._state is None
    module.step_loss(first)
    assert module._state is not None and module._state is not carried
    monkeypatch.setattr(TaskModule, "on_validation_epoch_end", lambda self: None)  # (it needs a trainer)
    module.on_validation_epoch_end()
    assert module._state is carried


def test_training_starts_every_epoch_and_every_validation_from_a_zero_state(monkeypatch):
    calls: list[bool] = []
    original = LanguageModelNet.forward

    def spy(self, tokens, state=None):
        calls.append(state is None)
        return original(self, tokens, state)

    monkeypatch.setattr(LanguageModelNet, "forward", spy)
    text = "abcdefgh" * 50  # 400 characters: 360 to train (2 streams of 180, 6 segments), 40 to validate
    language_model(streams=2, bptt=30, training=FAST.replace(max_epochs=2, lr_schedule="none")).fit(text)
    # epoch 1: 6 training segments, 1 validation segment; epoch 2: the same
    assert calls == [True, False, False, False, False, False, True] * 2


def test_validation_in_the_module_and_in_lightnings_loop_train_the_same_model(monkeypatch):
    # lstmkit validates inside the module unless something needs Lightning's loop (the progress
    # bar does); the language model's state swap around validation must work the same either way
    from lstmkit.train.module import TaskModule

    inline_calls = []
    original = TaskModule._validate_inline
    monkeypatch.setattr(TaskModule, "_validate_inline", lambda self: inline_calls.append(1) or original(self))
    settings = FAST.replace(max_epochs=3, lr_schedule="plateau")
    inline = language_model(training=settings).fit(TEXT)
    assert len(inline_calls) == 3
    looped = language_model(training=settings.replace(progress_bar=True)).fit(TEXT)
    assert len(inline_calls) == 3
    assert inline.fit_result_.best_score == looped.fit_result_.best_score
    for (name, a), b in zip(inline.network_.state_dict().items(), looped.network_.state_dict().values()):
        assert torch.equal(a, b), name


# -- the network ------------------------------------------------------------------------------


def test_embedding_initialisation_depends_on_tying():
    torch.manual_seed(0)
    tied = LanguageModelNet(config(vocab_size=500, embedding_dim=64, hidden_size=64, tie_weights=True))
    untied = LanguageModelNet(config(vocab_size=500, embedding_dim=64, hidden_size=64, tie_weights=False))
    assert tied.embedding.weight.abs().max() <= 0.1  # AWD-LSTM's uniform(-0.1, 0.1): small first logits
    assert torch.all(tied.decoder.bias == 0)  # tied: the first logits near zero
    assert 0 < untied.decoder.bias.abs().max() <= 1 / 8  # untied: torch's uniform +-1/sqrt(64)
    w = untied.embedding.weight.detach().flatten()
    assert abs(float(w.mean())) < 0.02 and abs(float(w.std()) - 1.0) < 0.02  # torch's N(0, 1), 32,000 draws


def test_tied_weights_share_storage_and_are_saved_once(char_lm, tmp_path):
    net = char_lm.network_
    assert net.decoder.weight is net.embedding.weight
    assert net.layers[-1].hidden_size == 16  # the last layer's size is the embedding size
    path = char_lm.save(tmp_path / "lm")
    stored = safetensors.torch.load_file(path / "model.safetensors")
    assert "embedding.weight" in stored and "decoder.weight" not in stored
    loaded = LanguageModel.load(path)
    assert loaded.network_.decoder.weight is loaded.network_.embedding.weight
    torch.testing.assert_close(loaded.network_.embedding.weight, net.embedding.weight, rtol=0, atol=0)

    untied = LanguageModelNet(config(tie_weights=False))
    assert untied.decoder.weight is not untied.embedding.weight
    assert untied.decoder.weight.shape == (12, 7) and untied.layers[-1].hidden_size == 7


def test_embedding_dropout_drops_whole_rows_at_the_requested_rate_and_nothing_in_eval():
    torch.manual_seed(1)
    net = LanguageModelNet(config(vocab_size=4000, embedding_dropout=0.3)).train()
    tokens = torch.arange(4000).repeat(2)[None]  # every token twice: a dropped word is dropped everywhere
    rows = net.embed(tokens)[0]
    weight = net.embedding.weight
    dropped = (rows[:4000] == 0).all(1)
    assert torch.equal(dropped, (rows[4000:] == 0).all(1))
    torch.testing.assert_close(rows[:4000][~dropped], weight[~dropped] / 0.7, rtol=1e-6, atol=0)
    assert abs(float(dropped.float().mean()) - 0.3) < 0.03  # 4 standard deviations
    assert not (rows[:4000][~dropped] == 0).any()  # kept rows keep every dimension

    net.eval()
    torch.testing.assert_close(net.embed(tokens)[0, :4000], weight, rtol=0, atol=0)


def test_locked_dropout_and_weight_drop_only_act_in_training():
    regularised = LanguageModelNet(config(input_dropout=0.4, hidden_dropout=0.4, output_dropout=0.4,
                                          weight_drop=0.5, embedding_dropout=0.2))
    plain = LanguageModelNet(config())
    state = {k.replace("parametrizations.", "").replace(".original", ""): v
             for k, v in regularised.state_dict().items()}
    plain.load_state_dict(state)
    tokens = torch.randint(0, 12, (3, 9))

    regularised.train()
    first, _ = regularised(tokens)
    second, _ = regularised(tokens)
    assert not torch.allclose(first, second)
    regularised.eval()
    with torch.no_grad():
        first, _ = regularised(tokens)
        second, _ = regularised(tokens)
        reference, _ = plain.eval()(tokens)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, reference, rtol=0, atol=1e-6)  # in eval, exactly the plain network


# -- learning and evaluation ------------------------------------------------------------------


def test_a_tiny_model_learns_a_repetitive_text(char_lm):
    vocabulary = char_lm.tokenizer_.vocab_size
    assert vocabulary == len(set(TEXT)) + 2
    scores = char_lm.evaluate(TEXT[-400:])
    assert scores["bits_per_character"] < 0.25 * math.log2(vocabulary)  # log2(30): 4.9 bits knowing nothing


def test_evaluate_reports_consistent_loss_perplexity_and_bits_per_character(char_lm):
    text = TEXT * 2  # over 1024 characters: read in pieces with the state carried
    scores = char_lm.evaluate(text)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]), rel=1e-12)
    assert scores["bits_per_character"] == pytest.approx(scores["loss"] / math.log(2), rel=1e-12)
    ids = torch.tensor(char_lm.tokenizer_.encode(text))
    with torch.no_grad():
        logits, _ = char_lm.network_(ids[None, :-1])  # the whole text in one pass
    assert scores["loss"] == pytest.approx(float(F.cross_entropy(logits[0], ids[1:])), rel=1e-5)
    with pytest.raises(DataError, match="at least two tokens"):
        char_lm.evaluate("t")
    with pytest.raises(DataError, match="the text is empty"):
        char_lm.evaluate("  \n")


# -- generation -------------------------------------------------------------------------------


def test_temperature_zero_is_greedy_and_deterministic(char_lm):
    prompt = "the qu"
    text = char_lm.generate(prompt, max_tokens=25, temperature=0)
    assert text == char_lm.generate(prompt, max_tokens=25, temperature=0)
    assert text.startswith(prompt) and len(text) == len(prompt) + 25
    # by hand: read the whole prefix again at every step and take the most probable character
    ids = char_lm.tokenizer_.encode(prompt)
    with torch.no_grad():
        for _ in range(25):
            logits, _ = char_lm.network_(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    assert text == char_lm.tokenizer_.decode(ids)
    assert char_lm.generate(prompt, max_tokens=25, temperature=1.0, top_k=1, seed=3) == text


def test_a_seed_makes_sampling_reproducible(char_lm):
    samples = [char_lm.generate("the", 60, temperature=2.0, seed=seed) for seed in (1, 1, 2)]
    assert samples[0] == samples[1]
    assert samples[0] != samples[2]
    assert char_lm.generate("the", 60, temperature=2.0, top_p=0.9, seed=4) == \
        char_lm.generate("the", 60, temperature=2.0, top_p=0.9, seed=4)


def test_streaming_pieces_join_to_the_continuation(char_lm):
    pieces: list[str] = []
    text = char_lm.generate("lazy", 30, temperature=0.8, seed=0, stream=pieces.append)
    assert len(pieces) == 30 and all(len(p) == 1 for p in pieces)
    assert "".join(pieces) == text[len("lazy"):]


def test_generation_never_draws_the_padding_token(char_lm, tmp_path):
    model = LanguageModel.load(char_lm.save(tmp_path / "lm"))
    with torch.no_grad():
        model.network_.decoder.bias[0] = 100.0  # the network now wants <pad> after everything
    pieces: list[str] = []
    assert len(model.generate("the", 20, temperature=0, stream=pieces.append)) == 23
    assert all(len(p) == 1 for p in pieces)  # no empty piece
    assert len(model.generate("the", 20, temperature=1.0, top_p=0.9, seed=0)) == 23


def test_prompt_and_sampling_errors(char_lm):
    with pytest.raises(DataError, match=r"the prompt's 'Z' at character 4 is not in the model's vocabulary \(2 "
                                        r"unknown piece\(s\) in all\)"):
        char_lm.generate("the Zebra!", 5)
    with pytest.raises(DataError, match="the prompt must be a non-empty string"):
        char_lm.generate("", 5)
    for options in ({"temperature": -0.5}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": 0}):
        with pytest.raises(ConfigError, match="expected temperature >= 0, 0 < top_p <= 1 and top_k >= 1"):
            char_lm.generate("the", 5, **options)
    with pytest.raises(NotFittedError):
        language_model().generate("the", 5)


# -- sample_next ------------------------------------------------------------------------------

# probabilities 0.4, 0.3, 0.15, 0.1, 0.05 on token ids 3, 0, 4, 1, 2 (ids are not ranks)
PROBABILITIES = torch.tensor([0.3, 0.1, 0.05, 0.4, 0.15])


def frequencies(draws: int = 10000, **options) -> np.ndarray:
    generator = torch.Generator().manual_seed(0)
    logits = PROBABILITIES.log()
    counts = np.bincount([sample_next(logits, generator=generator, **options) for _ in range(draws)], minlength=5)
    return counts / draws


def test_sample_next_follows_the_distribution():
    np.testing.assert_allclose(frequencies(), PROBABILITIES.numpy(), atol=0.02)
    assert sample_next(PROBABILITIES.log(), temperature=0) == 3


def test_top_p_samples_only_from_the_renormalised_nucleus():
    # the nucleus of 0.75: 0.4 (mass before it 0), 0.3 (0.4), 0.15 (0.7); 0.1 has 0.85 before it
    observed = frequencies(top_p=0.75)
    assert observed[1] == 0 and observed[2] == 0
    expected = np.array([0.3, 0, 0, 0.4, 0.15]) / 0.85
    np.testing.assert_allclose(observed, expected, atol=0.02)
    assert frequencies(200, top_p=0.2)[3] == 1.0  # the first token always stays


def test_top_k_and_temperature():
    observed = frequencies(top_k=2)
    np.testing.assert_allclose(observed, np.array([0.3, 0, 0, 0.4, 0]) / 0.7, atol=0.02)
    flattened = PROBABILITIES.sqrt() / PROBABILITIES.sqrt().sum()  # temperature 2: p ** (1 / 2), renormalised
    np.testing.assert_allclose(frequencies(temperature=2.0), flattened.numpy(), atol=0.02)
    assert frequencies(100, temperature=1.0, top_k=1)[3] == 1.0


# -- tokenizers end to end --------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer,options", [("word", None), ("bpe", {"vocab_size": 300})])
def test_word_and_bpe_models_fit_evaluate_and_generate(tokenizer, options, tmp_path):
    text = "the cat sat on the mat and the dog sat on the log. " * 30
    model = language_model(tokenizer=tokenizer, tokenizer_options=options, bptt=16,
                           training=FAST.replace(max_epochs=10)).fit(text)
    assert model.tokenizer_.kind == tokenizer
    assert model.chars_per_token_ > 1.5  # several characters per token
    scores = model.evaluate(text[:500])
    tokens = len(model.tokenizer_.encode(text[:500]))
    assert scores["bits_per_character"] == pytest.approx(
        scores["loss"] * (tokens - 1) / math.log(2) / (500 * (tokens - 1) / tokens), rel=1e-9)
    assert scores["bits_per_character"] < scores["loss"] / math.log(2)  # fewer bits per character than per token
    pieces: list[str] = []
    generated = model.generate("the cat", 12, temperature=0, stream=pieces.append)
    assert generated.startswith("the cat") and len(pieces) == 12
    assert "".join(pieces) == generated[len("the cat"):]
    ids = model.tokenizer_.encode("the cat")  # greedy by hand: the pieces decode the tokens drawn
    with torch.no_grad():
        for _ in range(12):
            logits, _ = model.network_(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    assert generated == model.tokenizer_.decode(ids)
    loaded = LanguageModel.load(model.save(tmp_path / "model"))
    assert loaded.generate("the cat", 12, temperature=0) == generated
    if tokenizer == "word":
        assert all(p.startswith(" ") for p in pieces)  # words are joined by spaces
        with pytest.raises(DataError, match="the prompt's 'zebra' at character 4"):
            model.generate("the zebra", 3)
        with pytest.raises(DataError, match="the prompt '   ' has no tokens"):
            model.generate("   ", 3)


# -- save / load ------------------------------------------------------------------------------


def test_save_load_generates_the_same_greedy_text(char_lm, tmp_path):
    path = char_lm.save(tmp_path / "lm")
    document = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert document["kind"] == "language-model" and document["config"]["tokenizer"]["kind"] == "char"
    loaded = LanguageModel.load(path)
    assert loaded.generate("the qu", 40, temperature=0) == char_lm.generate("the qu", 40, temperature=0)
    assert loaded.evaluate(TEXT[:300]) == char_lm.evaluate(TEXT[:300])
    assert loaded.get_params() == {**char_lm.get_params(), "run_dir": None}

    stored = safetensors.torch.load_file(path / "model.safetensors")
    safetensors.torch.save_file({k: v for k, v in stored.items() if k != "embedding.weight"},
                                str(path / "model.safetensors"))
    with pytest.raises(ModelFileError, match=r"missing weights \['embedding.weight'\]"):
        LanguageModel.load(path)


def test_weight_drop_models_save_and_load(tmp_path):
    model = language_model(num_layers=2, weight_drop=0.3, embedding_dropout=0.1,
                           training=FAST.replace(max_epochs=2)).fit(TEXT[:600])
    loaded = LanguageModel.load(model.save(tmp_path / "lm"))
    assert loaded.generate("the", 20, temperature=0) == model.generate("the", 20, temperature=0)


def test_forget_bias_sets_each_layers_forget_gate_and_none_keeps_torchs_initialisation():
    torch.manual_seed(0)
    biased = LanguageModelNet(config(forget_bias=2.0))
    for layer in biased.layers:
        h = layer.hidden_size
        assert torch.equal(layer.bias_ih_l0[h:2 * h], torch.full((h,), 2.0))
        assert torch.equal(layer.bias_hh_l0[h:2 * h], torch.zeros(h))
    torch.manual_seed(0)
    plain = LanguageModelNet(config(forget_bias=None))
    torch.manual_seed(0)
    torch.nn.Embedding(12, 6)  # drawn first, as in the network
    reference = torch.nn.LSTM(6, 7)  # the first layer: the same draws as torch's own LSTM
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert torch.equal(getattr(plain.layers[0], name), getattr(reference, name)), name


def test_the_default_keeps_torchs_forget_gate_initialisation_and_old_files_load(char_lm, tmp_path):
    assert char_lm.network_.config.forget_bias is None
    path = char_lm.save(tmp_path / "lm")
    # a model file written before the option existed: no forget_bias in its configuration
    config_file = path / "config.json"
    data = json.loads(config_file.read_text())
    del data["config"]["params"]["forget_bias"]
    del data["config"]["network"]["forget_bias"]
    config_file.write_text(json.dumps(data))
    loaded = LanguageModel.load(path)
    assert loaded.network_.config.forget_bias == loaded.forget_bias == 1.0  # what such files were initialised with
    assert loaded.generate("the", 20, temperature=0) == char_lm.generate("the", 20, temperature=0)


# -- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,text,error,message", [
    ({"bptt": 0}, TEXT, ConfigError, "bptt must be >= 1, got 0"),
    ({"weight_drop": 1.0}, TEXT, ConfigError, r"weight_drop must be a probability in \[0, 1\)"),
    ({"cell": "gru"}, TEXT, ConfigError, "unknown cell='gru'"),
    ({"training": {}}, TEXT, ConfigError, "training must be a lstmkit.train.TrainConfig"),
    ({"forget_bias": float("nan")}, TEXT, ConfigError, "forget_bias must be a finite number or None"),
    ({"forget_bias": "1"}, TEXT, ConfigError, "forget_bias must be a finite number or None"),
    ({"cell": "vanilla", "forget_bias": 1.0}, TEXT, ConfigError, "cell='vanilla' has no forget gate"),
    ({}, " \n ", DataError, "the text is empty"),
    ({}, 42, ConfigError, "expected a text or a list of texts, got int"),
    ({"streams": 32}, "abc" * 10, DataError, "the training text has 27 tokens, too few for 32 streams"),
])
def test_fit_errors(changes, text, error, message):
    with pytest.raises(error, match=message):
        language_model(**changes).fit(text)


def test_a_list_of_texts_is_read_as_one_text_with_blank_lines_between():
    model = language_model(val_fraction=0.0, training=FAST.replace(max_epochs=1)).fit(["abc" * 20, "cab" * 20])
    assert "\n" in model.tokenizer_.pieces
    assert model.fit_result_.monitor == "train_loss"  # nothing was held out
