"""ONNX's own backend test suite, run against fastcnn through ``onnx.backend.test.BackendTest``.

In scope (``test_case``): the node tests of every op the importer converts (each case of
it, ``_expanded`` function-body forms included) and of every case built only from such
ops, and every case of the model groups the onnx wheel ships: ``real`` (nine classic CNNs
whose weights come from constant subgraphs), ``simple``, ``pytorch-converted`` and
``pytorch-operator``. Data and tolerances are onnx's, unchanged.

Each case ends one of three ways:

- it passes;
- it is *excluded*: fastcnn refuses it cleanly and a table says why: either every op the
  ``UnsupportedModelError`` names is in :data:`UNSUPPORTED_OPS` (ops the importer has no
  converter for), or the case matches a pattern of :data:`EXCLUDED` (a supported op with an
  attribute or an input type fastcnn does not run), refused with ``UnsupportedModelError``
  (at ``prepare``, or at the first run for models fed integer parameters, see
  ``fastcnn.onnx_backend``) or ``InputError`` (an input the engine does not take, such as an
  empty tensor). The reason is printed in the skip message and in the summary;
- anything else fails: a wrong number, a crash, a refusal nobody wrote a reason for, or an
  exclusion that has gone stale because the case now passes.

Out of scope but checked (``test_unsupported_op_refused_cleanly``): every node case of
every other op is refused with ``UnsupportedModelError``, never a crash.

The pass count is printed at the end of the run (``conftest.py``).
"""
from __future__ import annotations

import re
import warnings
from collections import defaultdict
from typing import Iterator

import onnx
import pytest

from fastcnn.errors import InputError, InvalidModelError, UnsupportedModelError
from fastcnn.frontend.converters import CONVERTERS
from fastcnn.onnx_backend import FastCNNBackend
from tests.conformance.onnx_cases import Case, Runner, all_cases, describe, in_scope

# Supported ops with an attribute, input type or input kind fastcnn does not run:
# case-name pattern (re.search) -> reason.
EXCLUDED: dict[str, str] = {
    r"_u?int(8|16|32|64)(_|$)": "integer data: fastcnn computes float32/float16/float64 tensors",
    r"^test_(edge|reflect|wrap)_pad$": "integer data: Pad of int32 tensors (and mode='wrap')",
    r"^test_Embedding": "integer data: Embedding, a Gather on run-time int64 indices",
    r"^test_operator_non_float_params$": "integer data: Add/Mul of int64 tensors",
    r"^test_where_long_example$": "integer data: Where selecting between int64 tensors",
    r"^test_reduce_max_bool_inputs$": "integer data: ReduceMax of bool tensors",
    r"^test_cast": "run-time Cast: Cast/CastLike of activations, or bfloat16/float8/int4/int2 "
                   "types; fastcnn casts constants only (folded at import)",
    r"^test_(AvgPool3d|Conv3d|MaxPool3d)|^test_(averagepool|maxpool)_3d_|^test_convtranspose_3d$":
        "3-D conv/pool: volumetric convolution and pooling; fastcnn runs 1-D and 2-D CNNs",
    r"^test_batchnorm_.*training_mode": "training mode: BatchNormalization training_mode=1 (batch "
                                        "statistics); fastcnn runs inference",
    r"^test_training_dropout": "training mode: Dropout training_mode=True (random masks); fastcnn "
                               "runs inference",
    r"^test_constantofshape_": "no float input: ConstantOfShape of a run-time int64 shape",
    r"^test_if(_opt|_seq)?$": "no float input: If on a run-time bool condition (optional and "
                              "sequence outputs too); fastcnn folds If on constant conditions",
    r"^test_identity_(opt|sequence)$": "non-tensor types: optional and sequence values",
    r"^test_reduce_max_empty_set_bool$": "integer data: ReduceMax of bool tensors",
    r"^test_reduce_sum(_square)?_empty_set(_expanded)?$": "run-time reduced axis: ReduceSum over an axis (the "
                                                          "empty one here) whose size is known only at run time",
}

