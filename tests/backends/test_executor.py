"""Executor behaviour beyond single ops: graphs of several nodes, freeing intermediates,
results that never alias inputs or constants, dtypes, warmup, and unsupported ops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastcnn.backends import OrtExecutor, TorchExecutor, create_executor
from fastcnn.errors import UnsupportedModelError
from fastcnn.ir import Graph, Node, Value
from tests.backends.oracle import reference_outputs
from tests.helpers import relative_l2

EXECUTORS = [TorchExecutor, OrtExecutor]


def small_cnn(dtype: str = "float32") -> Graph:
    """conv -> bn -> relu -> pool, a branch through an LRN, concat, gap, gemm, softmax."""
    rng = np.random.default_rng(7)
    g = Graph("small_cnn")

    def const(*shape, scale=0.3, shift=0.0):
        return g.constant((rng.standard_normal(shape) * scale + shift).astype(dtype))

    x = g.add_input("input", ("N", 3, 15, 15), dtype)
    h = g.add_node("conv2d", [x, const(8, 3, 3, 3), const(8)],
                   dict(stride=(2, 2), padding=(1, 0, 1, 1), dilation=(1, 1), groups=1)).outputs[0]
    h = g.add_node("batch_norm", [h, const(8, shift=1.0), const(8), const(8),
                                  g.constant(np.abs(rng.standard_normal(8)).astype(dtype) + 0.5)],
                   dict(eps=1e-5)).outputs[0]
    h = g.add_node("relu", [h]).outputs[0]
    p = g.add_node("max_pool", [h], dict(kernel=(3, 3), stride=(2, 2), padding=(0, 0, 0, 0),
                                         dilation=(1, 1), ceil_mode=True)).outputs[0]
    q = g.add_node("lrn", [p], dict(size=5, alpha=1e-3, beta=0.75, bias=2.0)).outputs[0]
    c = g.add_node("concat", [p, q], dict(axis=1)).outputs[0]
    v = g.add_node("global_avg_pool", [c]).outputs[0]
    v = g.add_node("flatten", [v], dict(axis=1)).outputs[0]
    v = g.add_node("gemm", [v, const(10, 16), const(10)],
                   dict(alpha=1.0, beta=1.0, trans_a=False, trans_b=True)).outputs[0]
    g.outputs = [g.add_node("softmax", [v], dict(axis=1), out_names=["logits"]).outputs[0], h]
    return g


def _feeds(dtype: str = "float32", batch: int = 3) -> list[np.ndarray]:
    return [np.random.default_rng(1).standard_normal((batch, 3, 15, 15)).astype(dtype)]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_small_cnn_matches_reference(executor) -> None:
    expected = reference_outputs(small_cnn("float64"), _feeds("float64"))
    actual = executor(small_cnn(), "cpu", None).run([torch.from_numpy(_feeds()[0])])
    assert [tuple(a.shape) for a in actual] == [(3, 10), (3, 8, 8, 7)]
    for a, e in zip(actual, expected):
        assert relative_l2(a, e) < 1e-5


def test_batch_size_may_change_between_runs() -> None:
    executor = TorchExecutor(small_cnn(), "cpu", None)
    for batch in (1, 4, 2):
        (logits, _) = executor.run([torch.from_numpy(_feeds(batch=batch)[0])])
        assert logits.shape == (batch, 10)


def test_intermediates_are_freed_after_their_last_use() -> None:
    executor = TorchExecutor(small_cnn(), "cpu", None)
    graph = executor.graph
    slots = {id(o): executor._slots[id(o)] for n in graph.nodes for o in n.outputs}
    freed_at = {slot: i for i, step in enumerate(executor._steps) for slot in step.free}
    for node in graph.nodes:
        for out in node.outputs:
            if out in graph.outputs:
                assert slots[id(out)] not in freed_at  # returned: never freed
                continue
            last_user = max(graph.nodes.index(u) for u in out.users)
            assert freed_at[slots[id(out)]] == last_user
    assert executor._slots[id(graph.inputs[0])] in freed_at


def test_constants_become_device_tensors_once() -> None:
    executor = TorchExecutor(small_cnn(), "cpu", torch.float64)
    constants = [t for t in executor._template if t is not None]
    assert len(constants) == len(executor.graph.constants())
    assert all(t.dtype == torch.float64 for t in constants)
    before = [t.data_ptr() for t in constants]
    executor.run([torch.from_numpy(_feeds()[0])])
    assert [t.data_ptr() for t in executor._template if t is not None] == before


def _pass_through_graph() -> tuple[Graph, Value]:
    g = Graph("pass_through")
    x = g.add_input("x", ("N", 4), "float32")
    c = g.constant(np.arange(4, dtype=np.float32), "c")
    r = g.add_node("reshape", [x], dict(shape=(0, 2, 2))).outputs[0]
    i = g.add_node("identity", [c]).outputs[0]
    g.outputs = [g.add_node("identity", [x]).outputs[0], r, i, c]
    return g, c


@pytest.mark.parametrize("executor", EXECUTORS)
def test_results_are_fresh_tensors(executor) -> None:
    """Changing a result must not change the input, a constant, or the next run."""
    graph, const = _pass_through_graph()
    run = executor(graph, "cpu", None)
    x = torch.arange(8, dtype=torch.float32).reshape(2, 4)
    results = run.run([x])
    pointers = {x.untyped_storage().data_ptr()}
    for result in results:
        assert result.untyped_storage().data_ptr() not in pointers
        pointers.add(result.untyped_storage().data_ptr())
    with torch.inference_mode():
        for result in results:
            result.fill_(-1.0)
    assert torch.equal(x, torch.arange(8, dtype=torch.float32).reshape(2, 4))
    again = run.run([x])
    assert torch.equal(again[2], torch.tensor(const.const)) and torch.equal(again[0], x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_low_precision(dtype: torch.dtype) -> None:
    executor = TorchExecutor(small_cnn(), "cpu", dtype)
    assert all(t.dtype == dtype for t in executor._template if t is not None)
    logits, _ = executor.run([torch.from_numpy(_feeds()[0])])  # float32 input is cast
    assert logits.dtype == dtype
    expected = TorchExecutor(small_cnn(), "cpu", None).run([torch.from_numpy(_feeds()[0])])[0]
    assert relative_l2(logits, expected) < 3e-2


def test_onnxruntime_float16() -> None:
    executor = OrtExecutor(small_cnn(), "cpu", torch.float16)
    logits, _ = executor.run([torch.from_numpy(_feeds()[0])])
    assert logits.dtype == torch.float16
    expected = TorchExecutor(small_cnn(), "cpu", None).run([torch.from_numpy(_feeds()[0])])[0]
    assert relative_l2(logits, expected) < 1e-2


class _SessionSpy:
    """An ONNX Runtime session that records each ``run`` call's feeds, then runs it."""

    def __init__(self, session) -> None:
        self._session, self.feeds = session, []

    def run(self, output_names, feeds, *args, **kwargs):
        self.feeds.append({name: np.array(value) for name, value in feeds.items()})
        return self._session.run(output_names, feeds, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._session, name)


