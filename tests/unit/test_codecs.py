"""Array codecs: what a numpy model receives and what its answer looks like on the wire."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchform.errors import InputFormatError
from batchform.runtimes import codecs


def loadtxt(body: bytes) -> np.ndarray:
    return np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)


# --- media types ---


@pytest.mark.parametrize(
    ("header", "media"),
    [
        ("text/csv", "text/csv"),
        ("Text/CSV; charset=utf-8", "text/csv"),
        ("text/csv;label_size=0", "text/csv"),
        (" application/json ", "application/json"),
        (None, None),
        ("", None),
    ],
)
def test_media_type_ignores_parameters_and_case(header: str | None, media: str | None) -> None:
    assert codecs.media_type(header) == media


def test_accept_lists_keep_client_order() -> None:
    accept = "application/x-npy;q=0.5, text/csv , application/json"
    assert codecs.accepted_media_types(accept) == [
        "application/x-npy",
        "text/csv",
        "application/json",
    ]


def test_unknown_types_have_no_codec() -> None:
    assert codecs.decoder_for("image/png") is None
    assert codecs.encoder_for("text/html") is None
    assert codecs.decoder_for(None) is None
    assert codecs.decoder_for("application/jsonl") is codecs.jsonlines_to_array


# --- CSV in ---


def test_csv_rows_become_a_float_matrix() -> None:
    array = codecs.csv_to_array(b"1,2.5,-3\n4,5e-3,6\n")
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [[1, 2.5, -3], [4, 0.005, 6]])


def test_csv_one_line_and_one_column_stay_two_dimensional() -> None:
    assert codecs.csv_to_array(b"1,2,3\n").shape == (1, 3)
    assert codecs.csv_to_array(b"1\n2\n3\n").shape == (3, 1)


def test_csv_accepts_str_crlf_and_spaces() -> None:
    expected = [[1.0, 2.0], [3.0, 4.0]]
    np.testing.assert_array_equal(codecs.csv_to_array("1,2\n3,4"), expected)
    np.testing.assert_array_equal(codecs.csv_to_array(b"1,2\r\n3,4\r\n"), expected)
    np.testing.assert_array_equal(codecs.csv_to_array(b" 1, 2\n3 ,4\n"), expected)


@pytest.mark.parametrize(
    "body",
    [b"+1,.5\n-.25,1.\n", b"nan,inf\n-inf,1\n", b"007,1e5\n1E+05,2\n", b"1,2\n\n3,4\n"],
)
def test_csv_numbers_json_cannot_read_still_parse(body: bytes) -> None:
    np.testing.assert_array_equal(codecs.csv_to_array(body), loadtxt(body))


def test_csv_keeps_the_sign_of_negative_zero() -> None:
    array = codecs.csv_to_array(b"-0,1\n2,-0\n")
    assert np.signbit(array[0, 0]) and np.signbit(array[1, 1])


def test_csv_missing_values_become_nan_as_in_the_toolkit() -> None:
    array = codecs.csv_to_array(b"1,,3\n4,5,6\n")
    assert array.shape == (2, 3)
    assert np.isnan(array[0, 1]) and array[1, 2] == 6


def test_csv_text_falls_back_to_the_toolkit_parse() -> None:
    array = codecs.csv_to_array(b"a,b\nc,d\n")
    assert array.shape == (2, 2) and array[1, 0] == "c"


def test_ragged_csv_is_an_input_format_error() -> None:
    with pytest.raises(InputFormatError, match="text/csv"):
        codecs.csv_to_array(b"1,2,3\n4,5\n")


def test_ragged_csv_with_matching_totals_is_not_reshaped() -> None:
    # 2 + 1 + 3 fields = 3 lines of 2: only a per-line check catches it.
    with pytest.raises(InputFormatError):
        codecs.csv_to_array(b"1,2\n3\n4,5,6\n")


def test_empty_csv_is_an_empty_matrix() -> None:
    assert codecs.csv_to_array(b"\n").shape == (0, 0)


finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6).flatmap(
        lambda width: st.lists(st.lists(finite_floats, min_size=width, max_size=width), min_size=1)
    ),
    style=st.sampled_from([repr, lambda value: f"{value:.4f}", lambda value: f"{value:.3g}"]),
)
def test_csv_values_match_numpy_exactly(rows: list[list[float]], style: object) -> None:
    body = "".join(",".join(map(style, row)) + "\n" for row in rows).encode()  # type: ignore[arg-type]
    got = codecs.csv_to_array(body)
    expected = loadtxt(body)
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


# --- JSON, JSON Lines, NPY in ---


def test_json_becomes_an_array() -> None:
    np.testing.assert_array_equal(codecs.json_to_array(b"[[1, 2], [3, 4.5]]"), [[1, 2], [3, 4.5]])
    assert np.isnan(codecs.json_to_array("[NaN, 1]")[0])  # Python's json reads NaN


def test_invalid_or_ragged_json_is_an_input_format_error() -> None:
    with pytest.raises(InputFormatError, match="not valid JSON"):
        codecs.json_to_array(b"[1, 2")
    with pytest.raises(InputFormatError, match="array-shaped"):
        codecs.json_to_array(b"[[1, 2], [3]]")


def test_jsonlines_become_one_row_per_line() -> None:
    array = codecs.jsonlines_to_array(b"[1, 2]\n[3, 4]\n")
    np.testing.assert_array_equal(array, [[1, 2], [3, 4]])


def test_jsonlines_tolerate_blank_lines() -> None:
    np.testing.assert_array_equal(codecs.jsonlines_to_array(b"1\n\n2\r\n"), [1, 2])


def test_npy_round_trips_and_refuses_pickles() -> None:
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    loaded = codecs.npy_to_array(codecs.array_to_npy(array))
    assert loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, array)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputFormatError, match="npy"):
        codecs.npy_to_array(pickled.getvalue())


# --- out ---


def test_csv_out_is_one_line_per_row() -> None:
    assert codecs.array_to_csv(np.array([[1.5, 2.0], [3.0, 0.1]])) == b"1.5,2.0\n3.0,0.1\n"


def test_csv_out_of_one_dimensional_predictions_is_one_value_per_line() -> None:
    assert codecs.array_to_csv(np.array([1, 0, 1])) == b"1\n0\n1\n"
    assert codecs.array_to_csv([0.5, 2]) == b"0.5\n2.0\n"
    assert codecs.array_to_csv(np.float64(3.5)) == b"3.5\n"


def test_csv_out_writes_what_savetxt_percent_s_writes() -> None:
    cases = [
        np.array([[np.nan, np.inf], [-np.inf, 1.0]]),
        np.array([[0.1, 3.4e38]], dtype=np.float32),
        np.array([[True, False]]),
        np.array([["a", "b"]]),
        np.array([[0.1]], dtype=np.float16),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    ]
    for array in cases:
        expected = io.StringIO()
        np.savetxt(expected, array, delimiter=",", fmt="%s")
        assert codecs.array_to_csv(array) == expected.getvalue().encode()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(finite_floats, min_size=3, max_size=3), min_size=1, max_size=20))
def test_csv_out_reads_back_to_the_same_floats(rows: list[list[float]]) -> None:
    array = np.array(rows)
    np.testing.assert_array_equal(loadtxt(codecs.array_to_csv(array)), array)


def test_csv_out_of_empty_and_three_dimensional_predictions() -> None:
    assert codecs.array_to_csv(np.empty((0, 3))) == b""
    assert codecs.array_to_csv(np.empty((2, 0))) == b"\n\n"
    with pytest.raises(ValueError, match="1-D or 2-D"):
        codecs.array_to_csv(np.zeros((2, 2, 2)))


def test_json_out_handles_arrays_scalars_and_views() -> None:
    payload = {"scores": np.arange(4.0).reshape(2, 2).T, "label": np.int64(3), 1: "x"}
    assert json.loads(codecs.array_to_json(payload)) == {
        "scores": [[0.0, 2.0], [1.0, 3.0]],
        "label": 3,
        "1": "x",
    }


def test_jsonlines_out_is_one_line_per_row() -> None:
    assert codecs.array_to_jsonlines(np.array([[1, 2], [3, 4]])) == b"[1,2]\n[3,4]\n"
    assert codecs.array_to_jsonlines([{"a": 1}, {"a": 2}]) == b'{"a":1}\n{"a":2}\n'
    assert codecs.array_to_jsonlines(7) == b"7\n"


class FakeTensor:
    """Duck-types a torch tensor on the GPU: only detach().cpu().numpy() gives numbers."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return np.array(self.values)


def test_tensors_are_moved_to_numpy_before_encoding() -> None:
    assert codecs.array_to_csv(FakeTensor([1.0, 2.0])) == b"1.0\n2.0\n"
    assert codecs.array_to_json(FakeTensor([1.0])) == b"[1.0]"
