"""DataProcessing: SageMaker's documented examples, CSV quoting, JSON joins, located errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from batchform.errors import InputFormatError, SpecValidationError
from batchform.records.batch import Batch
from batchform.records.dataprocessing import (
    RecordProcessor,
    format_csv_record,
    parse_csv_record,
    split_json_response,
)
from batchform.spec.dataprocessing import data_processing_problems
from batchform.spec.enums import JoinSource, SplitType
from batchform.spec.transform import CreateTransformJobRequest, DataProcessing

CSV, JSON, JSONL = "text/csv", "application/json", "application/jsonlines"
INPUT = JoinSource.INPUT


def processor(
    content_type: str | None = CSV,
    accept: str | None = CSV,
    split_type: SplitType = SplitType.LINE,
    **settings: Any,
) -> RecordProcessor:
    made = RecordProcessor.create(
        DataProcessing(**settings),
        content_type=content_type,
        accept=accept,
        split_type=split_type,
    )
    assert made is not None
    return made


def batch(payload: bytes, first_record: int = 0, offset: int = 0) -> Batch:
    count = payload.count(b"\n") + (0 if payload.endswith(b"\n") else 1)
    return Batch(payload=payload, first_record=first_record, record_count=count, offset=offset)


def run(proc: RecordProcessor, payload: bytes, response: bytes) -> tuple[bytes, bytes]:
    job = batch(payload)
    return proc.prepare(job), proc.finish(job, response)


def json_lines(data: bytes) -> list[Any]:
    return [orjson.loads(line) for line in data.splitlines()]


# -- when there is nothing to do ---------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"input_filter": "$", "join_source": JoinSource.NONE, "output_filter": "$"},
        {"input_filter": "", "output_filter": " $ "},
    ],
)
def test_default_settings_need_no_processor(settings: dict[str, Any]) -> None:
    # The documented "Output Only Inferences" example mimics the default.
    made = RecordProcessor.create(
        DataProcessing(**settings), content_type=CSV, accept=CSV, split_type=SplitType.LINE
    )
    assert made is None


def test_no_data_processing_needs_no_processor() -> None:
    made = RecordProcessor.create(None, content_type=None, accept=None, split_type=SplitType.NONE)
    assert made is None


def test_input_filter_alone_leaves_the_response_untouched() -> None:
    proc = processor(input_filter="$[1:]")
    sent, out = run(proc, b"id,1,2\n", b"anything at all\n\n")
    assert sent == b"1,2\n"
    assert out == b"anything at all\n\n"


def test_create_rejects_what_sagemaker_rejects() -> None:
    with pytest.raises(SpecValidationError) as caught:
        RecordProcessor.create(
            DataProcessing(input_filter="$.features"),
            content_type=CSV,
            accept=CSV,
            split_type=SplitType.LINE,
        )
    assert caught.value.fields == ["dataProcessing.inputFilter"]


# -- CSV: the documented examples --------------------------------------------------------


def test_csv_join_appends_the_output_to_the_input_row() -> None:
    # "if the record is [1,2,3], and the label result is [1], then ... [1,2,3,1]"
    sent, out = run(processor(join_source=INPUT), b"1,2,3\n", b"1\n")
    assert sent == b"1,2,3\n"
    assert out == b"1,2,3,1\n"


def test_csv_id_column_excluded_from_input_and_joined_back() -> None:
    # InputFilter "$[1:]", JoinSource Input, OutputFilter "$" on five columns, ID first.
    proc = processor(input_filter="$[1:]", join_source=INPUT, output_filter="$")
    sent, out = run(proc, b"id1,1,2,3,4\nid2,5,6,7,8\n", b"0.1\n0.9\n")
    assert sent == b"1,2,3,4\n5,6,7,8\n"
    assert out == b"id1,1,2,3,4,0.1\nid2,5,6,7,8,0.9\n"


def test_csv_keep_id_and_prediction_only() -> None:
    # The sample notebook's InputFilter "$[1:]" with OutputFilter "$[0,-1]".
    proc = processor(input_filter="$[1:]", join_source=INPUT, output_filter="$[0,-1]")
    _, out = run(proc, b"id1,1,2,3\nid2,4,5,6\n", b"0.1\n0.9\n")
    assert out == b"id1,0.1\nid2,0.9\n"


def test_csv_output_filter_with_index_and_open_range() -> None:
    # The API reference's OutputFilter example "$[0,5:]".
    proc = processor(join_source=INPUT, output_filter="$[0,5:]")
    _, out = run(proc, b"a,b,c,d,e\n", b"p,q\n")
    assert out == b"a,p,q\n"


def test_csv_multi_range_extension() -> None:
    proc = processor(input_filter="$[0:1,3:]", join_source=INPUT, output_filter="$[0,2:3,-1]")
    sent, out = run(proc, b"a,b,c,d,e\n", b"9\n")
    assert sent == b"a,b,d,e\n"
    assert out == b"a,c,d,9\n"


def test_csv_output_filter_without_join_filters_the_model_output() -> None:
    proc = processor(output_filter="$[-1]")
    sent, out = run(proc, b"1,2\n3,4\n", b"0.2,0.8\n0.6,0.4\n")
    assert sent == b"1,2\n3,4\n"
    assert out == b"0.8\n0.4\n"


# -- CSV: quoting, unicode, framing ---------------------------------------------------------


def test_quoted_fields_with_commas_and_quotes_survive_filtering() -> None:
    proc = processor(input_filter="$[1:]", join_source=INPUT, output_filter="$[0,-1]")
    payload = b'"Smith, Jo",1,"say ""hi""",2\n'
    sent, out = run(proc, payload, b'"a,b"\n')
    assert sent == b'1,"say ""hi""",2\n'
    assert out == b'"Smith, Jo","a,b"\n'