def _spy_on_runs(executor) -> list[dict[str, np.ndarray]]:
    """Feeds of every run the backend does from now on: the torch executor's ``run``, ONNX Runtime's session."""
    if isinstance(executor, OrtExecutor):
        executor.session = _SessionSpy(executor.session)
        return executor.session.feeds
    calls, run = [], executor.run

    def spy(inputs):
        calls.append({v.name: t.cpu().numpy() for v, t in zip(executor.graph.inputs, inputs, strict=True)})
        return run(inputs)

    executor.run = spy
    return calls


def _dynamic_hw() -> Graph:
    g = Graph("dynamic_hw")
    x = g.add_input("x", ("N", 3, "H", "W"), "float32")
    g.outputs = list(g.add_node("relu", [x]).outputs)
    return g


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_warmup_runs_once_on_zeros_of_batch_1(name: str) -> None:
    """The promise of both warmups: one run on zeros, batch 1, every other dim as declared."""
    executor = create_executor(name, small_cnn(), "cpu", None)
    runs = _spy_on_runs(executor)
    executor.warmup()
    assert len(runs) == 1
    (feed_name, feed), = runs[0].items()
    assert feed_name == "input" and feed.shape == (1, 3, 15, 15) and feed.dtype == np.float32
    assert not feed.any()
    logits, _ = executor.run([torch.from_numpy(_feeds()[0])])  # and the executor still answers right
    assert relative_l2(logits, reference_outputs(small_cnn(), _feeds())[0]) < 1e-5


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_warmup_without_a_runnable_shape_runs_nothing(name: str) -> None:
    executor = create_executor(name, _dynamic_hw(), "cpu", None)
    runs = _spy_on_runs(executor)
    executor.warmup()  # H and W unknown: nothing it can run, so it returns quietly
    assert runs == []


