"""Small hostile ONNX files (all pass onnx's full checker): each imports correctly or is refused
with a FastCNNError, quickly and in bounded memory (issue 10).

Budgets (folded tensors, symbolic names, external data, linear edits and verification),
scoping of inlined If branches, symbolic indices, and initializers fastcnn cannot use.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fastcnn.errors import InvalidModelError, UnsupportedModelError
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.frontend.folding import TENSOR_FLOOR, TOTAL_FLOOR, FoldBudget
from fastcnn.ir import Graph, verify
from tests.frontend.helpers import onnxruntime_outputs, parse, run_graph


def text(body: str, opset: int = 17) -> str:
    return f'<ir_version: 8, opset_import: ["" : {opset}]>\n{body}'


def model(nodes: list, inputs: list, outputs: list, initializers: list = (), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)  # every file here is one onnx accepts
    return m


def load(m: onnx.ModelProto) -> Graph:
    return import_onnx(read_onnx(m))


def timed_refusal(m: onnx.ModelProto, error: type, match: str, seconds: float = 2.0) -> Exception:
    start = time.perf_counter()
    with pytest.raises(error, match=match) as info:
        load(m)
    assert time.perf_counter() - start < seconds
    return info.value


# -- budgets: folded constants ---------------------------------------------------------
def test_a_huge_range_is_refused_before_it_is_computed() -> None:
    """196 bytes folding Range(0, 5e8) reached 6 GB; the size is checked from the count first."""
    error = timed_refusal(parse(text("""
    g (float[N, 3] x) => (float[N, 3] y) {
        start = Constant <value = int64 {0}> ()
        limit = Constant <value = int64 {500000000}> ()
        step = Constant <value = int64 {1}> ()
        r = Range (start, limit, step)
        n = Size (r)
        f = Cast <to = 1> (n)
        y = Add (x, f)
    }""")), UnsupportedModelError, "500000000 elements")
    assert error.unsupported[0][0] == "Range" and "budget" in str(error)


def test_a_huge_constant_of_shape_and_expand_are_refused() -> None:
    for op in ("c = ConstantOfShape (shape)", "one = Constant <value = float {1}> ()\n c = Expand (one, shape)"):
        timed_refusal(parse(text(f"""
        g (float[N, 3] x) => (float[N, 3] y) {{
            shape = Constant <value = int64[2] {{100000, 100000}}> ()
            {op}
            s = ReduceSum <keepdims = 0> (c)
            y = Add (x, s)
        }}""")), UnsupportedModelError, "10000000000 elements")


def test_the_budget_grows_with_the_weights_and_counts_every_fold() -> None:
    assert FoldBudget(0).per_tensor == TENSOR_FLOOR and FoldBudget(0).total == TOTAL_FLOOR
    big = FoldBudget(1000 << 20)
    assert big.per_tensor == 4000 << 20 and big.total == 16000 << 20
    node = helper.make_node("Tile", ["a", "b"], ["c"], name="tiles")
    budget = FoldBudget(0)
    for _ in range(TOTAL_FLOOR // TENSOR_FLOOR):
        budget.claim(node, (TENSOR_FLOOR // 4,), np.float32)  # each within the per-tensor budget
    with pytest.raises(UnsupportedModelError, match="'tiles'.*in all"):
        budget.claim(node, (1,), np.float32)
    weights = model([helper.make_node("Add", ["x", "w"], ["y"])],
                    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                    [numpy_helper.from_array(np.zeros((1 << 20, 4), np.float32)[:1], "w")])
    assert FoldBudget.for_model(weights).per_tensor == TENSOR_FLOOR  # 16 bytes of weights: the floor


def test_folds_run_on_numpy_never_onnx_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A MaxPool folded through onnx.reference was still loading after 90 s; no fold uses it now."""
    import onnx.reference

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("onnx.reference used at import")

    monkeypatch.setattr(onnx.reference.ReferenceEvaluator, "__init__", refuse)
    m = parse(text("""
    g (float[1, 1, 8, 8] x) => (float[1, 1, 8, 8] y) {
        shape = Constant <value = int64[4] {1, 1, 600, 600}> ()
        c = ConstantOfShape <value = float[1] {2}> (shape)
        p = MaxPool <kernel_shape = [75, 75], strides = [75, 75]> (c)
        y = Add (x, p)
    }"""))
    start = time.perf_counter()
    graph = load(m)
    assert time.perf_counter() - start < 2.0
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run_graph(graph, [x])[0], onnxruntime_outputs(m, [x])[0], rtol=1e-6)


