"""The console's pure parts: the job form both ways, sessions and CSRF, charts, lists."""

from __future__ import annotations

import urllib.parse

import pytest

from batchform.console import forms
from batchform.console.charts import HEIGHT, PAD, line_chart
from batchform.console.format import duration, size
from batchform.console.listing import LISTINGS, Filters
from batchform.console.sessions import Sessions
from batchform.console.transform import place_problems
from batchform.console.web import safe_next

FORM = {
    "TransformJobName": "nightly",
    "ModelName": "echo",
    "TransformInput.DataSource.S3DataSource.S3DataType": "S3Prefix",
    "TransformInput.DataSource.S3DataSource.S3Uri": "s3://bucket/in/",
    "TransformInput.ContentType": "text/csv",
    "TransformInput.SplitType": "Line",
    "TransformOutput.S3OutputPath": "s3://bucket/out/",
    "TransformResources.InstanceCount": "2",
    "MaxConcurrentTransforms": "",
    "MaxPayloadInMB": "4",
    "Environment": "BATCHFORM_ON_ERROR=isolate\n\nA = b=c\n",
    "Tags": "team=ml",
    "DataCaptureConfig.GenerateInferenceId": "true",
}


def test_a_filled_form_is_the_create_transform_job_body() -> None:
    body, problems = forms.body_from_form(FORM)
    assert problems == {}
    assert body["TransformJobName"] == "nightly"
    assert body["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
        "ContentType": "text/csv",
        "SplitType": "Line",
    }
    assert body["TransformResources"] == {"InstanceCount": 2}
    assert body["MaxPayloadInMB"] == 4
    assert "MaxConcurrentTransforms" not in body  # empty: the model may decide
    assert body["Environment"] == {"BATCHFORM_ON_ERROR": "isolate", "A": "b=c"}
    assert body["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert body["DataCaptureConfig"] == {"GenerateInferenceId": True}


def test_text_in_a_number_field_goes_to_the_server_as_it_is() -> None:
    body, _ = forms.body_from_form({**FORM, "MaxPayloadInMB": "six"})
    assert body["MaxPayloadInMB"] == "six"


def test_a_line_without_equals_is_named() -> None:
    _, problems = forms.body_from_form({**FORM, "Environment": "GOOD=1\nnonsense"})
    assert problems == {"Environment": "Line 2 is not KEY=VALUE: 'nonsense'"}


def test_a_described_job_fills_the_form_again_for_a_clone() -> None:
    body, _ = forms.body_from_form(FORM)
    described = {**body, "TransformJobStatus": "Completed", "TransformJobArn": "arn:..."}
    values = forms.clone_values(described, now=0)
    assert values["TransformJobName"] == "nightly-19700101-000000"
    assert values["TransformInput.DataSource.S3DataSource.S3Uri"] == "s3://bucket/in/"
    assert values["TransformResources.InstanceCount"] == "2"
    assert values["Environment"] == "BATCHFORM_ON_ERROR=isolate\nA=b=c"
    assert values["Tags"] == "team=ml"
    assert values["DataCaptureConfig.GenerateInferenceId"] == "true"
    assert forms.body_from_form(values)[0] == {
        **body,
        "TransformJobName": values["TransformJobName"],
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("transformInput.dataSource.s3DataSource.s3Uri", forms.S3_URI),
        ("maxPayloadInMB", "MaxPayloadInMB"),
        ("environment.BATCHFORM_ON_ERROR", "Environment"),
        ("tags.0.key", "Tags"),
        ("transformInput.dataSource", forms.S3_URI),  # a missing parent: its required input
        ("transformJobName", "TransformJobName"),
        ("request", None),
    ],
)
def test_validation_problems_find_their_input(path: str, field: str | None) -> None:
    assert forms.field_for_problem(path) == field


def test_a_session_cookie_round_trips_and_cannot_be_forged_or_outlive_itself() -> None:
    sessions = Sessions({"AKID": "secret"}, key=b"k" * 32)
    session = sessions.new("AKID", now=1000.0)
    cookie = sessions.encode(session)
    assert sessions.decode(cookie, now=1001.0) == session
    assert sessions.decode(cookie, now=session.expires + 1) is None
    payload, _, signature = cookie.rpartition(".")
    assert sessions.decode(payload + "." + signature[::-1], now=1001.0) is None
    other = Sessions({"AKID": "secret"}, key=b"x" * 32)  # another server's (or a restart's) key
    assert other.decode(cookie, now=1001.0) is None