def test_only_fields_that_need_quotes_are_quoted() -> None:
    proc = processor(input_filter="$[0,2]")
    sent, _ = run(proc, b'"plain","needs,comma",x,"has ""quote"""\n', b"")
    assert sent == b"plain,x\n"
    assert format_csv_record([b"a", b"b,c", b'd"e', b"f\ng", b""]) == (b'a,"b,c","d""e","f\ng",')


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        (b"a,b,c", [b"a", b"b", b"c"]),
        (b'"a,b",c', [b"a,b", b"c"]),
        (b'a,"",c', [b"a", b"", b"c"]),
        (b'"x""y"', [b'x"y']),
        (b'a,"b",', [b"a", b"b", b""]),
        (b",,", [b"", b"", b""]),
        (b'5" tall,x', [b'5" tall', b"x"]),
    ],
)
def test_rfc4180_parsing(line: bytes, fields: list[bytes]) -> None:
    assert parse_csv_record(line) == fields


def test_unicode_csv_passes_through_byte_exact() -> None:
    proc = processor(input_filter="$[1:]", join_source=INPUT)
    row = 'ид,naïve,"日本, 東京",😀\n'.encode()
    sent, out = run(proc, row, "é\n".encode())
    assert sent == 'naïve,"日本, 東京",😀\n'.encode()
    assert out == 'ид,naïve,"日本, 東京",😀,é\n'.encode()


def test_unterminated_quote_names_record_and_offset() -> None:
    proc = processor(input_filter="$[1:]")
    job = batch(b'a,b\nc,"d\ne,f\n', first_record=10, offset=1000)
    with pytest.raises(InputFormatError, match="never closed") as caught:
        proc.prepare(job)
    assert (caught.value.record_index, caught.value.byte_offset) == (11, 1004)


def test_text_after_a_closing_quote_is_an_error() -> None:
    with pytest.raises(InputFormatError, match="after its closing quote"):
        parse_csv_record(b'"a"b,c')


def test_missing_csv_column_is_an_error_naming_the_record() -> None:
    proc = processor(join_source=INPUT, output_filter="$[0,6]")
    job = batch(b"a,b,c,d,e\na,b\n", first_record=3, offset=50)
    with pytest.raises(InputFormatError, match="index 6 is out of range") as caught:
        proc.finish(job, b"1\n2\n")
    assert (caught.value.record_index, caught.value.byte_offset) == (3, 50)


def test_framing_follows_the_input_trailing_newline_and_crlf() -> None:
    proc = processor(input_filter="$[1:]")
    assert proc.prepare(batch(b"a,b\r\nc,d")) == b"b\nd"
    assert proc.prepare(batch(b"a,b\nc,d\n")) == b"b\nd\n"


def test_blank_lines_are_not_records_so_joins_stay_aligned() -> None:
    proc = processor(join_source=INPUT)
    job = batch(b"a,1\n\nb,2\n   \n")
    assert proc.prepare(job) == b"a,1\nb,2\n"
    assert proc.finish(job, b"x\ny\n\n") == b"a,1,x\nb,2,y\n"


