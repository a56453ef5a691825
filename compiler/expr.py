"""`${...}` expressions: a small, typed whitelist evaluator over Python's `ast` (never `eval`).

Values are numbers (int or finite float, at most `limits.MAX_MAGNITUDE`), booleans, flat lists of
numbers (at most `limits.MAX_LIST_LEN` long) and strings. Strings pass through (`${style}`) and
compare with == and !=, but never take part in arithmetic, indexing or calls: `16 * ch` with a
string `ch` is an error, not a string repeated 16 times.

Allowed syntax: constants, names of `vars`, + - * / // % **, unary - + not, comparisons, and/or,
`a if c else b`, list/tuple literals, indexing and slicing of lists, and the functions len, min,
max, sum, range, int, float, round, abs.

Every result is checked before it is kept, and a `Budget` shared by all expressions of one spec
counts evaluation steps and list elements, so no input can make evaluation slow or large.
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from typing import Any, Callable, Mapping

from biggan_zoo.compiler import limits

PATTERN = re.compile(r"\$\{([^{}]*)\}")

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
FUNCTIONS = ("abs", "float", "int", "len", "max", "min", "range", "round", "sum")
_ALLOWED_HINT = "allowed: arithmetic, comparisons, if/else, lists, indexing, " + ", ".join(FUNCTIONS)


class ExprError(Exception):
    """An expression that cannot be evaluated; `offset` is the column inside the expression."""

    def __init__(self, message: str, hint: str = "", offset: int = 0) -> None:
        super().__init__(message)
        self.message, self.hint, self.offset = message, hint, offset


class Budget:
    """Work shared by every expression of one spec: evaluation steps and list elements made."""

    def __init__(self, steps: int = limits.MAX_EXPR_STEPS, elements: int = limits.MAX_EXPR_ELEMENTS) -> None:
        self.steps, self.elements = steps, elements

    def charge(self, steps: int, elements: int, offset: int) -> None:
        """Spend `steps` and `elements`; an ExprError once either is used up."""
        self.steps -= steps
        self.elements -= elements
        if self.steps < 0:
            raise ExprError(f"the spec's expressions take more than {limits.MAX_EXPR_STEPS} steps in total",
                            offset=offset, hint="expressions are for sizes and small lists; simplify them")
        if self.elements < 0:
            raise ExprError(f"the spec's expressions make more than {limits.MAX_EXPR_ELEMENTS} list elements "
                            "in total", offset=offset, hint="expressions are for sizes and small lists")


def is_number(value: Any) -> bool:
    """int, float or bool (bool counts as a number, as in Python)."""
    return isinstance(value, (int, float))


def kind(value: Any) -> str:
    """The expression language's name for the type of `value`."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "null" if value is None else type(value).__name__