def test_anonymous_sessions_do_not_pass_where_keys_are_required() -> None:
    open_server = Sessions(None, key=b"k" * 32)
    cookie = open_server.encode(open_server.new(None))
    assert open_server.decode(cookie) is not None
    assert Sessions({"AKID": "s"}, key=b"k" * 32).decode(cookie) is None


def test_login_checks_the_pair_and_csrf_tokens_belong_to_their_session() -> None:
    sessions = Sessions({"AKID": "secret"})
    assert sessions.check_login("AKID", "secret")
    assert not sessions.check_login("AKID", "wrong")
    assert not sessions.check_login("OTHER", "secret")
    first, second = sessions.new("AKID"), sessions.new("AKID")
    assert sessions.csrf_ok(first, sessions.csrf_token(first))
    assert not sessions.csrf_ok(first, sessions.csrf_token(second))
    assert not sessions.csrf_ok(first, None)


@pytest.mark.parametrize(
    ("target", "landing"),
    [
        ("/console/transform-jobs/a?x=1", "/console/transform-jobs/a?x=1"),
        ("https://evil.example/", "/console/transform-jobs"),
        ("//evil.example/console/", "/console/transform-jobs"),
        (None, "/console/transform-jobs"),
    ],
)
def test_after_sign_in_only_console_paths_are_followed(target: str | None, landing: str) -> None:
    assert safe_next(target) == landing


def test_a_chart_scales_into_its_box_and_breaks_where_values_are_missing() -> None:
    chart = line_chart("t", "Throughput", [(0, 0.0), (1, 10.0), (2, None), (3, 5.0)], str, duration)
    assert len(chart.segments) == 2  # the gap at t=2 splits the line
    first = [tuple(map(float, point.split(","))) for point in chart.segments[0].split()]
    assert first[0][1] == HEIGHT - PAD  # zero sits on the bottom
    assert first[1][1] == PAD  # the peak touches the top
    assert (chart.latest, chart.top, chart.span) == ("5.0", "10.0", "3s")
    assert "now 5.0" in chart.description


def test_a_chart_without_values_says_so() -> None:
    chart = line_chart("t", "Latency", [(0, None)], str, duration)
    assert chart.empty and chart.description == "Latency: no samples yet"


def test_sizes_and_durations_read_as_people_write_them() -> None:
    assert (size(512), size(1536), size(3 * 2**30)) == ("512 B", "1.5 KiB", "3.0 GiB")
    assert (duration(5), duration(125), duration(7300)) == ("5s", "2m 05s", "2h 01m")


def test_a_column_header_sorts_ascending_first_then_flips() -> None:
    filters = Filters(name="nightly", status="Failed", sort="Name", order="Ascending", token="t")
    flipped = urllib.parse.parse_qs(filters.sort_link("Name"))
    assert flipped == {
        "name": ["nightly"],
        "status": ["Failed"],
        "sort": ["Name"],
        "order": ["Descending"],
    }  # the page token is dropped: a new order starts at the first page
    other = urllib.parse.parse_qs(filters.sort_link("CreationTime"))
    assert other["order"] == ["Ascending"]
    assert (filters.aria_sort("Name"), filters.aria_sort("Status")) == ("ascending", "none")


def test_problems_land_beside_their_inputs_in_the_services_words() -> None:
    problems = [
        ("maxPayloadInMB", "Member must have value less than or equal to 100", 200),
        ("transformInput.dataSource.s3DataSource.s3Uri", "Member must not be null", None),
        ("request", "Something about the whole request", "x"),
    ]
    errors, general = place_problems(problems, {"Tags": "Line 1 is not KEY=VALUE: 'x'"})
    assert errors == {
        "MaxPayloadInMB": [
            "Value '200' at 'maxPayloadInMB' failed to satisfy constraint: "
            "Member must have value less than or equal to 100"
        ],
        forms.S3_URI: [
            "Value 'null' at 'transformInput.dataSource.s3DataSource.s3Uri' failed to "
            "satisfy constraint: Member must not be null"
        ],
        "Tags": ["Line 1 is not KEY=VALUE: 'x'"],
    }
    assert general == [
        "Value 'x' at 'request' failed to satisfy constraint: Something about the whole request"
    ]


def test_a_list_refreshes_itself_only_while_something_in_it_is_changing() -> None:
    jobs, models = LISTINGS["transform-jobs"], LISTINGS["models"]
    assert jobs.changing([{"TransformJobStatus": "Completed"}, {"TransformJobStatus": "Stopping"}])
    assert not jobs.changing(
        [{"TransformJobStatus": "Completed"}, {"TransformJobStatus": "Failed"}]
    )
    assert not models.changing([{"ModelName": "InProgress"}])  # no status column at all