def test_folded_constant_arithmetic_matches_onnxruntime() -> None:
    """The NumPy fold kernels follow ONNX: truncating integer Div, Mod's sign, clamped Slice..."""
    m = parse(text("""
    g (float[2, 6] x) => (float[2, 6] y) {
        a = Constant <value = int64[6] {-7, 7, -7, 7, 9, -9}> ()
        b = Constant <value = int64[6] {2, -2, -2, 2, 4, 4}> ()
        q = Div (a, b)
        m = Mod (a, b)
        s0 = Constant <value = int64[1] {-1}> ()
        s1 = Constant <value = int64[1] {-1000}> ()
        s2 = Constant <value = int64[1] {0}> ()
        rev = Slice (a, s0, s1, s2, s0)
        t = Concat <axis = 0> (q, m)
        f = Cast <to = 1> (t)
        two = Constant <value = int64[2] {2, -1}> ()
        g = Reshape (f, two)
        shape = Constant <value = int64[2] {2, 6}> ()
        half = Slice (g, s2, s0, s2)
        e = Expand (half, shape)
        big = Max (e, g)
        k = Sqrt (big)
        rf = Cast <to = 1> (rev)
        bb = Greater (b, s2)
        w0 = Where (bb, k, rf)
        r0 = Constant <value = float {0.5}> ()
        r1 = Constant <value = float {3.25}> ()
        r2 = Constant <value = float {0.5}> ()
        r = Range (r0, r1, r2)
        z = ReduceSum <keepdims = 0> (r)
        w = Add (w0, z)
        y = Add (x, w)
    }"""))
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    graph = load(m)
    assert [n.op for n in graph.nodes] == ["add"]
    np.testing.assert_allclose(run_graph(graph, [x])[0], onnxruntime_outputs(m, [x])[0], rtol=1e-6, equal_nan=True)


# -- budgets: symbolic names --------------------------------------------------------------
def test_a_batch_added_to_itself_many_times_folds_and_the_wrong_reshape_is_refused() -> None:
    """Each Add once doubled the symbol's name (2^K characters, then a raw MemoryError); the IR's
    algebra writes N*2^40, and a reshape of N x 3 to (N*2^40) x 3 is refused, not run as -1."""
    lines = ["s = Shape <end = 1> (x)"] + [f"s{i + 1} = Add ({'s' if i == 0 else f's{i}'}, "
                                           f"{'s' if i == 0 else f's{i}'})" for i in range(40)]
    body = "\n        ".join(lines)
    error = timed_refusal(parse(text(f"""
    g (float[N, 3] x) => (float[M, 3] y) {{
        {body}
        rest = Constant <value = int64[1] {{3}}> ()
        target = Concat <axis = 0> (s40, rest)
        y = Reshape (x, target)
    }}""")), UnsupportedModelError, "changes the number of elements")
    assert error.unsupported[0][0] == "Reshape" and "N*1099511627776" in str(error)


def test_a_batch_multiplied_by_itself_many_times_is_refused_quickly() -> None:
    """Each Mul doubles the symbol's degree (N^(2^K)): the written size grows past its bound."""
    lines = ["s = Shape <end = 1> (x)"] + [f"s{i + 1} = Mul ({'s' if i == 0 else f's{i}'}, "
                                           f"{'s' if i == 0 else f's{i}'})" for i in range(40)]
    body = "\n        ".join(lines)
    error = timed_refusal(parse(text(f"""
    g (float[N, 3] x) => (float[M, 3] y) {{
        {body}
        rest = Constant <value = int64[1] {{3}}> ()
        target = Concat <axis = 0> (s40, rest)
        y = Reshape (x, target)
    }}""")), UnsupportedModelError, "too large")
    assert error.unsupported[0][0] == "Mul"
    assert len(str(error)) < 2000


def test_a_little_symbolic_arithmetic_still_folds() -> None:
    graph = load(parse(text("""
    g (float[N, 3] x) => (float[N, 3] y) {
        s = Shape <end = 1> (x)
        d = Add (s, s)
        h = Div (d, d)
        one = Constant <value = int64[1] {1}> ()
        rest = Constant <value = int64[1] {3}> ()
        target = Concat <axis = 0> (s, rest)
        y = Reshape (x, target)
    }""")))
    assert graph.outputs[0].shape == ("N", 3)


# -- budgets: external data ----------------------------------------------------------------
def _external(tmp_path: Path, entries: dict[str, str], dims: list[int]) -> Path:
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=dims)
    w.data_location = TensorProto.EXTERNAL
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=[w]),
        opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes() * 2)  # 32 bytes
    path = folder / "model.onnx"
    path.write_bytes(m.SerializeToString())
    return path


