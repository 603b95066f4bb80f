"""The all-MiniLM-L6-v2 forward pass as one TensorFlow graph, for fast CPU inference.

NumPy's bundled OpenBLAS runs this model's small matrix products on generic SSE3
kernels; TensorFlow's oneDNN kernels use the CPU's AVX-512 units, so the same
arithmetic runs several times faster. The graph is traced once, for any batch
size and length, and repeats the NumPy reference pass in ``minilm`` step by step.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from bot.embeddings.minilm import BertWeights

logger = logging.getLogger(__name__)

# Inputs are padded to a multiple of this many word pieces, so that only a few
# distinct shapes reach oneDNN, which prepares its kernels once per shape.
LENGTH_MULTIPLE = 8

# Single texts up to this many word pieces (nearly every chat message) have
# their kernels prepared by warm_up, so no user waits for that.
WARM_UP_MAX_LENGTH = 32

# One sentence is too little work to split across cores: on the 2-core server a
# second thread made single messages about twice as slow whenever the other
# core was busy. Training can ask for more through Rasa's
# TF_INTRA_OP_PARALLELISM_THREADS, which is applied first and then respected.
TENSORFLOW_THREADS = 1

_PAD_ID = 0


class TensorFlowBert:
    """Embeds padded batches of word-piece ids with TensorFlow; same results as the NumPy pass.

    Building one imports TensorFlow and copies the weights into it; nothing
    happens at import time.
    """

    def __init__(self, weights: BertWeights) -> None:
        """Copy the weights into TensorFlow and trace the graph once for all input shapes."""
        import tensorflow as tf

        _limit_threads(tf)
        self.hidden_size = weights.hidden_size
        self._max_length = int(weights.position_embeddings.shape[0])
        spec = tf.TensorSpec([None, None], tf.int32)
        graph = tf.function(_build_graph(tf, weights), input_signature=[spec, spec], autograph=False)
        # Calling the concrete function directly skips tf.function's argument matching on every call.
        self._embed = graph.get_concrete_function()
        self._to_tensor = tf.convert_to_tensor

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Return unit-length float32 vectors, shape (batch, hidden_size), for padded ids and mask."""
        batch, length = input_ids.shape
        width = min(-(-length // LENGTH_MULTIPLE) * LENGTH_MULTIPLE, self._max_length)
        ids = np.full((batch, width), _PAD_ID, dtype=np.int32)
        mask = np.zeros((batch, width), dtype=np.int32)
        ids[:, :length] = input_ids
        mask[:, :length] = attention_mask
        vectors = self._embed(self._to_tensor(ids), self._to_tensor(mask))
        return np.asarray(vectors.numpy(), dtype=np.float32)

    def warm_up(self, max_seq_length: int) -> None:
        """Run one text of each common length, so graph optimisation and kernel setup happen now."""
        # Lengths 1, 9, 17, ... each fall in the next padding bucket.
        for length in range(1, min(WARM_UP_MAX_LENGTH, max_seq_length) + 1, LENGTH_MULTIPLE):
            self(np.full((1, length), _PAD_ID, dtype=np.int32), np.ones((1, length), dtype=np.int32))


def _limit_threads(tf: Any) -> None:
    """Give TensorFlow one thread, unless it is already running or its threads were chosen."""
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() or threading.get_inter_op_parallelism_threads():
        return
    try:
        threading.set_intra_op_parallelism_threads(TENSORFLOW_THREADS)
        threading.set_inter_op_parallelism_threads(TENSORFLOW_THREADS)
    except RuntimeError:
        # TensorFlow already ran something, so its thread pools exist and stay as they are.
        logger.debug("TensorFlow is already initialised; keeping its thread settings")
        return
    logger.debug("TensorFlow limited to %d thread(s) for sentence embeddings", TENSORFLOW_THREADS)


def _build_graph(tf: Any, weights: BertWeights) -> Any:
    """Return a function of (ids, mask) that runs the forward pass over the weights as captured constants."""
    hidden = weights.hidden_size
    heads = weights.num_heads
    head_size = hidden // heads
    scale = 1.0 / math.sqrt(head_size)
    eps = weights.layer_norm_eps
    lowest = float(np.finfo(np.float32).min)

    def constant(array: np.ndarray) -> Any:
        # tf.constant copies the array yet keeps it alive; tf.identity hands back
        # the copy alone, so the NumPy weights (about 90 MB) can be freed.
        return tf.identity(tf.constant(array, dtype=tf.float32))

    word_embeddings = constant(weights.word_embeddings)
    position_embeddings = constant(weights.position_embeddings)
    token_type_embedding = constant(weights.token_type_embedding)
    embedding_norm = (constant(weights.embedding_norm_weight), constant(weights.embedding_norm_bias))
    layers = [{name: constant(getattr(layer, name)) for name in layer.__dataclass_fields__} for layer in weights.layers]

    def layer_norm(x: Any, weight: Any, bias: Any) -> Any:
        centred = x - tf.reduce_mean(x, axis=-1, keepdims=True)
        variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
        return centred / tf.sqrt(variance + eps) * weight + bias

    def gelu(x: Any) -> Any:
        # Exact GELU, x * Phi(x), as BERT's hidden_act = "gelu".
        return x * 0.5 * (1.0 + tf.math.erf(x * (1.0 / math.sqrt(2.0))))

    def embed(input_ids: Any, attention_mask: Any) -> Any:
        batch = tf.shape(input_ids)[0]
        length = tf.shape(input_ids)[1]
        mask = tf.cast(attention_mask, tf.float32)

        x = tf.gather(word_embeddings, input_ids) + position_embeddings[:length] + token_type_embedding
        x = layer_norm(tf.reshape(x, [batch * length, hidden]), *embedding_norm)
        # Padded keys get the most negative float, as in the NumPy pass, so their
        # softmax weight is exactly zero and padding cannot change any result.
        key_bias = ((1.0 - mask) * lowest)[:, None, None, :]

        for layer in layers:
            qkv = tf.matmul(x, layer["qkv_weight"]) + layer["qkv_bias"]
            qkv = tf.transpose(tf.reshape(qkv, [batch, length, 3, heads, head_size]), [2, 0, 3, 1, 4])
            query, key, value = qkv[0], qkv[1], qkv[2]
            scores = tf.matmul(query, key, transpose_b=True) * scale + key_bias
            attention = tf.nn.softmax(scores, axis=-1)
            context = tf.transpose(tf.matmul(attention, value), [0, 2, 1, 3])
            context = tf.reshape(context, [batch * length, hidden])

            attended = tf.matmul(context, layer["attention_output_weight"]) + layer["attention_output_bias"]
            x = layer_norm(attended + x, layer["attention_norm_weight"], layer["attention_norm_bias"])

            inner = gelu(tf.matmul(x, layer["intermediate_weight"]) + layer["intermediate_bias"])
            out = tf.matmul(inner, layer["output_weight"]) + layer["output_bias"]
            x = layer_norm(out + x, layer["output_norm_weight"], layer["output_norm_bias"])

        x = tf.reshape(x, [batch, length, hidden])
        summed = tf.reduce_sum(x * mask[:, :, None], axis=1)
        counts = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1e-9)
        pooled = summed / counts
        norms = tf.maximum(tf.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled / norms

    return embed
