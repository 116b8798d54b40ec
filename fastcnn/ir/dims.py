"""Symbolic dimensions: the one algebra the IR's shape inference and the importer's folds share.

A dim (:data:`fastcnn.ir.core.Dim`) is an ``int`` or a ``str`` naming a size known only at run
time. The string is an integer expression over symbols, written as Python would:
``"N"``, ``"N*400"``, ``"(H+1)//2"``, ``"((H+1)//2)*N"``. This module parses such strings into
:class:`Expr`, computes with them, and writes them back in one canonical spelling, so two
dims are the same size exactly when their strings are equal (as far as the algebra can tell).

The normal form is a sum of integer multiples of products of *atoms*, an atom being a symbol
or a floor division ``P//d`` of such a sum by a positive integer. ``floordiv`` keeps it small:
it takes out what divides exactly (``(2*H+3)//2`` is ``H+1``, with ``(H+1)//2`` written for the
remainder's part), cancels common factors, and folds nested divisions
(``((H+1)//2+1)//2`` is ``(H+3)//4``), so a ResNet's five stride-2 stages make ``(H+31)//32``
and not a tower of parentheses. Ceil division is ``(P+d-1)//d``.

A written dim longer than :data:`MAX_DIM_CHARS` raises :class:`SymbolTooLarge`: shape
arithmetic that grows without bound (a size added to itself K times) stops there.

A string that is not such an expression (``"?"``, ``"batch size"``) is one opaque symbol.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

MAX_DIM_CHARS = 200


class SymbolicValueError(ValueError):
    """A computation that needs the value of a size known only at run time."""


class SymbolTooLarge(SymbolicValueError):
    """A symbolic size whose expression is longer than :data:`MAX_DIM_CHARS`."""


@dataclass(frozen=True)
class Floor:
    """The atom ``num // den`` for a non-constant ``num`` and ``den`` > 1."""

    num: Expr
    den: int

    def __str__(self) -> str:
        inner = str(self.num)
        return f"{inner}//{self.den}" if inner.isidentifier() else f"({inner})//{self.den}"


Atom = str | Floor
Monomial = tuple[Atom, ...]  # sorted by _atom_key; () is the constant term


def _atom_key(atom: Atom) -> tuple[int, str]:
    return (0, atom) if isinstance(atom, str) else (1, str(atom))


