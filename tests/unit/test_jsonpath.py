"""SageMaker's JSONPath subset: the documented expressions, slices, errors that name positions."""

from __future__ import annotations

import pytest

from batchform.errors import InputFormatError, SpecValidationError
from batchform.records.jsonpath import compile_path

ROW = ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]


@pytest.mark.parametrize(
    "expression",
    [
        "$",
        "$[1:]",
        "$.features",
        "$[0,5:]",
        "$['id','SageMakerOutput']",
        "$.id",
        "$.id.*",
        "$[1]",
        "$[1,3,5]",
        "$[2:5]",
        "$[:5]",
        "$[2:]",
        "$[0,-1]",
        "$.field1.['child1','child2']",
        "$[ 'id' , 'SageMakerOutput' ]",
    ],
)
def test_every_documented_expression_compiles(expression: str) -> None:
    assert compile_path(expression).expression == expression


@pytest.mark.parametrize(
    ("expression", "position", "reason"),
    [
        ("", 0, "must start with '$'"),
        ("features", 0, "must start with '$'"),
        ("$[", 2, "expected an index"),
        ("$[1", 3, "expected ']'"),
        ("$..id", 2, "deep scan"),
        ("$.", 2, "expected a name"),
        ("$[1:2:3]", 5, "slice steps"),
        ("$['id", 5, "unterminated quoted name"),
        ("$[?(@.id)]", 2, "filter expressions"),
        ("$[1,'id']", 4, "cannot mix"),
        ("$['id',1]", 7, "cannot mix"),
        ("$[-]", 2, "expected digits"),
        ("$id", 1, "unexpected character 'i'"),
    ],
)
def test_syntax_error_names_field_position_and_expression(
    expression: str, position: int, reason: str
) -> None:
    with pytest.raises(SpecValidationError) as caught:
        compile_path(expression, "dataProcessing.outputFilter")
    ((field, rule, value),) = caught.value.problems
    assert field == "dataProcessing.outputFilter"
    assert rule.startswith(f"invalid JSONPath at position {position}: ")
    assert reason in rule
    assert value == expression


def test_syntax_error_defaults_to_the_input_filter_field() -> None:
    with pytest.raises(SpecValidationError) as caught:
        compile_path("$[")
    assert caught.value.fields == ["dataProcessing.inputFilter"]


# -- slices: SageMaker documents an inclusive end ------------------------------------------


def test_slice_end_is_inclusive_as_documented() -> None:
    # "$[1:4] specifies the second through fifth columns"
    assert compile_path("$[1:4]").apply_fields(ROW) == ["c1", "c2", "c3", "c4"]


def test_slice_without_start_runs_from_the_first_column_through_the_end_index() -> None:
    # "[:5] ... from the first column (index 0) through the sixth column"
    assert compile_path("$[:5]").apply_fields(ROW) == ROW[:6]


def test_slice_without_end_runs_to_the_last_column() -> None:
    # "[5:] ... all columns from the 6th column through the last column"
    assert compile_path("$[5:]").apply_fields(ROW) == ["c5", "c6"]
    assert compile_path("$[1:]").apply_fields(ROW) == ROW[1:]


def test_negative_indexes_count_from_the_end() -> None:
    assert compile_path("$[0,-1]").apply_fields(ROW) == ["c0", "c6"]
    assert compile_path("$[-2:]").apply_fields(ROW) == ["c5", "c6"]
    assert compile_path("$[:-2]").apply_fields(ROW) == ROW[:6]


@pytest.mark.parametrize("expression", ["$[4:2]", "$[9:]", "$[-9:-8]"])
def test_slices_that_select_nothing_are_empty(expression: str) -> None:
    assert compile_path(expression).apply_fields(ROW) == []
    assert compile_path(expression).apply(ROW) == []


def test_slice_bounds_beyond_the_row_are_clamped() -> None:
    assert compile_path("$[5:99]").apply_fields(ROW) == ["c5", "c6"]


def test_several_ranges_and_indexes_in_one_bracket_keep_their_order() -> None:
    # The extension SageMaker rejects ("only single range filters ... are supported").
    assert compile_path("$[0,3:5,-1]").apply_fields(ROW) == ["c0", "c3", "c4", "c5", "c6"]
    assert compile_path("$[5:,0:1]").apply_fields(ROW) == ["c5", "c6", "c0", "c1"]