def test_unchanged_payload_is_sent_as_is() -> None:
    proc = processor(join_source=INPUT)
    job = batch(b"a,1\nb,2")
    assert proc.prepare(job) is job.payload


# -- JSON: the documented examples ---------------------------------------------------------


def test_json_join_adds_sagemaker_output_to_an_object() -> None:
    # {"key":1} with result {"label":1} → {"key":1,"SageMakerOutput":{"label":1}}
    proc = processor(JSONL, JSONL, join_source=INPUT)
    _, out = run(proc, b'{"key":1}\n', b'{"label":1}\n')
    assert json_lines(out) == [{"key": 1, "SageMakerOutput": {"label": 1}}]


def test_json_join_wraps_a_non_object_input() -> None:
    proc = processor(JSONL, JSONL, join_source=INPUT)
    _, out = run(proc, b'[1,2,3]\n"text"\n', b"[0.5]\n1\n")
    assert json_lines(out) == [
        {"SageMakerInput": [1, 2, 3], "SageMakerOutput": [0.5]},
        {"SageMakerInput": "text", "SageMakerOutput": 1},
    ]


def test_json_features_in_id_and_output_out() -> None:
    # InputFilter "$.features", JoinSource Input, OutputFilter "$['id','SageMakerOutput']"
    proc = processor(
        JSONL,
        JSONL,
        input_filter="$.features",
        join_source=INPUT,
        output_filter="$['id','SageMakerOutput']",
    )
    payload = b'{"id":"a","features":[1,2],"x":0}\n{"id":"b","features":[3,4],"x":1}\n'
    sent, out = run(proc, payload, b'{"score":0.1}\n{"score":0.7}\n')
    assert sent == b"[1,2]\n[3,4]\n"
    assert json_lines(out) == [
        {"id": "a", "SageMakerOutput": {"score": 0.1}},
        {"id": "b", "SageMakerOutput": {"score": 0.7}},
    ]


def test_sagemaker_output_in_the_input_is_overwritten_as_documented() -> None:
    proc = processor(JSONL, JSONL, join_source=INPUT)
    _, out = run(proc, b'{"SageMakerOutput":"old","k":1}\n', b'"new"\n')
    assert out == b'{"SageMakerOutput":"new","k":1}\n'


def test_json_array_records_take_index_filters() -> None:
    proc = processor(
        JSONL, JSONL, input_filter="$[1:]", join_source=INPUT, output_filter="$.SageMakerInput[0]"
    )
    sent, out = run(proc, b'["id7",1,2]\n', b"0.5\n")
    assert sent == b"[1,2]\n"
    assert out == b'"id7"\n'


def test_json_output_filter_picks_from_the_joined_object() -> None:
    proc = processor(JSONL, JSONL, join_source=INPUT, output_filter="$.SageMakerOutput.label")
    _, out = run(proc, b'{"a":1}\n', b'{"label":"cat","p":0.9}\n')
    assert out == b'"cat"\n'


def test_numbers_and_strings_keep_their_json_types() -> None:
    proc = processor(JSONL, JSONL, input_filter="$.f", join_source=INPUT)
    payload = b'{"f":[1,"1",1.5,1.10,true,null,-0],"big":123456789012345678901234567890}\n'
    sent, out = run(proc, payload, b"18446744073709551616\n")
    assert sent == b'[1,"1",1.5,1.1,true,null,0]\n'  # 1.10 is the float 1.1
    (joined,) = out.splitlines()
    assert joined == (
        b'{"f":[1,"1",1.5,1.1,true,null,0],"big":123456789012345678901234567890,'
        b'"SageMakerOutput":18446744073709551616}'
    )


def test_unicode_json_round_trips() -> None:
    proc = processor(JSONL, JSONL, input_filter="$['名前']", join_source=INPUT)
    sent, out = run(proc, '{"名前":"naïve 😀"}\n'.encode(), '"é"\n'.encode())
    assert sent == '"naïve 😀"\n'.encode()
    assert out == '{"名前":"naïve 😀","SageMakerOutput":"é"}\n'.encode()