def test_triton_warmup_prepares_every_bucket_before_any_infer() -> None:
    """The Triton backend's promise: every batch bucket prepared (and run once) at warmup, so
    no later infer of any batch up to ``max_batch`` prepares anything."""
    g = Graph("conv_relu")
    x = g.add_input("x", ("N", 3, 6, 6), "float32")
    w = g.constant(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32))
    h = g.add_node("conv2d", [x, w], {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1})
    g.outputs = list(g.add_node("relu", h.outputs).outputs)
    executor = create_executor("triton", g, "cpu", None, max_batch=3)
    assert executor.buckets == {}
    executor.warmup()
    assert sorted(executor.buckets) == [1, 2, 3]
    prepared = dict(executor.buckets)
    executor._prepare = None  # any preparation from now on fails the test
    for batch in (3, 1, 2):
        inputs = [torch.randn(batch, 3, 6, 6, generator=torch.Generator().manual_seed(batch))]
        expected = TorchExecutor(g, "cpu", None).run(inputs)[0]
        assert relative_l2(executor.run(inputs)[0], expected) < 1e-5
    assert executor.buckets == prepared


def test_op_without_torch_implementation_is_refused_at_build() -> None:
    g = Graph("custom")
    x = g.add_input("x", (2,), "float32")
    node = Node("fancy_op", [x], [], {}, "fancy_node")
    node.outputs.append(Value("y", (2,), "float32", producer=node))
    x.users.append(node)
    g.nodes.append(node)
    g.outputs = node.outputs
    with pytest.raises(UnsupportedModelError) as info:
        TorchExecutor(g, "cpu", None)
    assert info.value.unsupported == [("fancy_op", "fancy_node", "no torch implementation")]


def test_oracle_replaces_the_reference_lrn() -> None:
    """The stock onnx.reference LRN is wrong past channel N (see tests/backends/oracle.py).
    When this fails, onnx has fixed it and the override can go."""
    from onnx.reference import ReferenceEvaluator

    from fastcnn.backends.onnx_writer import graph_to_onnx

    graph = small_cnn("float64")
    feeds = _feeds("float64")
    ours = reference_outputs(graph, feeds)[0]
    stock = ReferenceEvaluator(graph_to_onnx(graph)).run(None, {"input": feeds[0]})[0]
    assert relative_l2(torch.from_numpy(stock), ours) > 1e-6


def test_dependent_launches_are_for_hopper_gpus_only(monkeypatch) -> None:
    """FASTCNN_PDL=1 asks for programmatic dependent launches; the interpreter (and any GPU
    before compute capability 9.0) launches plainly, with every call's PDL flag off."""
    monkeypatch.setenv("FASTCNN_PDL", "1")
    g = Graph("relu")
    x = g.add_input("x", ("N", 3, 4, 4), "float32")
    g.outputs = list(g.add_node("relu", [x]).outputs)
    executor = create_executor("triton", g, "cpu", None, max_batch=1)
    assert not executor.dependent_launches
    calls = executor.prepare(1).calls
    assert calls and not any(call.pdl for call in calls)
