"""Tokenizers, the built-in text data, variable-length batches and the .ts reader."""

import json

import numpy as np
import pytest
import torch

from lstmkit.data import corpus
from lstmkit.data.sequences import IGNORE, BucketSampler, SequenceDataset, last_states, pack, pad, unpack
from lstmkit.data.tokenizers import (
    PAD,
    UNK,
    BPETokenizer,
    CharTokenizer,
    VocabularyTokenizer,
    WordTokenizer,
    make_tokenizer,
    tokenizer_from_dict,
)
from lstmkit.data.ts_format import read_ts
from lstmkit.errors import ConfigError, DataError, InputTypeError, ModelFileError, ShapeError
from lstmkit.tasks.inputs import SequenceEncoder, input_kind

# -- tokenizers -------------------------------------------------------------------------------


def test_char_tokenizer_vocabulary_order_and_round_trip():
    tok = CharTokenizer().fit(["abca", "cab"])
    # a: 3, b: 2, c: 2 -> by count, then by code point
    assert tok.pieces == [PAD, UNK, "a", "b", "c"]
    assert tok.encode("cab") == [4, 2, 3]
    assert tok.decode(tok.encode("abc")) == "abc"


def test_unknown_characters_replaced_or_reported_with_position():
    tok = CharTokenizer().fit(["hello world"])
    assert tok.encode("hex") == [tok._index["h"], tok._index["e"], 1]
    with pytest.raises(DataError, match=r"'x' at character 2 is not in the char vocabulary"):
        tok.encode("hex", unknown="error")
    assert tok.unknown_pieces("hexz") == [("x", 2), ("z", 3)]


def test_min_freq_and_max_vocab():
    tok = WordTokenizer(min_freq=2).fit(["a a b", "a c c"])
    assert tok.pieces == [PAD, UNK, "a", "c"]
    tok = WordTokenizer(max_vocab=3).fit(["a a b", "a c c"])
    assert tok.pieces == [PAD, UNK, "a"]
    with pytest.raises(ConfigError, match="max_vocab must be >= 3"):
        WordTokenizer(max_vocab=2)
    with pytest.raises(DataError, match="empty"):
        CharTokenizer().fit(["", ""])


def test_word_tokenizer_splits_punctuation_and_lowercases():
    tok = WordTokenizer().fit(["Hello, World!"])
    assert tok.decode(tok.encode("hello world!")) == "hello world !"
    assert [p for p, _ in tok.split("It's 3.5")] == ["it", "'", "s", "3", ".", "5"]


def test_vocabulary_tokenizer_for_pre_split_tokens():
    tok = VocabularyTokenizer().fit([["The", "cat"], ["the", "cat"]])
    assert tok.encode(["cat", "dog"]) == [tok._index["cat"], 1]


@pytest.mark.parametrize("kind", ["char", "word", "bpe", "vocab"])
def test_tokenizers_save_to_json_and_back(kind):
    texts = ["the theme of the thesis", "then the other"] * 5
    if kind == "vocab":
        texts = [t.split() for t in texts]
    tok = make_tokenizer(kind, **({"vocab_size": 280} if kind == "bpe" else {})).fit(texts)
    data = json.loads(json.dumps(tok.to_dict()))
    again = tokenizer_from_dict(data)
    sample = texts[0]
    assert again.encode(sample) == tok.encode(sample)
    assert again.vocab_size == tok.vocab_size


def test_bpe_is_lossless_on_unseen_text():
    tok = BPETokenizer(vocab_size=300).fit(["the theme of the thesis"] * 5)
    text = "Zebras ü 42!"
    assert tok.decode(tok.encode(text)) == text
    assert tok.unknown_pieces(text) == []


def test_tokenizer_errors():
    with pytest.raises(ConfigError, match="unknown tokenizer 'sentencepiece'"):
        make_tokenizer("sentencepiece")
    with pytest.raises(ModelFileError, match="unknown saved tokenizer kind"):
        tokenizer_from_dict({"kind": "nope"})
    with pytest.raises(ConfigError, match="no vocabulary yet"):
        CharTokenizer().encode("abc")
    with pytest.raises(ConfigError, match=">= 260"):
        BPETokenizer(vocab_size=100)


# -- built-in text ----------------------------------------------------------------------------


def test_docstring_corpus_is_deterministic_and_sized():
    a = corpus.docstrings(max_chars=50_000)
    assert 50_000 <= len(a) < 80_000
    assert a == corpus.docstrings(max_chars=50_000)
    assert a.startswith(corpus.docstrings(max_chars=10_000)[:5000])


def test_topics_and_code_tagging_tables():
    topics = corpus.docstring_topics(max_per_topic=20)
    assert set(topics.label) <= set(corpus.TOPICS) and len(set(topics.label)) >= 5
    assert (topics.groupby("label").size() <= 20).all()
    tags = corpus.code_characters(max_lines=200)
    assert len(tags) == 200
    for text, tag_line in zip(tags.text, tags.tags):
        labels = tag_line.split()
        assert len(labels) == len(text) and set(labels) <= set(corpus.TAGS)
    # a comment is tagged as a comment to the end of the line
    line = next(t for t in tags.itertuples() if "#" in t.text and "comment" in t.tags)
    labels = line.tags.split()
    assert labels[line.text.index("#"):] == ["comment"] * (len(line.text) - line.text.index("#"))


# -- variable-length batches ------------------------------------------------------------------