def test_missing_key_names_record_key_and_offset() -> None:
    proc = processor(JSONL, JSONL, input_filter="$.features")
    job = batch(b'{"features":[1]}\n{"id":2}\n', first_record=40, offset=4096)
    with pytest.raises(InputFormatError, match="key 'features' not found") as caught:
        proc.prepare(job)
    assert (caught.value.record_index, caught.value.byte_offset) == (41, 4096 + 17)


def test_missing_key_in_output_filter_names_the_record() -> None:
    proc = processor(JSONL, JSONL, join_source=INPUT, output_filter="$['id','SageMakerOutput']")
    job = batch(b'{"id":1}\n{"name":2}\n', first_record=5)
    with pytest.raises(InputFormatError, match="key 'id' not found") as caught:
        proc.finish(job, b"1\n2\n")
    assert caught.value.record_index == 6


def test_invalid_json_record_is_located() -> None:
    proc = processor(JSONL, JSONL, input_filter="$.a")
    with pytest.raises(InputFormatError, match="not valid JSON") as caught:
        proc.prepare(batch(b'{"a":1}\n{"a":\n', first_record=2))
    assert caught.value.record_index == 3


# -- application/json responses -------------------------------------------------------------


def test_json_response_may_be_one_value_per_line() -> None:
    proc = processor(JSON, JSON, join_source=INPUT)
    _, out = run(proc, b'{"a":1}\n{"a":2}\n', b"[0.1,0.9]\n[0.8,0.2]\n")
    assert json_lines(out) == [
        {"a": 1, "SageMakerOutput": [0.1, 0.9]},
        {"a": 2, "SageMakerOutput": [0.8, 0.2]},
    ]


def test_json_response_may_be_one_array_with_an_element_per_record() -> None:
    proc = processor(JSON, JSON, join_source=INPUT)
    _, out = run(proc, b'{"a":1}\n{"a":2}\n', b'[\n  {"p": 0.1},\n  {"p": 0.9}\n]')
    assert json_lines(out) == [
        {"a": 1, "SageMakerOutput": {"p": 0.1}},
        {"a": 2, "SageMakerOutput": {"p": 0.9}},
    ]


def test_single_record_keeps_a_whole_array_response() -> None:
    assert split_json_response(b"[0.1, 0.9]", 1) == [[0.1, 0.9]]
    assert split_json_response(b'{\n "p": [1,\n 2]\n}\n', 1) == [{"p": [1, 2]}]


def test_whole_payload_json_with_split_type_none() -> None:
    proc = processor(JSON, JSON, SplitType.NONE, input_filter="$.rows", join_source=INPUT)
    payload = b'{\n  "id": 9,\n  "rows": [[1, 2], [3, 4]]\n}\n'
    sent, out = run(proc, payload, b"[0, 1]")
    assert sent == b"[[1,2],[3,4]]\n"
    assert json_lines(out) == [{"id": 9, "rows": [[1, 2], [3, 4]], "SageMakerOutput": [0, 1]}]


def test_join_count_mismatch_names_both_counts_and_the_batch() -> None:
    proc = processor(JSON, JSON, join_source=INPUT)
    job = batch(b'{"a":1}\n{"a":2}\n{"a":3}\n', first_record=100, offset=2048)
    with pytest.raises(InputFormatError) as caught:
        proc.finish(job, b"[1,2]")
    message = str(caught.value)
    assert "returned 1 records for 3 input records" in message
    assert "one JSON array with an element per input record" in message
    assert (caught.value.record_index, caught.value.byte_offset) == (100, 2048)


def test_csv_join_count_mismatch() -> None:
    proc = processor(join_source=INPUT)
    with pytest.raises(InputFormatError, match="returned 3 records for 2 input records"):
        proc.finish(batch(b"a\nb\n"), b"1\n2\n3\n")


def test_unparseable_response_says_so() -> None:
    proc = processor(JSONL, JSONL, join_source=INPUT)
    with pytest.raises(InputFormatError, match="cannot parse the model's response as"):
        proc.finish(batch(b"{}\n"), b"not json\n")


# -- mixed formats ---------------------------------------------------------------------------


def test_csv_input_joined_with_json_lines_output() -> None:
    proc = processor(CSV, JSONL, join_source=INPUT)
    _, out = run(proc, b"id1,3\nid2,4\n", b'[0.1,"b"]\n{"k":1}\n')
    assert out == b'id1,3,0.1,b\nid2,4,"{""k"":1}"\n'