# Op types the importer has no converter for, met in the cases in scope: op -> reason.
UNSUPPORTED_OPS: dict[str, str] = {
    "Abs": "elementwise math outside the CNN families' op set",
    "Pow": "elementwise math outside the CNN families' op set",
    "Sign": "elementwise math outside the CNN families' op set",
    "Sqrt": "elementwise math outside the CNN families' op set",
    "Elu": "activations outside the CNN families (ReLU, LeakyReLU, Sigmoid, Tanh, Clip)",
    "PRelu": "activations outside the CNN families (ReLU, LeakyReLU, Sigmoid, Tanh, Clip)",
    "Selu": "activations outside the CNN families (ReLU, LeakyReLU, Sigmoid, Tanh, Clip)",
    "Shrink": "activations outside the CNN families (ReLU, LeakyReLU, Sigmoid, Tanh, Clip)",
    "Softplus": "activations outside the CNN families (ReLU, LeakyReLU, Sigmoid, Tanh, Clip)",
    "LogSoftmax": "LogSoftmax: classifiers end in Softmax or logits",
    "InstanceNormalization": "instance normalization (style transfer): not in the classic CNN families",
    "Expand": "run-time broadcasting ops (Expand, Tile)",
    "Tile": "run-time broadcasting ops (Expand, Tile)",
    "Gather": "indexing of run-time tensors (embeddings)",
    "Slice": "slicing of run-time tensors (folded when constant)",
    "Split": "splitting run-time tensors (folded when constant)",
    "StringNormalizer": "string tensors",
    "SequenceAt": "sequence types", "SequenceConstruct": "sequence types",
    "SequenceEmpty": "sequence types", "SequenceErase": "sequence types",
    "SequenceInsert": "sequence types", "SequenceLength": "sequence types",
    "SplitToSequence": "sequence types", "ConcatFromSequence": "sequence types",
    "Gradient": "training ops (domain ai.onnx.preview.training)",
}

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # onnx's case generators overflow casts on purpose
    ALL_CASES = all_cases()


SCOPE = [c for c in ALL_CASES if in_scope(c, set(CONVERTERS))]
OUT_OF_SCOPE: dict[str, list[Case]] = defaultdict(list)
for _case in ALL_CASES:
    if not in_scope(_case, set(CONVERTERS)):
        OUT_OF_SCOPE[str(_case.tested_op)].append(_case)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    """``BackendTest`` over fastcnn; the ``real`` cases write their inputs under ONNX_HOME."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ONNX_HOME", str(tmp_path_factory.mktemp("onnx_home")))
        yield Runner(FastCNNBackend)


def exclusion(case: Case, error: UnsupportedModelError | InputError) -> str | None:
    """Why a refused case is excluded (``"label: reason"``), or None when no table covers it."""
    for pattern, reason in EXCLUDED.items():
        if re.search(pattern, case.name):
            return reason
    # An input of a type fastcnn does not take (a string, an int64 split list) may come along
    # with the unsupported op that consumes it; the op is the reason.
    ops = sorted({op for op, _, _ in getattr(error, "unsupported", [])} - {"input"})
    if ops and all(op in UNSUPPORTED_OPS for op in ops):
        return f"op {'+'.join(ops)}: " + "; ".join(dict.fromkeys(UNSUPPORTED_OPS[op] for op in ops))
    return None


@pytest.mark.parametrize("case", SCOPE, ids=lambda c: f"{c.group}/{c.name}")
def test_case(case: Case, runner: Runner) -> None:
    try:
        runner.run(case)
    except (UnsupportedModelError, InputError) as error:
        reason = exclusion(case, error)
        if reason is None:
            pytest.fail(f"refused, and neither EXCLUDED nor UNSUPPORTED_OPS says why: {describe(error)}")
        pytest.skip(f"excluded: {reason}")
    stale = [p for p in EXCLUDED if re.search(p, case.name)]
    assert not stale, f"passes, but EXCLUDED pattern {stale[0]!r} excludes it: remove the exclusion"


@pytest.mark.parametrize("op_type", sorted(OUT_OF_SCOPE))
def test_unsupported_op_refused_cleanly(op_type: str, runner: Runner) -> None:
    """Every node case of an op fastcnn does not convert ends in a clean refusal (or passes,
    when its function body is made of supported ops), never in a crash or a wrong number."""
    problems = []
    for case in OUT_OF_SCOPE[op_type]:
        try:
            runner.run(case)
        except UnsupportedModelError:
            continue
        except InvalidModelError as error:
            if not _onnx_refuses(case.model):  # onnx's own full check refusing its own case is fine
                problems.append(f"{case.name}: {describe(error)}")
        except Exception as error:  # noqa: BLE001 - collect every kind of failure
            problems.append(f"{case.name}: {describe(error)}")
    assert not problems, "\n".join(problems)


def _onnx_refuses(model: onnx.ModelProto | None) -> bool:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception:  # noqa: BLE001
        return True
    return False


def test_tables_are_honest() -> None:
    """UNSUPPORTED_OPS names only ops without a converter (a supported op's refusals need an
    EXCLUDED pattern), and every EXCLUDED pattern still matches a case in scope."""
    assert not set(UNSUPPORTED_OPS) & set(CONVERTERS)
    dead = [p for p in EXCLUDED if not any(re.search(p, c.name) for c in SCOPE)]
    assert not dead, f"EXCLUDED patterns matching no case: {dead}"
