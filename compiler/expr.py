"""`${...}` expressions: a small whitelist evaluator over Python's `ast` (never `eval`).

Allowed: numbers, strings, booleans, names of `vars`, + - * / // % **, unary - + not,
comparisons, and/or, `a if c else b`, list/tuple literals, indexing and slicing, and the
functions len, min, max, sum, range, int, float, round, abs.
"""
from __future__ import annotations

import ast
import operator
import re
from typing import Any, Callable

from biggan_zoo.compiler import limits

PATTERN = re.compile(r"\$\{([^{}]*)\}")

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len, "min": min, "max": max, "sum": sum, "int": int, "float": float, "round": round,
    "abs": abs, "range": lambda *a: list(range(*a)),
}


class ExprError(Exception):
    """An expression that cannot be evaluated; `offset` is the column inside the expression."""

    def __init__(self, message: str, hint: str = "", offset: int = 0) -> None:
        super().__init__(message)
        self.message, self.hint, self.offset = message, hint, offset


def evaluate(text: str, names: dict[str, Any]) -> Any:
    """Evaluate one expression (the text between `${` and `}`) against `names`."""
    if len(text) > limits.MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {limits.MAX_EXPR_CHARS} characters",
                        hint="move parts of it into `vars`")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"invalid expression: {e.msg}", offset=(e.offset or 1) - 1,
                        hint="expressions use Python syntax: ${ch * 16}") from None
    if sum(1 for _ in ast.walk(tree)) > limits.MAX_EXPR_NODES:
        raise ExprError(f"expression has more than {limits.MAX_EXPR_NODES} parts", hint="split it into `vars`")
    return _Evaluator(names).visit(tree.body)


class _Evaluator:
    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExprError(f"'{type(node).__name__}' is not allowed in expressions",
                            offset=getattr(node, "col_offset", 0),
                            hint="allowed: arithmetic, comparisons, if/else, lists, indexing, "
                            + ", ".join(sorted(_FUNCTIONS)))
        return _check_size(method(node), node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, str, bool)) and node.value is not None:
            raise ExprError(f"constant {node.value!r} is not allowed", offset=node.col_offset)
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        if node.id not in self.names:
            from biggan_zoo.compiler.diagnostics import did_you_mean
            raise ExprError(f"unknown name '{node.id}'", offset=node.col_offset,
                            hint=did_you_mean(node.id, self.names) or "define it under `vars`")
        return self.names[node.id]

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExprError(f"operator '{type(node.op).__name__}' is not allowed", offset=node.col_offset)
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64:
            raise ExprError("exponent larger than 64", offset=node.col_offset)
        if isinstance(node.op, ast.Mult) and isinstance(left, (list, str)) | isinstance(right, (list, str)):
            count = right if isinstance(left, (list, str)) else left
            seq = left if isinstance(left, (list, str)) else right
            if isinstance(count, int) and count * max(1, len(seq)) > limits.MAX_LIST_LEN:
                raise ExprError(f"list longer than {limits.MAX_LIST_LEN}", offset=node.col_offset)
        try:
            return op(left, right)
        except ZeroDivisionError:
            raise ExprError("division by zero", offset=node.col_offset) from None
        except TypeError as e:
            raise ExprError(f"cannot apply '{type(node.op).__name__}': {e}", offset=node.col_offset) from None

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ExprError(f"operator '{type(node.op).__name__}' is not allowed", offset=node.col_offset)
        try:
            return op(self.visit(node.operand))
        except TypeError as e:
            raise ExprError(str(e), offset=node.col_offset) from None

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.visit(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, comp in zip(node.ops, node.comparators):
            right = self.visit(comp)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError as e:
                raise ExprError(f"cannot compare: {e}", offset=node.col_offset) from None
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        value, index = self.visit(node.value), self.visit(node.slice)
        try:
            return value[index]
        except (IndexError, KeyError, TypeError) as e:
            raise ExprError(f"cannot index: {e}", offset=node.col_offset) from None

    def visit_Slice(self, node: ast.Slice) -> Any:
        parts = [self.visit(p) if p is not None else None for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise ExprError("only calls of " + ", ".join(sorted(_FUNCTIONS)) + " are allowed",
                            offset=node.col_offset)
        args = [self.visit(a) for a in node.args]
        if node.func.id == "range" and max((abs(a) for a in args if isinstance(a, int)), default=0) > limits.MAX_LIST_LEN:
            raise ExprError(f"range longer than {limits.MAX_LIST_LEN}", offset=node.col_offset)
        try:
            return _FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError) as e:
            raise ExprError(f"{node.func.id}(): {e}", offset=node.col_offset) from None


def _check_size(value: Any, node: ast.AST) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > limits.MAX_MAGNITUDE:
        raise ExprError(f"value {value:.3g} is larger than {limits.MAX_MAGNITUDE:.0e}",
                        offset=getattr(node, "col_offset", 0), hint="is a multiplication too many?")
    if isinstance(value, (list, str)) and len(value) > limits.MAX_LIST_LEN:
        raise ExprError(f"value longer than {limits.MAX_LIST_LEN}", offset=getattr(node, "col_offset", 0))
    return value