@dataclass(frozen=True)
class Expr:
    """An integer polynomial over atoms, in normal form: ``terms`` maps monomials to nonzero
    coefficients, sorted, the constant (monomial ``()``) last."""

    terms: tuple[tuple[Monomial, int], ...]

    # -- building -------------------------------------------------------------------------
    @staticmethod
    def of(terms: Mapping[Monomial, int]) -> Expr:
        kept = [(m, c) for m, c in terms.items() if c]
        kept.sort(key=lambda mc: (not mc[0], [_atom_key(a) for a in mc[0]]))
        return Expr(tuple(kept))

    @staticmethod
    def const(value: int) -> Expr:
        return Expr.of({(): int(value)})

    @staticmethod
    def symbol(name: str) -> Expr:
        return Expr.of({(name,): 1})

    # -- reading --------------------------------------------------------------------------
    @property
    def is_const(self) -> bool:
        return all(not m for m, _ in self.terms)

    @property
    def constant(self) -> int:
        return next((c for m, c in self.terms if not m), 0)

    def symbols(self) -> frozenset[str]:
        out: set[str] = set()
        for monomial, _ in self.terms:
            for atom in monomial:
                out |= {atom} if isinstance(atom, str) else atom.num.symbols()
        return frozenset(out)

    def evaluate(self, sizes: Mapping[str, int]) -> int:
        """The value once every symbol is bound; KeyError names a missing symbol."""
        total = 0
        for monomial, coeff in self.terms:
            value = coeff
            for atom in monomial:
                value *= sizes[atom] if isinstance(atom, str) else atom.num.evaluate(sizes) // atom.den
            total += value
        return total

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for monomial, coeff in self.terms:
            if not monomial:
                text, sign = str(abs(coeff)), coeff < 0
            else:
                atoms = [a if isinstance(a, str) else (str(a) if len(monomial) == 1 and abs(coeff) == 1
                                                       else f"({a})") for a in monomial]
                text = "*".join(atoms + ([str(abs(coeff))] if abs(coeff) != 1 else []))
                sign = coeff < 0
            parts.append(("-" if sign else "+") + text)
        out = "".join(parts)
        return out.removeprefix("+")

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, other: Expr) -> Expr:
        terms = dict(self.terms)
        for m, c in other.terms:
            terms[m] = terms.get(m, 0) + c
        return Expr.of(terms)

    def __neg__(self) -> Expr:
        return Expr(tuple((m, -c) for m, c in self.terms))

    def __sub__(self, other: Expr) -> Expr:
        return self + (-other)

    def __mul__(self, other: Expr) -> Expr:
        terms: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in other.terms:
                m = tuple(sorted(m1 + m2, key=_atom_key))
                terms[m] = terms.get(m, 0) + c1 * c2
        return Expr.of(terms)

    def floordiv(self, den: int) -> Expr:
        """``self // den`` (floor, as Python) for a positive integer ``den``, in normal form."""
        if den <= 0:
            raise SymbolicValueError(f"division of a size by {den}")
        if den == 1:
            return self
        exact: dict[Monomial, int] = {}
        rest: dict[Monomial, int] = {}
        for m, c in self.terms:
            q, r = divmod(c, den)
            exact[m], rest[m] = q, r
        quotient, remainder = Expr.of(exact), Expr.of(rest)
        if remainder.is_const:  # 0 <= remainder < den
            return quotient
        common = math.gcd(den, *(c for _, c in remainder.terms))
        if common > 1:
            remainder, den = Expr(tuple((m, c // common) for m, c in remainder.terms)), den // common
        inner = [(m, c) for m, c in remainder.terms if m]
        if len(inner) == 1 and inner[0][1] == 1 and len(inner[0][0]) == 1 and isinstance(inner[0][0][0], Floor):
            # (X//a + c)//den == (X + c*a)//(a*den) for integer X and c
            floor = inner[0][0][0]
            return quotient + (floor.num + Expr.const(remainder.constant * floor.den)).floordiv(floor.den * den)
        return quotient + Expr.of({(Floor(remainder, den),): 1})

    def ceildiv(self, den: int) -> Expr:
        """``ceil(self / den)`` for a positive integer ``den``."""
        return (self + Expr.const(den - 1)).floordiv(den)

    def divide_exact(self, other: Expr) -> Expr | None:
        """``self / other`` when ``other`` is one term that divides every term of ``self``, else None."""
        if len(other.terms) != 1:
            return None
        (dm, dc), = other.terms
        terms: dict[Monomial, int] = {}
        for m, c in self.terms:
            rest = list(m)
            for atom in dm:
                if atom not in rest:
                    return None
                rest.remove(atom)
            if c % dc:
                return None
            terms[tuple(rest)] = c // dc
        return Expr.of(terms)


# -- dims <-> expressions ----------------------------------------------------------------------
Dim = int | str


def parse(dim: Dim | Expr) -> Expr:
    """A dim as an :class:`Expr`: ints are constants, strings parsed (or one opaque symbol)."""
    if isinstance(dim, Expr):
        return dim
    if isinstance(dim, str):
        return _parse_str(dim)
    if isinstance(dim, bool):
        raise TypeError(f"a dim must be an int or a str, got {dim!r}")
    return Expr.const(int(dim))  # ints and NumPy integers


@lru_cache(maxsize=4096)
def _parse_str(text: str) -> Expr:
    if text.isidentifier():
        return Expr.symbol(text)
    try:
        tree = ast.parse(text, mode="eval").body
        return _from_ast(tree)
    except (SyntaxError, ValueError, RecursionError):
        return Expr.symbol(text)


def _from_ast(node: ast.AST) -> Expr:
    if isinstance(node, ast.Name):
        return Expr.symbol(node.id)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return Expr.const(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_from_ast(node.operand)
    if isinstance(node, ast.BinOp):
        left, right = _from_ast(node.left), _from_ast(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.FloorDiv) and right.is_const and right.constant > 0:
            return left.floordiv(right.constant)
    raise ValueError("not a dim expression")


def to_dim(expr: Expr) -> Dim:
    """An :class:`Expr` as a dim: an int when constant, else its canonical string."""
    if expr.is_const:
        return expr.constant
    text = str(expr)
    if len(text) > MAX_DIM_CHARS:
        raise SymbolTooLarge(f"the size expression {text[:60]}... has {len(text)} characters "
                             f"(fastcnn keeps at most {MAX_DIM_CHARS})")
    return text


def canonical(dim: Dim) -> Dim:
    """``dim`` in the canonical spelling (``"2*N"`` -> ``"N*2"``, ``"N-N"`` -> 0)."""
    return to_dim(parse(dim))


def add(*dims: Dim) -> Dim:
    total = Expr.const(0)
    for d in dims:
        total = total + parse(d)
    return to_dim(total)


def sub(a: Dim, b: Dim) -> Dim:
    return to_dim(parse(a) - parse(b))


def mul(*dims: Dim) -> Dim:
    total = Expr.const(1)
    for d in dims:
        total = total * parse(d)
    return to_dim(total)


def product(dims: tuple[Dim, ...] | list[Dim]) -> Dim:
    """The product of ``dims``: ``("N", 16, 5, 5)`` -> ``"N*400"``."""
    return mul(*dims)


def floordiv(a: Dim, den: int) -> Dim:
    return to_dim(parse(a).floordiv(int(den)))


def ceildiv(a: Dim, den: int) -> Dim:
    return to_dim(parse(a).ceildiv(int(den)))


def divide_exact(a: Dim, b: Dim) -> Dim | None:
    """``a / b`` when it divides exactly as written (``"N*400"`` / 16 -> ``"N*25"``), else None."""
    quotient = parse(a).divide_exact(parse(b))
    return None if quotient is None else to_dim(quotient)


def symbols(dim: Dim) -> frozenset[str]:
    """The symbols ``dim`` depends on (none for an int)."""
    return frozenset() if isinstance(dim, int) else parse(dim).symbols()


def evaluate(dim: Dim, sizes: Mapping[str, int]) -> int:
    """The value of ``dim`` with its symbols bound: ``"N*400"`` with N=8 is 3200.
    KeyError names the first symbol ``sizes`` lacks."""
    if isinstance(dim, int):
        return dim
    return parse(dim).evaluate(sizes)


def substitute(dim: Dim, sizes: Mapping[str, int]) -> Dim:
    """``dim`` with the symbols ``sizes`` binds replaced by their values (others stay)."""
    if isinstance(dim, int) or not symbols(dim) & set(sizes):
        return dim
    expr = parse(dim)
    full = {s: sizes.get(s) for s in expr.symbols()}
    return to_dim(_substitute(expr, full))


def _substitute(expr: Expr, sizes: Mapping[str, int | None]) -> Expr:
    total = Expr.const(0)
    for monomial, coeff in expr.terms:
        term = Expr.const(coeff)
        for atom in monomial:
            if isinstance(atom, str):
                value = sizes.get(atom)
                term = term * (Expr.symbol(atom) if value is None else Expr.const(value))
            else:
                term = term * _substitute(atom.num, sizes).floordiv(atom.den)
        total = total + term
    return total


def is_identifier(name: str) -> bool:
    """Whether ``name`` can be a symbol of a written expression (a Python identifier)."""
    return name.isidentifier()