@pytest.mark.parametrize(("entries", "dims", "match"), [
    ({"location": "weights.bin", "offset": "24", "length": "16"}, [4], "bytes 24..40"),
    ({"location": "weights.bin", "offset": "0", "length": "16"}, [1 << 40], "needs"),
    ({"location": "weights.bin", "offset": "0"}, [1 << 40], "bytes 0..4398046511104"),
    ({"location": "weights.bin", "length": "8"}, [4], "length 8 but its shape"),
    ({"location": "../outside.bin", "length": "16"}, [4], "outside the model's folder"),
    ({"location": "sub/../../outside.bin", "length": "16"}, [4], "outside the model's folder"),
])
def test_external_data_sizes_and_paths_are_checked_before_reading(tmp_path: Path, entries: dict[str, str],
                                                                  dims: list[int], match: str) -> None:
    (tmp_path / "outside.bin").write_bytes(bytes(16))
    path = _external(tmp_path, entries, dims)
    with pytest.raises(InvalidModelError, match=match):  # the bytes: fastcnn's checks run first
        read_onnx(path.read_bytes(), base_dir=path.parent)
    with pytest.raises(InvalidModelError):  # the path: onnx's checker may see it first
        read_onnx(path)


def test_external_data_without_a_length_reads_only_the_declared_bytes(tmp_path: Path) -> None:
    path = _external(tmp_path, {"location": "weights.bin", "offset": "16"}, [1, 4])
    graph = import_onnx(read_onnx(path))
    x = np.zeros((1, 4), np.float32)
    np.testing.assert_array_equal(run_graph(graph, [x])[0], [[0, 1, 2, 3]])
    assert os.path.getsize(path.parent / "weights.bin") == 32


# -- verification and edits: linear in the readers of one value --------------------------------
def test_a_value_read_twenty_thousand_times_imports_and_rewrites_in_linear_time() -> None:
    """A Sum reading one value 100k times took 115 s: each redirected reader filtered the
    whole use list. Import, a full redirect, dead-node removal and verify are linear now."""
    uses = 20_000
    m = model([helper.make_node("Identity", ["x0"], ["x"]), helper.make_node("Sum", ["x"] * uses, ["y"])],
              [helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    start = time.perf_counter()
    graph = load(m)
    identity = graph.nodes[0]
    assert identity.op == "identity" and len(identity.outputs[0].uses) == uses
    graph.replace_all_uses(identity.outputs[0], identity.inputs[0])
    assert graph.remove_dead_nodes() == 1
    verify(graph)
    assert len(graph.inputs[0].uses) == uses
    assert time.perf_counter() - start < 4.0


def test_removing_many_dead_readers_of_one_value_is_linear() -> None:
    graph = Graph()
    x = graph.add_input("x", (1, 3), "float32")
    live = graph.add_node("relu", [x])
    for _ in range(20_000):
        graph.add_node("relu", [x])
    graph.outputs.append(live.outputs[0])
    start = time.perf_counter()
    assert graph.remove_dead_nodes() == 20_000
    assert time.perf_counter() - start < 2.0  # was quadratic: minutes
    assert x.uses == [(live, 0)] and graph.nodes == [live]
    verify(graph)


# -- scoping and semantics -----------------------------------------------------------------------
def test_a_branch_weight_does_not_replace_the_outer_weight_of_the_same_name() -> None:
    """An inlined If's initializer W used to overwrite the outer W: a wrong answer on every backend."""
    outer_w = numpy_helper.from_array(np.full((1, 3), 10.0, np.float32), "W")
    inner_w = numpy_helper.from_array(np.full((1, 3), 1.0, np.float32), "W")
    then = helper.make_graph([helper.make_node("Add", ["x", "W"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 3])], initializer=[inner_w])
    other = helper.make_graph([helper.make_node("Sub", ["x", "W"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 3])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    m = model([helper.make_node("If", ["cond"], ["b"], then_branch=then, else_branch=other),
               helper.make_node("Mul", ["b", "W"], ["y"])],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [outer_w, cond])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = onnxruntime_outputs(m, [x])[0]  # onnxruntime reads the outer W in the branch
    try:
        graph = load(m)
    except InvalidModelError as exc:  # refusing is allowed; a wrong answer is not
        assert "redefines ['W']" in str(exc)
        return
    np.testing.assert_array_equal(run_graph(graph, [x])[0], expected)


def test_a_branch_node_output_may_reuse_an_outer_name() -> None:
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["y0"]), helper.make_node("Neg", ["y0"], ["t"])],
                             "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 3])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["N", 3])])
    cond = numpy_helper.from_array(np.array(True), "cond")
    m = model([helper.make_node("If", ["cond"], ["b"], then_branch=then, else_branch=other),
               helper.make_node("Sigmoid", ["x"], ["y0"]), helper.make_node("Add", ["b", "y0"], ["y"])],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [cond])
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    expected = onnxruntime_outputs(m, [x])[0]
    try:
        graph = load(m)
    except InvalidModelError as exc:  # refusing is allowed; a wrong answer is not
        assert "redefines ['y0']" in str(exc)
        return
    np.testing.assert_allclose(run_graph(graph, [x])[0], expected, rtol=1e-6)


def test_sibling_branches_may_reuse_their_local_names() -> None:
    """A branch's names end with it: a second inlined If may define them again."""
    def branch(op: str) -> onnx.GraphProto:
        return helper.make_graph([helper.make_node(op, ["x"], ["t"])], op, [],
                                 [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 3])])

    cond = numpy_helper.from_array(np.array(True), "cond")
    m = model([helper.make_node("If", ["cond"], ["a"], then_branch=branch("Relu"), else_branch=branch("Neg")),
               helper.make_node("If", ["cond"], ["b"], then_branch=branch("Sigmoid"), else_branch=branch("Neg")),
               helper.make_node("Add", ["a", "b"], ["y"])],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [cond])
    x = np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(run_graph(load(m), [x])[0], onnxruntime_outputs(m, [x])[0], rtol=1e-6)


