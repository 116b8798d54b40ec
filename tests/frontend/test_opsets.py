"""Old opsets: upgraded on import by onnx's version converter, or, where that fails, read in
their old forms by the converters themselves. ONNX Runtime is the oracle (onnx.reference
applies new semantics to some old ops, see test_numeric)."""
from __future__ import annotations

import numpy as np
import pytest

from fastcnn.frontend import import_onnx, prepare, read_onnx
from tests.frontend.helpers import import_text, onnxruntime_outputs, parse, relative_error, run_graph

TOLERANCE = 1e-5  # float32 against ONNX Runtime


def weights(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# A Caffe2-era classifier: opset 9, every weight also listed as a graph input, Sum of
# three inputs, Reshape to a stored shape, inference Dropout, 2-D Softmax.
CAFFE2_STYLE = """<ir_version: 3, opset_import: ["" : 9]>
g (float[1, 3, 8, 8] data, float[4, 3, 3, 3] w1, float[4] b1, float[4] s, float[4] t, float[4] m, float[4] v,
   int64[2] shape, float[5, 16] fc_w, float[5] fc_b) => (float[1, 5] prob) {
    c = Conv <kernel_shape = [3, 3], pads = [1, 1, 1, 1]> (data, w1, b1)
    n = BatchNormalization <epsilon = 0.001> (c, s, t, m, v)
    r = Relu (n)
    sum = Sum (r, n, c)
    p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (sum)
    g = AveragePool <kernel_shape = [2, 2], strides = [2, 2]> (p)
    flat = Reshape (g, shape)
    d = Dropout <ratio = 0.5> (flat)
    fc = Gemm <transB = 1> (d, fc_w, fc_b)
    prob = Softmax (fc)
}"""
CAFFE2_WEIGHTS = {"w1": weights(4, 3, 3, 3), "b1": weights(4, seed=1), "s": weights(4, seed=2),
                  "t": weights(4, seed=3), "m": weights(4, seed=4),
                  "v": np.abs(weights(4, seed=5)) + 0.5, "shape": np.array([1, 16]),
                  "fc_w": weights(5, 16, seed=6), "fc_b": weights(5, seed=7)}


def test_caffe2_style_opset9_model_is_upgraded_and_matches() -> None:
    model = parse(CAFFE2_STYLE, **CAFFE2_WEIGHTS)
    assert prepare.default_opset(prepare.upgrade(model)) == prepare.TARGET_OPSET
    graph = import_onnx(read_onnx(model))
    assert [v.name for v in graph.inputs] == ["data"]
    x = weights(1, 3, 8, 8, seed=8)
    assert relative_error(run_graph(graph, [x])[0], onnxruntime_outputs(model, [x])[0]) < TOLERANCE


OLD_FORMS = {  # op forms that changed since: attributes that became inputs, old semantics
    "softmax_opset11": ("g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y) { y = Softmax (x) }", 11),
    "clip_opset6": ("g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y) { y = Clip <min = -0.3, max = 0.4> (x) }", 6),
    "pad_opset10": ("g (float[2, 3, 4, 4] x) => (float[2, 3, 5, 7] y) "
                    "{ y = Pad <mode = \"edge\", pads = [0, 0, 1, 2, 0, 0, 0, 1]> (x) }", 10),
    "squeeze_unsqueeze_opset11": ("g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y) "
                                  "{ u = Unsqueeze <axes = [1]> (x) \n y = Squeeze <axes = [1]> (u) }", 11),
    "reduce_opset11": ("g (float[2, 3, 4, 4] x) => (float[2, 1, 4] y) "
                       "{ m = ReduceMean <axes = [1]> (x) \n y = ReduceSum <axes = [-1], keepdims = 0> (m) }", 11),
    "dropout_batchnorm_opset9": ("g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y) "
                                 "{ d = Dropout <ratio = 0.2> (x) \n y = BatchNormalization (d, s, s, s, s) }", 9),
    "slice_shape_opset9": ("g (float[2, 3, 4, 4] x) => (float[2, 3, 16] y) { sh = Shape (x) \n"
                           " hw = Slice <starts = [0], ends = [2]> (sh) \n"
                           " minus = Constant <value = int64[1] {-1}> () \n"
                           " t = Concat <axis = 0> (hw, minus) \n y = Reshape (x, t) }", 9),
}


@pytest.mark.parametrize("name", sorted(OLD_FORMS))
@pytest.mark.parametrize("converted", [True, False], ids=["upgraded", "as-is"])
def test_old_forms_with_and_without_the_version_converter(name: str, converted: bool,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    body, opset = OLD_FORMS[name]
    text = f'<ir_version: 7, opset_import: ["" : {opset}]>\n{body}'
    extra = {"s": np.abs(weights(3)) + 0.5} if "BatchNormalization" in body else {}
    if not converted:
        def refuse(model, target):
            raise RuntimeError("no adapter")

        monkeypatch.setattr(prepare.version_converter, "convert_version", refuse)
    graph = import_text(text, **extra)
    model = parse(text, **extra)
    x = weights(2, 3, 4, 4, seed=9)
    assert relative_error(run_graph(graph, [x])[0], onnxruntime_outputs(model, [x])[0]) < TOLERANCE
