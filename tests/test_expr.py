"""The `${...}` evaluator: what it computes, what it refuses, and that it never runs code."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biggan_zoo.compiler.expr import ExprError, evaluate

NAMES = {"ch": 96, "z_chunk": 20, "mults": [16, 16, 8, 4, 2, 1], "skip_z": True}


@pytest.mark.parametrize("text, value", [
    ("ch * 16", 1536), ("z_chunk * 6", 120), ("16 * ch * 4 * 4", 24576), ("mults[2] * ch", 768),
    ("len(mults)", 6), ("max(mults) // 2", 8), ("min(3, 4) ** 2", 9), ("ch % 7", 5),
    ("[z_chunk] * 3", [20, 20, 20]), ("z_chunk if skip_z else 0", 20), ("ch > 64 and ch < 128", True),
    ("mults[1:3]", [16, 8]), ("sum(mults)", 47), ("-ch", -96), ("1.0e-4 * 2", 2e-4),
])
def test_values(text, value):
    assert evaluate(text, NAMES) == value


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "only calls of"), ("ch.__class__", "'Attribute' is not allowed"),
    ("open('x')", "only calls of"), ("[x for x in mults]", "'ListComp' is not allowed"),
    ("lambda: 1", "'Lambda' is not allowed"), ("chh * 2", "unknown name 'chh'"),
    ("ch / 0", "division by zero"), ("2 ** 100", "exponent larger than 64"),
    ("10 ** 20", "larger than"), ("[1] * 100000", "list longer than"), ("ch +", "invalid expression"),
    ("mults[10]", "out of range"), ("'a' * 10**9", "on a string"), ("x" * 600, "longer than 500"),
])
def test_refused(text, message):
    with pytest.raises(ExprError) as e:
        evaluate(text, NAMES)
    assert message in e.value.message


def test_unknown_name_hint():
    with pytest.raises(ExprError) as e:
        evaluate("z_chnk * 2", NAMES)
    assert "z_chunk" in e.value.hint


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_gives_a_value_or_expr_error(text):
    try:
        evaluate(text, NAMES)
    except ExprError:
        pass