def test_json_input_joined_with_csv_output_keeps_numbers_numeric() -> None:
    proc = processor(JSONL, CSV, join_source=INPUT)
    _, out = run(proc, b'{"a":1}\n{"a":2}\n', b"0.25\ncat,7\n")
    assert json_lines(out) == [
        {"a": 1, "SageMakerOutput": 0.25},
        {"a": 2, "SageMakerOutput": ["cat", 7]},
    ]


# -- request validation -----------------------------------------------------------------------


def request(
    content_type: str | None = CSV,
    accept: str | None = CSV,
    split_type: str = "Line",
    assemble_with: str = "Line",
    **data_processing: str,
) -> CreateTransformJobRequest:
    body: dict[str, Any] = {
        "TransformJobName": "job",
        "ModelName": "model",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3Uri": "s3://bucket/in/"}},
            "ContentType": content_type,
            "SplitType": split_type,
        },
        "TransformOutput": {
            "S3OutputPath": "s3://bucket/out/",
            "Accept": accept,
            "AssembleWith": assemble_with,
        },
        "DataProcessing": data_processing,
    }
    return CreateTransformJobRequest.model_validate(body)


def problem_fields(job: CreateTransformJobRequest) -> list[str]:
    return [field for field, _, _ in data_processing_problems(job)]


def test_documented_combinations_are_valid() -> None:
    csv = request(InputFilter="$[1:]", JoinSource="Input", OutputFilter="$[0,-1]")
    jsonl = request(
        JSONL,
        JSONL,
        InputFilter="$.features",
        JoinSource="Input",
        OutputFilter="$['id','SageMakerOutput']",
    )
    whole_json = request(JSON, JSON, "None", "None", JoinSource="Input")
    assert data_processing_problems(csv) == []
    assert data_processing_problems(jsonl) == []
    assert data_processing_problems(whole_json) == []


def test_media_type_parameters_and_case_do_not_matter() -> None:
    job = request("Text/CSV; charset=utf-8", "text/csv", JoinSource="Input")
    assert data_processing_problems(job) == []


def test_no_data_processing_has_no_problems() -> None:
    job = request("image/png", None, "None", "None")
    assert data_processing_problems(job.model_copy(update={"data_processing": None})) == []
    assert data_processing_problems(job) == []


@pytest.mark.parametrize(
    ("job", "fields"),
    [
        (request("image/png", CSV, JoinSource="Input"), ["transformInput.contentType"]),
        (request(CSV, None, JoinSource="Input"), ["transformOutput.accept"]),
        (request(CSV, CSV, "None", JoinSource="Input"), ["transformInput.splitType"]),
        (request(JSONL, JSONL, "RecordIO", InputFilter="$.a"), ["transformInput.splitType"]),
        (
            request(CSV, CSV, assemble_with="None", JoinSource="Input"),
            ["transformOutput.assembleWith"],
        ),
        (request(InputFilter="$.features"), ["dataProcessing.inputFilter"]),
        (request(JoinSource="Input", OutputFilter="$.id"), ["dataProcessing.outputFilter"]),
        (request(JSONL, CSV, OutputFilter="$['a']"), ["dataProcessing.outputFilter"]),
        (
            request(InputFilter="$[", OutputFilter="$.."),
            ["dataProcessing.inputFilter", "dataProcessing.outputFilter"],
        ),
    ],
)
def test_rejected_combinations_name_the_field(
    job: CreateTransformJobRequest, fields: list[str]
) -> None:
    assert problem_fields(job) == fields


def test_each_side_is_only_checked_when_it_is_processed() -> None:
    # An OutputFilter without a join never reads the input, so any ContentType will do.
    assert problem_fields(request("image/png", JSON, "None", OutputFilter="$.label")) == []
    # An InputFilter alone never reads the output, so any Accept will do.
    assert problem_fields(request(JSONL, "application/x-npy", InputFilter="$.f")) == []


def test_problem_wording_follows_sagemaker() -> None:
    ((field, rule, value),) = data_processing_problems(request("image/png", JoinSource="Input"))
    assert field == "transformInput.contentType"
    assert rule.startswith(
        "Member must be one of [text/csv, application/json, application/jsonlines]"
    )
    assert value == "image/png"
    message = str(SpecValidationError(data_processing_problems(request(InputFilter="$["))))
    assert "Value '$[' at 'dataProcessing.inputFilter' failed to satisfy constraint" in message