def test_index_outside_the_row_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(InputFormatError, match=r"index 7 is out of range for 7 elements"):
        compile_path("$[0,7]").apply_fields(ROW)
    with pytest.raises(InputFormatError, match=r"index -8 is out of range"):
        compile_path("$[-8]").apply_fields(ROW)


# -- CSV rows ----------------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["$", "$.*", "$[*]"])
def test_whole_row_paths_keep_every_field(expression: str) -> None:
    assert compile_path(expression).apply_fields(ROW) == ROW


def test_rows_of_different_widths_resolve_their_own_positions() -> None:
    path = compile_path("$[1:]")
    assert path.apply_fields(["a", "b", "c"]) == ["b", "c"]
    assert path.apply_fields(["a", "b", "c", "d", "e"]) == ["b", "c", "d", "e"]
    assert path.apply_fields(["a", "b", "c"]) == ["b", "c"]


def test_fields_may_be_bytes() -> None:
    assert compile_path("$[-1]").apply_fields([b"x", b"y"]) == [b"y"]


@pytest.mark.parametrize("expression", ["$.features", "$['id','x']", "$[0].a", "$[0][1]"])
def test_name_paths_cannot_filter_csv_rows(expression: str) -> None:
    path = compile_path(expression)
    assert not path.selects_fields
    with pytest.raises(ValueError, match="cannot filter CSV fields"):
        path.apply_fields(ROW)


def test_identity_and_field_selection_are_reported() -> None:
    assert compile_path("$").is_identity
    assert compile_path("$[0,5:]").selects_fields
    assert not compile_path("$[0]").is_identity


# -- JSON values -------------------------------------------------------------------------

RECORD = {"id": 7, "features": [0.5, 1, "a"], "meta": {"a": 1, "b": [2, 3]}, "SageMakerOutput": 1}


def test_dotted_name_selects_the_value_itself() -> None:
    assert compile_path("$.features").apply(RECORD) == [0.5, 1, "a"]
    assert compile_path("$.meta.b").apply(RECORD) == [2, 3]


def test_several_names_select_one_object_with_those_keys_in_order() -> None:
    selected = compile_path("$['SageMakerOutput','id']").apply(RECORD)
    assert isinstance(selected, dict)
    assert list(selected.items()) == [("SageMakerOutput", 1), ("id", 7)]


def test_nested_bracket_names_after_a_dot() -> None:
    assert compile_path("$.meta.['b','a']").apply(RECORD) == {"b": [2, 3], "a": 1}


def test_single_index_is_definite_and_several_make_a_list() -> None:
    assert compile_path("$.features[1]").apply(RECORD) == 1
    assert compile_path("$.features[0,-1]").apply(RECORD) == [0.5, "a"]
    assert compile_path("$.features[1:]").apply(RECORD) == [1, "a"]


def test_wildcard_selects_object_values_and_array_elements() -> None:
    assert compile_path("$.meta.*").apply(RECORD) == [1, [2, 3]]
    assert compile_path("$.features[*]").apply(RECORD) == [0.5, 1, "a"]
    assert compile_path("$.*[1]").apply({"x": [1, 2], "y": [3, 4]}) == [2, 4]


def test_root_selects_the_record() -> None:
    assert compile_path("$").apply(RECORD) is RECORD


def test_quoted_names_may_hold_dots_quotes_and_unicode() -> None:
    record = {"a.b": 1, "it's": 2, "naïve": 3, "名前": 4}
    assert compile_path("$['a.b']").apply(record) == 1
    assert compile_path("$['it\\'s']").apply(record) == 2
    assert compile_path('$["naïve"]').apply(record) == 3
    assert compile_path("$.名前").apply(record) == 4


def test_missing_key_names_the_key_and_the_path() -> None:
    with pytest.raises(
        InputFormatError, match=r"JSONPath \$\['id','label'\]: key 'label' not found"
    ):
        compile_path("$['id','label']").apply(RECORD)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("$.id.name", "expected an object holding key 'name', found the value 7"),
        ("$.meta[0]", "expected an array to index, found an object"),
        ("$.id.*", "'*' needs an object or an array"),
        ("$.features[5]", "index 5 is out of range for 3 elements"),
    ],
)
def test_shape_mismatches_say_what_was_found(expression: str, message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        compile_path(expression).apply(RECORD)