def check_value(value: Any, offset: int = 0, what: str = "value") -> Any:
    """`value` if it is a value of the language within the limits, else an ExprError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > limits.MAX_MAGNITUDE:
            raise ExprError(f"{what} {_short(value)} is larger than {limits.MAX_MAGNITUDE:.0e}", offset=offset,
                            hint="is a multiplication too many?")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExprError(f"{what} is {value} (not a finite number)", offset=offset,
                            hint="an overflow or a division that has no value")
        if abs(value) > limits.MAX_MAGNITUDE:
            raise ExprError(f"{what} {value:.3g} is larger than {limits.MAX_MAGNITUDE:.0e}", offset=offset,
                            hint="is a multiplication too many?")
        return value
    if isinstance(value, str):
        if len(value) > limits.MAX_STRING_CHARS:
            raise ExprError(f"{what} is a string longer than {limits.MAX_STRING_CHARS} characters", offset=offset)
        return value
    if isinstance(value, list):
        if len(value) > limits.MAX_LIST_LEN:
            raise ExprError(f"{what} is a list longer than {limits.MAX_LIST_LEN}", offset=offset)
        for item in value:
            if not is_number(item):
                raise ExprError(f"{what} is a list holding a {kind(item)}; lists in expressions hold numbers only",
                                offset=offset, hint="use a list of numbers, or move the data out of `${...}`")
            check_value(item, offset, "list element")
        return value
    raise ExprError(f"{what} is a {kind(value)}; expressions use numbers, booleans, strings and lists of numbers",
                    offset=offset)


def _short(number: int) -> str:
    return f"{float(number):.3g}" if abs(number) < 10**300 else f"with {len(str(abs(number)))} digits"


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> ast.expr:
    """The syntax tree of one expression, within the size limits; ExprError otherwise."""
    if len(text) > limits.MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {limits.MAX_EXPR_CHARS} characters",
                        hint="move parts of it into `vars`")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:  # ValueError: over 4300 digits
        msg = getattr(e, "msg", None) or str(e).split(":")[0] or type(e).__name__
        raise ExprError(f"invalid expression: {msg}", offset=(getattr(e, "offset", None) or 1) - 1,
                        hint="expressions use Python syntax: ${ch * 16}") from None
    count, stack = 0, [(tree.body, 1)]
    while stack:  # iterative: the tree may be deeper than Python's recursion allows
        node, depth = stack.pop()
        count += 1
        if count > limits.MAX_EXPR_NODES:
            raise ExprError(f"expression has more than {limits.MAX_EXPR_NODES} parts", hint="split it into `vars`")
        if depth > limits.MAX_EXPR_DEPTH:
            raise ExprError(f"expression nested deeper than {limits.MAX_EXPR_DEPTH} levels",
                            offset=getattr(node, "col_offset", 0), hint="split it into `vars`")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree.body


def names_in(text: str) -> set[str]:
    """Names an expression reads (empty when it does not parse: evaluating it reports that)."""
    try:
        tree = parse(text)
    except ExprError:
        return set()
    nodes = list(ast.walk(tree))
    if any(isinstance(n, (ast.comprehension, ast.Lambda, ast.NamedExpr)) for n in nodes):
        return set()  # not allowed: evaluating it says so, rather than a cycle through a bound name
    return {n.id for n in nodes if isinstance(n, ast.Name)}


def evaluate(text: str, names: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Evaluate one expression (the text between `${` and `}`) against `names`."""
    return _Evaluator(names, budget or Budget()).visit(parse(text))