def test_pad_pack_unpack_round_trip_and_errors():
    seqs = [torch.randn(3, 2), torch.randn(1, 2), torch.randn(5, 2)]
    padded, lengths = pad(seqs)
    assert padded.shape == (3, 5, 2) and lengths.tolist() == [3, 1, 5]
    assert torch.equal(padded[1, 1:], torch.zeros(4, 2))
    assert torch.equal(unpack(pack(padded, lengths)), padded)
    with pytest.raises(DataError, match="sequence 1 of the batch is empty"):
        pad([torch.ones(2), torch.ones(0)])


def test_packed_lstm_final_state_is_at_each_true_last_step():
    import lstmkit.nn as lnn

    lstm = lnn.LSTM(2, 4, batch_first=True, bidirectional=True)
    seqs = [torch.randn(3, 2), torch.randn(5, 2)]
    padded, lengths = pad(seqs)
    _, (h_n, _) = lstm(pack(padded, lengths))
    states = last_states(h_n, 1, True)
    for i, s in enumerate(seqs):
        out, _ = lstm(s.unsqueeze(0))  # the sequence alone, no padding
        torch.testing.assert_close(states[i, :4], out[0, -1, :4])  # forward: its last step
        torch.testing.assert_close(states[i, 4:], out[0, 0, 4:])  # reverse: back at its first step


def test_sequence_dataset_labels_per_sequence_and_per_step():
    seqs = [torch.tensor([1, 2, 3]), torch.tensor([4])]
    padded, lengths, labels = SequenceDataset(seqs, [1, 0]).__getitems__([0, 1])
    assert labels.tolist() == [1, 0]
    _, _, steps = SequenceDataset(seqs, [torch.tensor([0, 1, 2]), torch.tensor([3])]).__getitems__([0, 1])
    assert steps.tolist() == [[0, 1, 2], [3, IGNORE, IGNORE]]
    with pytest.raises(ShapeError, match="sequence 0 has 3 steps but 2 labels"):
        SequenceDataset(seqs, [torch.tensor([0, 1]), torch.tensor([3])])
    with pytest.raises(ShapeError, match="2 sequences but 1 labels"):
        SequenceDataset(seqs, [1])


def test_bucket_sampler_groups_lengths_and_covers_everything():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000).tolist()
    sampler = BucketSampler(lengths, batch_size=32, seed=1, pool=10)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    batches = [order[i:i + 32] for i in range(0, 1000, 32)]
    spread = np.mean([np.ptp([lengths[i] for i in b]) for b in batches])
    random_spread = np.mean([np.ptp(rng.choice(lengths, 32)) for _ in range(100)])
    assert spread < random_spread / 3  # neighbours have similar lengths
    sampler.set_epoch(1)
    assert list(sampler) != order
    sampler.set_epoch(0)
    assert list(sampler) == order


# -- the .ts format ---------------------------------------------------------------------------


def test_read_ts_univariate_multivariate_unequal(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text("# a comment\n@problemName toy\n@timeStamps false\n@univariate false\n@equalLength false\n"
                    "@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,?,3,4:5,6,7,8:b\n")
    data = read_ts(path)
    assert len(data) == 2 and data.labels == ["a", "b"] and data.class_labels == ["a", "b"]
    assert data.series[0].shape == (3, 2) and data.series[1].shape == (4, 2)
    assert np.isnan(data.series[1][1, 0]) and data.series[1][3, 1] == 8


def test_read_ts_errors(tmp_path):
    empty = tmp_path / "empty.ts"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_ts(empty)
    binary = tmp_path / "bad.ts"
    binary.write_bytes(b"@data\n1,2:\xff\n")
    with pytest.raises(DataError, match="byte 0xff at offset 10"):
        read_ts(binary)
    stamped = tmp_path / "stamped.ts"
    stamped.write_text("@timeStamps true\n@data\n(1,2)\n")
    with pytest.raises(DataError, match="time stamps"):
        read_ts(stamped)
    broken = tmp_path / "broken.ts"
    broken.write_text("@classLabel true a\n@data\n1,x,3:a\n")
    with pytest.raises(DataError, match="line 3: a value is not a number"):
        read_ts(broken)


# -- encoding inputs --------------------------------------------------------------------------


def test_input_kinds():
    assert input_kind(["a text"]) == "text"
    assert input_kind([["a", "b"]]) == "tokens"
    assert input_kind(np.zeros((2, 3))) == "numeric"
    assert input_kind([[1.0, 2.0]]) == "numeric"
    with pytest.raises(InputTypeError, match="single string"):
        input_kind("text")


def test_numeric_encoder_standardises_and_fills_missing():
    train = [np.array([[0.0, 10.0], [2.0, 10.0]]), np.array([[4.0, 10.0]])]
    encoder = SequenceEncoder().fit(train)
    encoded = encoder.encode([np.array([[2.0, np.nan]])])[0]
    assert encoded.tolist() == [[0.0, 0.0]]  # the mean; a missing value becomes the mean
    with pytest.raises(ShapeError, match="3 channels; the model was fitted on 2"):
        encoder.encode([np.zeros((2, 3))])
    with pytest.raises(InputTypeError, match="fitted on numeric inputs but got text"):
        encoder.encode(["abc"])


def test_length_cap_error_or_truncate():
    encoder = SequenceEncoder("char", max_length=3).fit(["abcdef"])
    with pytest.raises(DataError, match="sequence 0 has 6 steps, over the cap max_length=3"):
        encoder.encode(["abcdef"])
    truncating = SequenceEncoder("char", max_length=3, too_long="truncate").fit(["abcdef"])
    assert len(truncating.encode(["abcdef"])[0]) == 3
    again = SequenceEncoder.from_dict(json.loads(json.dumps(truncating.to_dict())))
    assert again.encode(["abcdef"])[0].tolist() == truncating.encode(["abcdef"])[0].tolist()
