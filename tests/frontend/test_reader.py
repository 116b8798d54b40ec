"""Bad files: each is an InvalidModelError naming the problem, and no unsafe file is read."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from fastcnn.errors import InvalidModelError
from fastcnn.frontend import import_onnx, read_onnx
from fastcnn.frontend.external_data import load_external_data
from tests.frontend.helpers import parse, run_graph

TEXT = """<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 4] y) { y = Add (x, w) }"""
WEIGHT = np.arange(4, dtype=np.float32)
SECRET = np.full(4, 7.0, np.float32)  # what a malicious model would like to read


def good_model() -> onnx.ModelProto:
    return parse(TEXT, w=WEIGHT)


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def external_model(location: str, offset: int | None = None, length: int | None = None) -> onnx.ModelProto:
    """The model with its weight stored externally at ``location``."""
    model = good_model()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entries = {"location": location, "offset": offset, "length": length}
    for key, value in entries.items():
        if value is not None:
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
    return model


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "secret.bin"
    path.parent.mkdir()
    path.write_bytes(SECRET.tobytes())
    return path


def test_good_file_bytes_and_proto(tmp_path: Path) -> None:
    path = save(good_model(), tmp_path / "m.onnx")
    for source in (path, str(path), path.read_bytes(), good_model()):
        graph = import_onnx(read_onnx(source))
        x = np.ones((2, 4), np.float32)
        np.testing.assert_array_equal(run_graph(graph, [x])[0], x + WEIGHT)


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    save(external_model("weights/w.bin", offset=4, length=16), folder / "m.onnx")
    (folder / "weights").mkdir()
    (folder / "weights" / "w.bin").write_bytes(b"\0" * 4 + WEIGHT.tobytes())
    model = read_onnx(folder / "m.onnx")
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), WEIGHT)


@pytest.mark.parametrize("source", ["missing.onnx", "."])
def test_missing_file_or_directory(tmp_path: Path, source: str) -> None:
    with pytest.raises(InvalidModelError, match="cannot read|not a regular file"):
        read_onnx(tmp_path / source)


def test_truncated_file(tmp_path: Path) -> None:
    data = good_model().SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidModelError, match="truncated.onnx"):
        read_onnx(path)


def test_corrupted_bytes(tmp_path: Path) -> None:
    data = bytearray(good_model().SerializeToString())
    data[5:25] = os.urandom(20)
    path = tmp_path / "corrupted.onnx"
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidModelError, match="corrupted.onnx"):
        read_onnx(path)
    with pytest.raises(InvalidModelError):
        read_onnx(b"\xff" * 64)


def test_cycle(tmp_path: Path) -> None:
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 4] x) => (float[N, 4] y) { a = Add (x, b) \n b = Relu (a) \n y = Relu (b) }""")
    with pytest.raises(InvalidModelError, match="topologically sorted|not output of any previous"):
        read_onnx(save(model, tmp_path / "cycle.onnx"))


def test_missing_initializer(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelError, match="'w'|w"):
        read_onnx(save(parse(TEXT), tmp_path / "missing.onnx"))


@pytest.mark.parametrize("field", ["raw_data", "float_data"])
def test_tensor_data_shorter_than_shape(tmp_path: Path, field: str) -> None:
    model = good_model()
    tensor = model.graph.initializer[0]
    if field == "raw_data":
        tensor.raw_data = tensor.raw_data[:8]
    else:
        tensor.ClearField("raw_data")
        tensor.float_data.extend([1.0, 2.0])
    with pytest.raises(InvalidModelError, match="'?w'?"):
        read_onnx(save(model, tmp_path / "short.onnx"))
    with pytest.raises(InvalidModelError, match="needs|required|too small"):
        import_onnx(model)  # the importer checks too, for protos that skipped read_onnx


def _unsafe_cases(tmp_path: Path, secret: Path) -> dict[str, Path]:
    """One model folder per unsafe external location, each pointing at the secret."""
    cases = {}
    relative = os.path.relpath(secret, tmp_path / "dotdot")
    cases["dotdot"] = save(external_model(relative), tmp_path / "dotdot" / "m.onnx")
    cases["absolute"] = save(external_model(str(secret)), tmp_path / "absolute" / "m.onnx")
    cases["symlink"] = save(external_model("link.bin"), tmp_path / "symlink" / "m.onnx")
    (tmp_path / "symlink" / "link.bin").symlink_to(secret)
    cases["hardlink"] = save(external_model("hard.bin"), tmp_path / "hardlink" / "m.onnx")
    os.link(secret, tmp_path / "hardlink" / "hard.bin")
    cases["offset"] = save(external_model("w.bin", offset=64, length=16), tmp_path / "offset" / "m.onnx")
    (tmp_path / "offset" / "w.bin").write_bytes(WEIGHT.tobytes())
    cases["length"] = save(external_model("w.bin", offset=8, length=16), tmp_path / "length" / "m.onnx")
    (tmp_path / "length" / "w.bin").write_bytes(WEIGHT.tobytes())
    cases["directory"] = save(external_model("sub"), tmp_path / "directory" / "m.onnx")
    (tmp_path / "directory" / "sub").mkdir()
    return cases


UNSAFE = ["dotdot", "absolute", "symlink", "hardlink", "offset", "length", "directory"]


@pytest.mark.parametrize("case", UNSAFE)
def test_unsafe_external_data_is_refused(tmp_path: Path, secret: Path, case: str) -> None:
    path = _unsafe_cases(tmp_path, secret)[case]
    with pytest.raises(InvalidModelError, match="'w'|w\\b"):
        read_onnx(path)


@pytest.mark.parametrize("case", UNSAFE)
def test_own_external_data_checks_without_onnx_checker(tmp_path: Path, secret: Path, case: str) -> None:
    """fastcnn's loader refuses each case by itself (older onnx checkers let some through)."""
    path = _unsafe_cases(tmp_path, secret)[case]
    model = onnx.load(str(path), load_external_data=False)
    with pytest.raises(InvalidModelError, match="outside|absolute|hard links|asks for bytes|regular file|open"):
        load_external_data(model, str(path.parent), str(path))
    assert model.graph.initializer[0].data_location == TensorProto.EXTERNAL  # nothing was read


def test_symlink_inside_the_folder_is_followed_and_allowed(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    path = save(external_model("link.bin"), folder / "m.onnx")
    (folder / "real.bin").write_bytes(WEIGHT.tobytes())
    (folder / "link.bin").symlink_to(folder / "real.bin")
    model = onnx.load(str(path), load_external_data=False)
    load_external_data(model, str(folder), str(path))
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), WEIGHT)


def test_external_data_of_bytes_needs_a_folder(tmp_path: Path) -> None:
    data = external_model("w.bin").SerializeToString()
    with pytest.raises(InvalidModelError, match="external"):
        read_onnx(data)
    (tmp_path / "w.bin").write_bytes(WEIGHT.tobytes())
    model = read_onnx(data, base_dir=tmp_path)
    np.testing.assert_array_equal(numpy_helper.to_array(model.graph.initializer[0]), WEIGHT)


def test_not_a_model() -> None:
    with pytest.raises(InvalidModelError, match="takes a path"):
        read_onnx(42)  # type: ignore[arg-type]
