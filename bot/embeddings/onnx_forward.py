"""The all-MiniLM-L6-v2 forward pass as an 8-bit ONNX Runtime model, for fast CPU inference.

The graph is built here from the same weights as the NumPy reference pass in
``minilm`` (nothing is downloaded or converted elsewhere), then its matrix
products are quantised to 8-bit integers with per-output-channel scales (ONNX
Runtime's dynamic quantisation). On the 2-core server one FAQ-sized message
takes about 2 ms instead of 8-12 ms in TensorFlow; the vectors stay within a
cosine of about 0.99 of the float32 reference.

Dynamic quantisation scales each input by its own range, so a text's vector
would depend on the other texts in its batch and on padding. Texts are
therefore always run one at a time and unpadded: a text gets the same vector
in training, in evaluation and in the server.
"""

from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

import numpy as np

if TYPE_CHECKING:
    from bot.embeddings.minilm import BertWeights

# One message is too little work to split across cores, and the server has
# other requests to serve on the second one.
ONNX_THREADS = 1

_OPSET = 17
_IR_VERSION = 8


class OnnxInt8Bert:
    """Embeds word-piece ids with an 8-bit ONNX Runtime session built from the weights.

    Building one imports onnx and onnxruntime, writes the model to a temporary
    folder to quantise it (about 2 s) and keeps only the session.
    """

    def __init__(self, weights: BertWeights) -> None:
        """Build the float32 graph, quantise its matrix products and open a one-thread session."""
        import onnxruntime as ort

        self.hidden_size = weights.hidden_size
        quantised = _quantised_model_bytes(weights)
        # Identifies the exact arithmetic, so a trained classifier can check it
        # is served by the encoder it was trained with.
        self.fingerprint = hashlib.sha256(quantised).hexdigest()
        options = ort.SessionOptions()
        options.intra_op_num_threads = ONNX_THREADS
        options.inter_op_num_threads = ONNX_THREADS
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(quantised, options, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Return unit-length float32 vectors, shape (batch, hidden_size), for padded ids and mask."""
        rows: List[np.ndarray] = []
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            length = max(int(np.count_nonzero(mask)), 1)
            feed = {
                "input_ids": np.ascontiguousarray(ids[:length], dtype=np.int64)[None, :],
                "attention_mask": np.ones((1, length), dtype=np.float32),
            }
            rows.append(self._session.run(None, feed)[0][0])
        if not rows:
            return np.zeros((0, self.hidden_size), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def warm_up(self, max_seq_length: int) -> None:
        """Run one short and one long text so that first-call set-up happens now."""
        for length in (8, min(32, max_seq_length)):
            self(np.zeros((1, length), dtype=np.int64), np.ones((1, length), dtype=np.float32))


def _quantised_model_bytes(weights: BertWeights) -> bytes:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = build_float_model(weights)
    with tempfile.TemporaryDirectory(prefix="minilm-onnx-") as folder:
        source = Path(folder) / "minilm.onnx"
        target = Path(folder) / "minilm.int8.onnx"
        onnx.save(model, str(source))
        # The quantiser logs a line per tensor to the root logger and warns about
        # its own deprecated calls: none of it is news to whoever runs the server.
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                # Only the matrix products: they are nearly all of the arithmetic,
                # and the embedding lookup stays exact.
                quantize_dynamic(
                    source,
                    target,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                )
        finally:
            root.setLevel(level)
        return target.read_bytes()


def build_float_model(weights: BertWeights) -> Any:
    """Return the float32 forward pass as an ONNX ModelProto (inputs: input_ids int64, attention_mask float)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hidden = weights.hidden_size
    heads = weights.num_heads
    head_size = hidden // heads
    initializers: List[Any] = []
    nodes: List[Any] = []
    counter = [0]

    def constant(name: str, array: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(op_type: str, inputs: List[str], **attributes: Any) -> str:
        counter[0] += 1
        output = f"{op_type.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        return output

    def layer_norm(x: str, weight: str, bias: str) -> str:
        return op("LayerNormalization", [x, weight, bias], axis=-1, epsilon=weights.layer_norm_eps)

    def scalar(name: str, value: float) -> str:
        return constant(name, np.array(value, dtype=np.float32))

    def ints(name: str, values: List[int]) -> str:
        return constant(name, np.array(values, dtype=np.int64))

    def affine(x: str, name: str, weight: np.ndarray, bias: np.ndarray) -> str:
        product = op("MatMul", [x, constant(f"{name}.weight", weight.astype(np.float32))])
        return op("Add", [product, constant(f"{name}.bias", bias.astype(np.float32))])

    one = scalar("one", 1.0)
    zero_index = ints("zero_index", [0])
    one_index = ints("one_index", [1])
    two_index = ints("two_index", [2])
    split_heads = ints("split_heads", [0, 0, heads, head_size])
    join_heads = ints("join_heads", [0, 0, hidden])

    # Embeddings: word piece + position + the single token type, then LayerNorm.
    length = op("Slice", [op("Shape", ["input_ids"]), one_index, two_index, zero_index])
    position_table = constant("position_embeddings", weights.position_embeddings.astype(np.float32))
    positions = op("Slice", [position_table, zero_index, length, zero_index])
    x = op("Gather", [constant("word_embeddings", weights.word_embeddings.astype(np.float32)), "input_ids"])
    token_type = weights.token_type_embedding.astype(np.float32).reshape(hidden)
    x = op("Add", [op("Add", [x, positions]), constant("token_type_embedding", token_type)])
    x = layer_norm(
        x,
        constant("embedding_norm.weight", weights.embedding_norm_weight),
        constant("embedding_norm.bias", weights.embedding_norm_bias),
    )
    # Padded keys get the most negative float, as in the NumPy pass.
    key_bias = op(
        "Unsqueeze",
        [
            op("Mul", [op("Sub", [one, "attention_mask"]), scalar("lowest", float(np.finfo(np.float32).min))]),
            ints("head_and_query_axes", [1, 2]),
        ],
    )
    scale = scalar("attention_scale", 1.0 / math.sqrt(head_size))
    half = scalar("half", 0.5)
    inverse_sqrt2 = scalar("inverse_sqrt2", 1.0 / math.sqrt(2.0))

    for index, layer in enumerate(weights.layers):
        name = f"layer{index}"
        query_w, key_w, value_w = np.split(layer.qkv_weight, 3, axis=1)
        query_b, key_b, value_b = np.split(layer.qkv_bias, 3)

        def heads_of(projection: str, perm: List[int]) -> str:
            return op("Transpose", [op("Reshape", [projection, split_heads])], perm=perm)

        query = heads_of(affine(x, f"{name}.query", query_w, query_b), [0, 2, 1, 3])
        key = heads_of(affine(x, f"{name}.key", key_w, key_b), [0, 2, 3, 1])
        value = heads_of(affine(x, f"{name}.value", value_w, value_b), [0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [query, key]), scale]), key_bias])
        attention = op("Softmax", [scores], axis=-1)
        context = op("Reshape", [op("Transpose", [op("MatMul", [attention, value])], perm=[0, 2, 1, 3]), join_heads])
        attended = affine(
            context, f"{name}.attention_output", layer.attention_output_weight, layer.attention_output_bias
        )
        x = layer_norm(
            op("Add", [attended, x]),
            constant(f"{name}.attention_norm.weight", layer.attention_norm_weight),
            constant(f"{name}.attention_norm.bias", layer.attention_norm_bias),
        )
        inner = affine(x, f"{name}.intermediate", layer.intermediate_weight, layer.intermediate_bias)
        # Exact GELU, x * Phi(x), as BERT's hidden_act = "gelu".
        gelu = op("Mul", [op("Mul", [inner, half]), op("Add", [one, op("Erf", [op("Mul", [inner, inverse_sqrt2])])])])
        out = affine(gelu, f"{name}.output", layer.output_weight, layer.output_bias)
        x = layer_norm(
            op("Add", [out, x]),
            constant(f"{name}.output_norm.weight", layer.output_norm_weight),
            constant(f"{name}.output_norm.bias", layer.output_norm_bias),
        )

    # Mean pooling over real tokens, then L2 normalisation.
    mask = op("Unsqueeze", ["attention_mask", two_index])
    summed = op("ReduceSum", [op("Mul", [x, mask]), one_index], keepdims=0)
    counts = op("Max", [op("ReduceSum", ["attention_mask", one_index], keepdims=1), scalar("min_count", 1e-9)])
    pooled = op("Div", [summed, counts])
    norms = op("Max", [op("Sqrt", [op("ReduceSumSquare", [pooled], axes=[1], keepdims=1)]), scalar("min_norm", 1e-12)])
    nodes.append(helper.make_node("Div", [pooled, norms], ["sentence_embedding"]))

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="bot.embeddings")
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model