class _Evaluator:
    def __init__(self, names: Mapping[str, Any], budget: Budget) -> None:
        self.names, self.budget = names, budget

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        offset = getattr(node, "col_offset", 0)
        if method is None:
            raise ExprError(f"'{type(node).__name__}' is not allowed in expressions", offset=offset,
                            hint=_ALLOWED_HINT)
        self.budget.charge(1, 0, offset)
        value = check_value(method(node), offset)
        if isinstance(value, list):
            self.budget.charge(0, len(value), offset)
        return value

    def number(self, node: ast.AST, what: str) -> int | float:
        value = self.visit(node)
        if not is_number(value):
            raise ExprError(f"{what} must be a number, got a {kind(value)}", offset=node.col_offset,
                            hint="strings are names and labels, never part of arithmetic" if isinstance(value, str)
                            else "")
        return value

    def integer(self, node: ast.AST, what: str) -> int:
        value = self.number(node, what)
        if not isinstance(value, int):
            raise ExprError(f"{what} must be a whole number, got {value!r}", offset=node.col_offset,
                            hint="use int(...) or //")
        return value

    def visit_Constant(self, node: ast.Constant) -> Any:
        if isinstance(node.value, (bool, int, float, str)):
            return node.value
        raise ExprError(f"constant {node.value!r} is not allowed", offset=node.col_offset,
                        hint="constants are numbers, booleans (True, False) and strings")

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in ("True", "False"):
            return node.id == "True"
        if node.id not in self.names:
            from biggan_zoo.compiler.diagnostics import did_you_mean
            raise ExprError(f"unknown name '{node.id}'", offset=node.col_offset,
                            hint=did_you_mean(node.id, self.names) or "define it under `vars`")
        return check_value(self.names[node.id], node.col_offset, f"'{node.id}'")

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op_type, symbol = type(node.op), _SYMBOL.get(type(node.op), type(node.op).__name__)
        if op_type not in _BINOPS:
            raise ExprError(f"operator '{symbol}' is not allowed", offset=node.col_offset, hint=_ALLOWED_HINT)
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(left, str) or isinstance(right, str):
            raise ExprError(f"'{symbol}' on a string", offset=node.col_offset,
                            hint="strings are names and labels, never part of arithmetic")
        if isinstance(left, list) or isinstance(right, list):
            return self._list_op(node, symbol, left, right)
        if op_type is ast.Pow:
            self._check_power(node, left, right)
        try:
            result = _BINOPS[op_type](left, right)
        except ZeroDivisionError:
            raise ExprError("division by zero", offset=node.col_offset) from None
        except (OverflowError, ValueError, TypeError) as e:
            raise ExprError(f"'{symbol}': {e}", offset=node.col_offset) from None
        if isinstance(result, complex):
            raise ExprError("a negative number to a fractional power has no real value", offset=node.col_offset)
        return result

    def _check_power(self, node: ast.BinOp, base: int | float, exponent: int | float) -> None:
        if abs(exponent) > 64:
            raise ExprError("exponent larger than 64", offset=node.col_offset)
        if exponent > 0 and abs(base) > 1 and exponent * math.log10(abs(base)) > math.log10(limits.MAX_MAGNITUDE) + 1:
            raise ExprError(f"{base!r} ** {exponent!r} is larger than {limits.MAX_MAGNITUDE:.0e}",
                            offset=node.col_offset, hint="is the exponent right?")

    def _list_op(self, node: ast.BinOp, symbol: str, left: Any, right: Any) -> list:
        if symbol == "+" and isinstance(left, list) and isinstance(right, list):
            size = len(left) + len(right)
        elif symbol == "*" and (isinstance(left, list) != isinstance(right, list)):
            seq, count = (left, right) if isinstance(left, list) else (right, left)
            if not isinstance(count, int) or isinstance(count, bool):
                raise ExprError(f"a list can only be repeated a whole number of times, got {count!r}",
                                offset=node.col_offset)
            size = len(seq) * max(count, 0)
        else:
            raise ExprError(f"'{symbol}' on a list", offset=node.col_offset,
                            hint="lists support + (another list), * (a whole number), indexing, len, min, max, sum")
        if size > limits.MAX_LIST_LEN:
            raise ExprError(f"list longer than {limits.MAX_LIST_LEN}", offset=node.col_offset)
        self.budget.charge(0, size, node.col_offset)
        return left + right if symbol == "+" else left * right

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            return not self.visit(node.operand)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.number(node.operand, "the operand of unary minus or plus")
            return -value if isinstance(node.op, ast.USub) else +value
        raise ExprError(f"operator '{type(node.op).__name__}' is not allowed", offset=node.col_offset,
                        hint=_ALLOWED_HINT)

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        values = [self.visit(v) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, comp in zip(node.ops, node.comparators):
            right = self.visit(comp)
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, list):
                    raise ExprError(f"'in' needs a list on its right, got a {kind(right)}", offset=node.col_offset)
                self.budget.charge(len(right), 0, node.col_offset)
            elif isinstance(op, (ast.Is, ast.IsNot)):
                raise ExprError("'is' is not allowed", offset=node.col_offset, hint="use == or !=")
            elif not isinstance(op, (ast.Eq, ast.NotEq)) and (isinstance(left, str) != isinstance(right, str)):
                raise ExprError(f"cannot order a {kind(left)} and a {kind(right)}", offset=node.col_offset)
            else:
                self.budget.charge(min(len(left) if isinstance(left, list) else 1,
                                       len(right) if isinstance(right, list) else 1), 0, node.col_offset)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError:
                raise ExprError(f"cannot compare a {kind(left)} and a {kind(right)}", offset=node.col_offset) from None
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_List(self, node: ast.List | ast.Tuple) -> list:
        values = [self.visit(e) for e in node.elts]
        for value, elt in zip(values, node.elts):
            if not is_number(value):
                raise ExprError(f"a list element must be a number, got a {kind(value)}", offset=elt.col_offset,
                                hint="lists in expressions hold numbers only")
        return values

    visit_Tuple = visit_List

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        value = self.visit(node.value)
        if not isinstance(value, list):
            raise ExprError(f"cannot index a {kind(value)}", offset=node.col_offset, hint="only lists can be indexed")
        if isinstance(node.slice, ast.Slice):
            parts = [self.integer(p, "a slice bound") if p is not None else None
                     for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            if parts[2] == 0:
                raise ExprError("slice step cannot be zero", offset=node.col_offset)
            return value[slice(*parts)]
        index = self.integer(node.slice, "an index")
        if not -len(value) <= index < len(value):
            raise ExprError(f"index {index} is out of range for a list of {len(value)}", offset=node.col_offset)
        return value[index]

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise ExprError("only calls of " + ", ".join(FUNCTIONS) + " are allowed", offset=node.col_offset)
        name = node.func.id
        return getattr(self, "call_" + name)(node, node.args)

    def _arity(self, node: ast.Call, args: list, lo: int, hi: int) -> None:
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ExprError(f"{node.func.id}() takes {want} argument(s), got {len(args)}", offset=node.col_offset)

    def _numbers(self, node: ast.Call, args: list) -> list:
        """The numbers a min/max/sum call is over: one list, or two or more numbers."""
        name = node.func.id
        if len(args) == 1:
            value = self.visit(args[0])
            if not isinstance(value, list):
                raise ExprError(f"{name}() of one argument needs a list, got a {kind(value)}", offset=node.col_offset)
            self.budget.charge(len(value), 0, node.col_offset)
            return value
        if not args or name == "sum":
            raise ExprError(f"{name}() takes a list" + ("" if name == "sum" else " or two or more numbers"),
                            offset=node.col_offset)
        return [self.number(a, f"an argument of {name}()") for a in args]

    def call_len(self, node: ast.Call, args: list) -> int:
        self._arity(node, args, 1, 1)
        value = self.visit(args[0])
        if not isinstance(value, (list, str)):
            raise ExprError(f"len() of a {kind(value)}", offset=node.col_offset, hint="len() takes a list")
        return len(value)

    def call_min(self, node: ast.Call, args: list) -> Any:
        values = self._numbers(node, args)
        if not values:
            raise ExprError("min() of an empty list", offset=node.col_offset)
        return min(values)

    def call_max(self, node: ast.Call, args: list) -> Any:
        values = self._numbers(node, args)
        if not values:
            raise ExprError("max() of an empty list", offset=node.col_offset)
        return max(values)

    def call_sum(self, node: ast.Call, args: list) -> Any:
        values = self._numbers(node, args)
        total = math.fsum(values) if any(isinstance(v, float) for v in values) else sum(values)
        return total

    def call_range(self, node: ast.Call, args: list) -> list:
        self._arity(node, args, 1, 3)
        bounds = [self.integer(a, "an argument of range()") for a in args]
        if len(bounds) == 3 and bounds[2] == 0:
            raise ExprError("range() step cannot be zero", offset=node.col_offset)
        size = len(range(*bounds))
        if size > limits.MAX_LIST_LEN:
            raise ExprError(f"range longer than {limits.MAX_LIST_LEN}", offset=node.col_offset)
        self.budget.charge(0, size, node.col_offset)
        return list(range(*bounds))

    def call_int(self, node: ast.Call, args: list) -> int:
        self._arity(node, args, 1, 1)
        return int(self.number(args[0], "the argument of int()"))

    def call_float(self, node: ast.Call, args: list) -> float:
        self._arity(node, args, 1, 1)
        return float(self.number(args[0], "the argument of float()"))

    def call_abs(self, node: ast.Call, args: list) -> Any:
        self._arity(node, args, 1, 1)
        return abs(self.number(args[0], "the argument of abs()"))

    def call_round(self, node: ast.Call, args: list) -> Any:
        self._arity(node, args, 1, 2)
        value = self.number(args[0], "the argument of round()")
        if len(args) == 1:
            return round(value)
        digits = self.integer(args[1], "the digits of round()")
        if abs(digits) > 20:
            raise ExprError("round() to more than 20 digits", offset=node.col_offset)
        return round(value, digits)
