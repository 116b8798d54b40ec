"""drop_identity: Identity and Dropout vanish, except where a graph output needs the copy."""
from __future__ import annotations

from fastcnn.passes.drop_identity import drop_identity
from tests.passes.helpers import Builder, check_rewrite, ops, rewrite


def test_identity_dropout_chain_is_dropped() -> None:
    b = Builder((1, 3, 6, 6))
    conv = b.conv(b.x, 4)
    kept = b.node("dropout", [b.node("identity", [conv])], ratio=0.3)
    graph = b.output(b.node("relu", [kept]))
    assert ops(graph) == ["conv2d", "identity", "dropout", "relu"]
    after = rewrite(graph, "drop_identity")
    assert ops(after) == ["conv2d", "relu"]
    assert after.nodes[1].inputs[0] is after.nodes[0].outputs[0]
    assert ops(check_rewrite(graph, "drop_identity")) == ["conv2d", "relu"]


def test_output_keeps_its_name_when_the_input_takes_it_over() -> None:
    b = Builder((1, 3, 6, 6))
    relu = b.node("relu", [b.conv(b.x, 4)])
    identity = b.graph.add_node("identity", [relu], name="identity", out_names=["y"])
    graph = b.output(identity.outputs[0])
    after = check_rewrite(graph, "drop_identity")
    assert ops(after) == ["conv2d", "relu"]
    assert [v.name for v in after.outputs] == ["y"]
    assert after.outputs[0].producer is after.nodes[1]


def test_identity_read_twice_is_dropped_from_both_slots() -> None:
    b = Builder((1, 3, 6, 6))
    same = b.node("identity", [b.node("relu", [b.x])])
    graph = b.output(b.node("mul", [same, same]))
    after = check_rewrite(graph, "drop_identity")
    relu, mul = after.nodes
    assert ops(after) == ["relu", "mul"] and mul.inputs == [relu.outputs[0]] * 2


def test_identity_of_a_graph_input_returned_as_output_is_kept() -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.node("identity", [b.x]))
    assert not drop_identity(graph.clone())
    after = check_rewrite(graph, "drop_identity")
    assert ops(after) == ["identity"] and after.outputs[0].name != after.inputs[0].name


def test_identity_of_a_graph_input_read_inside_is_dropped() -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.node("tanh", [b.node("dropout", [b.x])]))
    after = check_rewrite(graph, "drop_identity")
    assert ops(after) == ["tanh"] and after.nodes[0].inputs[0] is after.inputs[0]


def test_copy_of_a_value_already_returned_is_kept() -> None:
    """Returned under two names, the value needs the copy for the second."""
    b = Builder((1, 3, 6, 6))
    relu = b.node("relu", [b.x])
    graph = b.output(relu, b.node("identity", [relu]))
    assert not drop_identity(graph.clone())
    after = check_rewrite(graph, "drop_identity")
    assert ops(after) == ["relu", "identity"]


def test_identity_of_a_constant_returned_as_output_is_kept() -> None:
    b = Builder((1, 3, 6, 6))
    graph = b.output(b.node("relu", [b.x]), b.node("identity", [b.weight(4)]))
    assert not drop_identity(graph.clone())
    assert ops(rewrite(graph, "drop_identity")) == ["relu", "identity"]


def test_chain_of_two_returned_copies_keeps_the_second() -> None:
    """identity(relu) -> a (output), identity(a) -> b (output): relu's output becomes ``a``,
    and ``b`` still needs its copy."""
    b = Builder((1, 3, 6, 6))
    first = b.graph.add_node("identity", [b.node("relu", [b.x])], out_names=["a"]).outputs[0]
    second = b.graph.add_node("identity", [first], out_names=["b"]).outputs[0]
    graph = b.output(first, second)
    after = check_rewrite(graph, "drop_identity")
    assert ops(after) == ["relu", "identity"]
    assert [v.name for v in after.outputs] == ["a", "b"]
    assert after.nodes[0].outputs[0] is after.outputs[0]
