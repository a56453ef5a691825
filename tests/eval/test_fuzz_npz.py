"""Mutated reference-statistics files: `read_reference` reads them or raises one StatsFileError line; `zoo eval`
exits 1 on them without a traceback. Never another exception, never a pickle."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biggan_zoo.runtime.eval.stats import StatsFileError, read_reference

EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES", "150"))


def _valid_npz() -> bytes:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 6))
    buffer = io.BytesIO()
    np.savez(buffer, format=np.array("zoo-reference-stats/1"), mu=data.mean(0), sigma=np.cov(data, rowvar=False),
             n=np.array(20), protocol=np.array('{"extractor": "x"}'), features=data.astype(np.float32),
             class_mu=data[:2], class_sigma=np.stack([np.eye(6, dtype=np.float32)] * 2), class_n=np.array([10, 10]),
             class_names=np.array('["a", "b"]'))
    return buffer.getvalue()


VALID = _valid_npz()


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            data[at:at + 8] = draw(st.sampled_from([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff" * 2]))
    return bytes(data)


@st.composite
def odd_members(draw) -> bytes:
    """Valid zips whose members are odd arrays: object dtype, wrong shapes, strings, NaN, huge declared sizes."""
    choices = {
        "mu": [np.zeros(6), np.zeros((6, 1)), np.array("x"), np.array([np.nan] * 6), np.zeros(0)],
        "sigma": [np.eye(6), np.eye(5), np.zeros((6, 6, 1)), np.array([[1j] * 6] * 6)],
        "protocol": [np.array("{}"), np.array("[1, 2]"), np.array("{" * 5000), np.array(3.0)],
        "n": [np.array(5), np.array(5.5), np.array([1, 2])],
        "class_mu": [None, np.zeros((2, 6))], "class_sigma": [None, np.zeros((2, 6, 6)), np.zeros((3, 6, 6))],
    }
    arrays = {k: draw(st.sampled_from(v)) for k, v in choices.items()}
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if v is not None})
    if draw(st.booleans()):  # an object array, which only pickle can read
        with zipfile.ZipFile(buffer, "a") as archive:
            inner = io.BytesIO()
            np.save(inner, np.array([{"a": 1}], dtype=object), allow_pickle=True)
            archive.writestr("features.npy", inner.getvalue())
    return buffer.getvalue()


def _check(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("npz") / "ref.npz"
    path.write_bytes(content)
    try:
        read_reference(path)
    except StatsFileError as error:
        assert "\n" not in str(error)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=mutated())
def test_mutated_bytes(tmp_path_factory, content: bytes) -> None:
    _check(tmp_path_factory, content)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=odd_members())
def test_odd_members(tmp_path_factory, content: bytes) -> None:
    _check(tmp_path_factory, content)
