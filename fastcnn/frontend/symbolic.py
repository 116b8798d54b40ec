"""Shape values that hold the batch size as a symbol, so exporters' shape arithmetic folds.

Real ONNX files compute reshape targets at run time: ``Shape(x) -> Gather(0) -> Unsqueeze ->
Concat([.., -1]) -> Reshape`` is how ``x.view(x.size(0), -1)`` exports. With a dynamic batch
that chain is not constant, but every entry of it except the batch is. The importer folds
such chains on small int64 vectors stored as NumPy *object* arrays whose entries are Python
ints or :class:`Sym` (a size known only at run time). A ``Reshape`` whose target holds the
batch symbol at the batch's own position then becomes ``0`` (copy that dim) in the IR.

Arithmetic on a :class:`Sym` is the IR's own algebra (:mod:`fastcnn.ir.dims`): it builds a
new symbol in the IR's spelling (``N*4``, ``(H+1)//2``), so it never pretends to know a number;
anything that would need the value (a comparison, ``int()``, truth) raises
:class:`SymbolicValueError` and the fold is abandoned.

Names stay bounded: adding a size to itself K times would otherwise spell a name 2^K
characters long. A name past :data:`MAX_SYMBOL_CHARS` raises :class:`SymbolTooLarge`, which
the importer reports as an :class:`~fastcnn.errors.UnsupportedModelError`; no real
exporter's shape arithmetic comes near it.
"""
from __future__ import annotations

import numpy as np

from fastcnn.ir import Shape, dims
from fastcnn.ir.dims import SymbolicValueError, SymbolTooLarge  # noqa: F401 - the folds catch them from here

MAX_SYMBOL_CHARS = dims.MAX_DIM_CHARS


class Sym:
    """A size known only at run time, named like the IR's symbolic dims (``"N"``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def derived(expr: "dims.Expr") -> "Sym | int":
        """The value an arithmetic op makes: an int when the symbols cancel, else a symbol
        (refused past :data:`MAX_SYMBOL_CHARS`)."""
        dim = dims.to_dim(expr)
        return dim if isinstance(dim, int) else Sym(dim)

    def __repr__(self) -> str:
        return self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sym):
            return self.name == other.name
        raise SymbolicValueError(f"cannot compare the run-time size {self.name} with {other!r}")

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def _refuse(self, *args: object) -> None:
        raise SymbolicValueError(f"the run-time size {self.name} has no value at import time")

    __bool__ = __int__ = __index__ = __float__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __neg__ = __mod__ = __rmod__ = __pow__ = _refuse

    # -- arithmetic builds new symbols --------------------------------------------------
    def __mul__(self, other: object) -> "Sym | int":
        return Sym.derived(dims.parse(self.name) * _expr(other))

    __rmul__ = __mul__

    def __add__(self, other: object) -> "Sym | int":
        return Sym.derived(dims.parse(self.name) + _expr(other))

    __radd__ = __add__

    def __sub__(self, other: object) -> "Sym | int":
        return Sym.derived(dims.parse(self.name) - _expr(other))

    def __rsub__(self, other: object) -> "Sym | int":
        return Sym.derived(_expr(other) - dims.parse(self.name))

    def __floordiv__(self, other: object) -> "Sym | int":
        """Floor division by a positive int, or an exact division by a symbol (``N*4 / N``)."""
        if _is_int(other):
            return Sym.derived(dims.parse(self.name).floordiv(int(other)))
        quotient = dims.parse(self.name).divide_exact(_expr(other))
        if quotient is None:
            raise SymbolicValueError(f"{self.name} / {_name(other)} is not an exact division")
        return Sym.derived(quotient)

    __truediv__ = __floordiv__


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _expr(value: object) -> "dims.Expr":
    if isinstance(value, Sym):
        return dims.parse(value.name)
    if _is_int(value):
        return dims.Expr.const(int(value))  # type: ignore[arg-type]
    raise SymbolicValueError(f"cannot compute a size with {value!r}")


def _name(value: object) -> str:
    return value.name if isinstance(value, Sym) else str(value)


def is_symbolic(array: np.ndarray) -> bool:
    """Whether ``array`` is a shape vector with run-time entries (an object array)."""
    return array.dtype == object


def shape_array(shape: Shape) -> np.ndarray:
    """An IR shape as an int64 vector, or an object vector when some dims are symbols."""
    if all(isinstance(d, int) for d in shape):
        return np.array(shape, dtype=np.int64)
    out = np.empty(len(shape), dtype=object)
    out[:] = [Sym(d) if isinstance(d, str) else int(d) for d in shape]
    return out


def simplify(array: np.ndarray) -> np.ndarray:
    """An object array whose symbols all vanished (``N*0``) back as plain int64."""
    if is_symbolic(array) and not any(isinstance(v, Sym) for v in array.flat):
        return array.astype(np.int64)
    return array