@pytest.mark.parametrize("index", [-7, 4, 100])
def test_a_symbolic_shape_index_out_of_range_is_invalid(index: int) -> None:
    with pytest.raises(InvalidModelError, match=f"index {index} is out of range"):
        load(parse(text(f"""
        g (float[N, 3, 4, 5] x) => (float[N, 60] y) {{
            shape = Shape (x)
            i = Constant <value = int64 {{{index}}}> ()
            b = Gather (shape, i)
            axes = Constant <value = int64[1] {{0}}> ()
            b1 = Unsqueeze (b, axes)
            rest = Constant <value = int64[1] {{-1}}> ()
            target = Concat <axis = 0> (b1, rest)
            y = Reshape (x, target)
        }}""")))


def test_a_constant_index_out_of_range_is_invalid() -> None:
    with pytest.raises(InvalidModelError, match="index -4 is out of range"):
        load(parse(text("""
        g (float[1, 3] x) => (float[1, 3] y) {
            c = Constant <value = float[3] {1, 2, 3}> ()
            i = Constant <value = int64[3] {0, 1, -4}> ()
            w = Gather (c, i)
            y = Add (x, w)
        }""")))


# -- initializers fastcnn cannot use --------------------------------------------------------------
def test_a_string_initializer_is_unsupported_not_undefined() -> None:
    strings = helper.make_tensor("s", TensorProto.STRING, [1], [b"hello"])
    m = model([helper.make_node("Identity", ["s"], ["t"]), helper.make_node("Relu", ["x"], ["y"])],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
               helper.make_tensor_value_info("t", TensorProto.STRING, [1])], [strings])
    with pytest.raises(UnsupportedModelError, match="string tensors are not supported") as info:
        load(m)
    assert "'s'" in str(info.value) and "not defined" not in str(info.value)


def test_a_sparse_constant_is_unsupported() -> None:
    values = numpy_helper.from_array(np.array([5.0], np.float32), "v")
    indices = numpy_helper.from_array(np.array([1], np.int64), "i")
    sparse = helper.make_sparse_tensor(values, indices, [3])
    m = model([helper.make_node("Constant", [], ["w"], sparse_value=sparse), helper.make_node("Add", ["x", "w"], ["y"])],
              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    with pytest.raises(UnsupportedModelError, match="sparse"):
        load(m)


@pytest.mark.parametrize("cut", [4, -1])
def test_raw_data_of_the_wrong_length_names_the_tensor(cut: int) -> None:
    w = numpy_helper.from_array(np.ones((1, 3), np.float32), "the_weight")
    w.raw_data = w.raw_data[:cut] if cut > 0 else w.raw_data + b"\0\0\0\0"
    then = helper.make_graph([helper.make_node("Add", ["x", "the_weight"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 3])], initializer=[w])
    cond = numpy_helper.from_array(np.array(True), "cond")
    graph = helper.make_graph([helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=then)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], initializer=[cond])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for source in (m, m.SerializeToString()):
        with pytest.raises(InvalidModelError, match="the_weight"):
            load(source) if isinstance(source, onnx.ModelProto) else import_onnx(read_onnx(source))
