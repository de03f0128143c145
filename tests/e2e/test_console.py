"""The web console in a real headless browser (Debian's chromium driven by Playwright)
against a real `batchform server`: what a user clicks, types and reads."""

from __future__ import annotations

import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.serverproc import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "tests" / "handlers"
ECHO = ROOT / "examples" / "echo_handler"
TIMEOUT_MS = 60_000
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's chromium (scripts/test-deps.sh installs it); missing is a failure."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/test-deps.sh")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("console-home")
    with running_server(home, "--heartbeat", "0.5", "--max-concurrent-jobs", "3") as running:
        sagemaker = running.client()
        for name, image, env in (
            ("echo", ECHO, {}),
            ("slow", HANDLERS / "slow", {"SLOW_SECONDS": "0.02"}),
            ("very-slow", HANDLERS / "slow", {"SLOW_SECONDS": "0.5"}),
            ("failing", HANDLERS / "fail_on_marker", {}),
        ):
            container = {"Image": str(image), "Environment": env}
            sagemaker.create_model(ModelName=name, PrimaryContainer=container)
        yield running


@pytest.fixture
def page(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(f"--- page {opened.url} ---\n{opened.locator('body').inner_text()[:4000]}")
        print(f"--- server log ---\n{server.log()[-4000:]}")
    context.close()  # closes its event streams before the server stops


def csv_inputs(folder: Path, objects: int, rows: int, marker_in: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(objects):
        lines = [f"{index},{row}" for row in range(rows)]
        if index == marker_in:
            lines[rows // 2] = "FAIL,here"
        (folder / f"part-{index}.csv").write_text("\n".join(lines) + "\n")
    return folder


def create_job(server: Server, name: str, model: str, source: Path, **extra: Any) -> None:
    server.client().create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(source)}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": str(source.parent / f"{name}-out"),
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    )


def wait_status(server: Server, name: str, *wanted: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = server.client().describe_transform_job(TransformJobName=name)
        if status["TransformJobStatus"] in wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never became {wanted}")


def status_badge(page: Any) -> Any:
    return page.locator("#job-status h1 .badge")


def test_create_a_job_from_the_form_and_watch_it_complete(
    page: Any, server: Server, tmp_path: Path
) -> None:
    source = csv_inputs(tmp_path / "in", objects=3, rows=60)
    page.goto("/")
    page.get_by_role("link", name="Create transform job").click()
    page.get_by_label("Job name").fill("from-the-form")
    page.get_by_label("Model").select_option("slow")
    page.get_by_label("Input location").fill(str(source))
    page.get_by_label("Output location").fill(str(tmp_path / "out"))
    page.get_by_label("Batch strategy").select_option("SingleRecord")
    page.get_by_label("Max concurrent transforms").fill("2")
    page.get_by_role("button", name="Create job").click()

    page.wait_for_url("**/console/transform-jobs/from-the-form")
    # The page follows the job live, without reloading: a marker set now survives.
    page.evaluate("window.stillTheSamePage = true")
    page.wait_for_selector("#job-status h1 .badge-completed")
    assert page.evaluate("window.stillTheSamePage") is True
    page.wait_for_selector("#job-objects .badge-completed")  # the summary's exact results
    objects = page.locator("#objects tbody tr")
    assert objects.count() == 3
    assert objects.filter(has_text="Completed").count() == 3
    assert "180" in page.locator("#fig-records").inner_text()
    # Settings show what ran; the log shows the effective settings line.
    assert "SingleRecord" in page.locator("#job-settings").inner_text()
    page.wait_for_function("document.getElementById('log').textContent.includes('Completed')")
    assert "MaxConcurrentTransforms=2" in page.locator("#log").inner_text()

    # Cloning fills the form with the job's settings under a new name.
    page.get_by_role("link", name="Clone").click()
    assert page.get_by_label("Input location").input_value() == str(source)
    assert page.get_by_label("Batch strategy").input_value() == "SingleRecord"
    assert page.get_by_label("Job name").input_value().startswith("from-the-form-")
    page.get_by_label("Job name").fill("from-the-form-again")
    page.get_by_role("button", name="Create job").click()
    page.wait_for_selector("#job-status h1 .badge-completed")

    # An object's output opens from its row.
    page.locator("#objects").get_by_role("link").first.click()
    assert page.locator("body").inner_text().splitlines()[:2] == ["0,0", "0,1"]


def test_the_form_shows_the_servers_own_validation_messages(page: Any, server: Server) -> None:
    page.goto("/console/transform-jobs/new")
    # Every control has a label (screen readers and get_by_label rely on it).
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('#create-job input:not([type=hidden]),'
                 + '#create-job select, #create-job textarea')]
             .filter(el => !document.querySelector(`label[for="${el.id}"]`))
             .map(el => el.name)"""
    )
    assert unlabelled == []
    page.get_by_label("Model").select_option("echo")
    page.get_by_label("Output location").fill("/tmp/anywhere")
    page.get_by_label("Max payload (MB)").fill("200")
    # Checked as the user goes, by the same validation CreateTransformJob runs.
    page.get_by_label("Instance count").fill("0")
    page.get_by_label("Instance count").blur()
    count_error = page.locator("[data-field='TransformResources.InstanceCount'] .field-error")
    page.wait_for_function(
        "el => el.textContent.includes('greater than or equal to 1')",
        arg=count_error.element_handle(),
    )
    page.get_by_role("button", name="Create job").click()

    # The server refused: every bad field is marked with the API's own wording.
    uri_box = page.locator("[data-field='TransformInput.DataSource.S3DataSource.S3Uri']")
    assert "Member must not be null" in uri_box.locator(".field-error").inner_text()
    assert uri_box.locator("input").get_attribute("aria-invalid") == "true"
    payload_error = page.locator("[data-field='MaxPayloadInMB'] .field-error").inner_text()
    assert "less than or equal to 100" in payload_error
    assert "The server refused this job" in page.locator("#form-errors").inner_text()
    # What was typed is kept, so the user fixes only what is wrong.
    assert page.get_by_label("Output location").input_value() == "/tmp/anywhere"


def test_a_failing_job_shows_its_reason_log_lines_and_failed_object(
    page: Any, server: Server, tmp_path: Path
) -> None:
    source = csv_inputs(tmp_path / "in", objects=2, rows=10, marker_in=1)
    create_job(server, "fails-on-marker", "failing", source)
    wait_status(server, "fails-on-marker", "Failed")
    page.goto("/console/transform-jobs/fails-on-marker")

    reason = page.locator("#failure-reason").inner_text()
    assert "part-1.csv" in reason and "found the FAIL marker" in reason
    assert page.locator("#job-status .badge-failed").count() == 1
    failed = page.locator("#objects tbody tr", has_text="part-1.csv")
    assert "Failed" in failed.inner_text() and "FAIL marker" in failed.inner_text()
    log = page.locator("#log").inner_text()
    assert "failed to transform 'part-1.csv'" in log
    assert "ValueError: found the FAIL marker" in log  # the model's own traceback line


def test_dead_lettered_records_are_shown_with_where_they_came_from(
    page: Any, server: Server, tmp_path: Path
) -> None:
    source = csv_inputs(tmp_path / "in", objects=2, rows=10, marker_in=0)
    environment = {"BATCHFORM_ON_ERROR": "isolate", "BATCHFORM_MAX_ERRORS": "3"}
    create_job(server, "isolated", "failing", source, Environment=environment)
    wait_status(server, "isolated", "Completed")
    page.goto("/console/transform-jobs/isolated")
    letters = page.locator("#dead-letters tbody tr")
    assert letters.count() == 1
    assert "FAIL,here" in letters.inner_text() and "part-0.csv" in letters.inner_text()
    assert "1 bad" in page.locator("#fig-records").inner_text()


def test_stop_a_running_job(page: Any, server: Server, tmp_path: Path) -> None:
    source = csv_inputs(tmp_path / "in", objects=2, rows=400)
    create_job(server, "to-stop", "very-slow", source, BatchStrategy="SingleRecord")
    page.goto("/console/transform-jobs/to-stop")
    # Running: records are counted live before anyone reloads.
    page.wait_for_function("() => parseInt(document.getElementById('fig-records').textContent) > 0")
    # Charted as it runs: throughput, and the model processes' memory.
    page.wait_for_selector("#chart-records polyline", state="attached")
    page.wait_for_selector("#chart-memory polyline", state="attached")
    assert "MiB" in page.locator("#chart-memory .chart-latest").inner_text()
    page.get_by_role("button", name="Stop job").click()
    page.wait_for_selector("#job-status h1 .badge-stopped")
    assert page.get_by_role("button", name="Stop job").count() == 0
    # Nothing was left half-done: the objects say they did not run.
    assert page.locator("#objects .badge-notrun").count() == 2
    steps = page.locator("#job-status .timeline").inner_text()
    assert "Created" in steps and "Stopped" in steps
    assert (
        server.client().describe_transform_job(TransformJobName="to-stop")["TransformJobStatus"]
        == "Stopped"
    )


def list_names(page: Any) -> list[str]:
    return page.locator("#resource-list tbody tr td:first-child").all_inner_texts()


def test_the_lists_filter_and_sort(page: Any, server: Server, tmp_path: Path) -> None:
    source = csv_inputs(tmp_path / "in", objects=1, rows=3)
    for name in ("sortme-b", "sortme-c", "sortme-a"):
        create_job(server, name, "echo", source)
    bad = csv_inputs(tmp_path / "bad", objects=1, rows=4, marker_in=0)
    create_job(server, "sortme-fails", "failing", bad)
    for name in ("sortme-a", "sortme-b", "sortme-c"):
        wait_status(server, name, "Completed")
    wait_status(server, "sortme-fails", "Failed")

    page.goto("/console/transform-jobs")
    page.get_by_label("Name contains").fill("sortme")
    page.get_by_role("button", name="Filter").click()
    assert sorted(list_names(page)) == ["sortme-a", "sortme-b", "sortme-c", "sortme-fails"]
    # Newest first by default; a click on Name sorts ascending, a second descending.
    assert list_names(page)[0] == "sortme-fails"
    page.get_by_role("link", name=re.compile("^Name")).click()
    assert list_names(page) == ["sortme-a", "sortme-b", "sortme-c", "sortme-fails"]
    header = page.get_by_role("columnheader", name=re.compile("^Name"))
    assert header.get_attribute("aria-sort") == "ascending"
    page.get_by_role("link", name=re.compile("^Name")).click()
    assert list_names(page) == ["sortme-fails", "sortme-c", "sortme-b", "sortme-a"]

    page.get_by_label("Status").select_option("Failed")
    page.get_by_role("button", name="Filter").click()
    assert list_names(page) == ["sortme-fails"]
    row = page.locator("#resource-list tbody tr")
    assert row.locator(".badge-failed").count() == 1
    assert "FAIL marker" in row.inner_text()  # the failure reason in the list

    page.get_by_role("link", name="Models").click()
    assert {"echo", "failing", "slow"} <= set(list_names(page))
    page.get_by_role("link", name="failing", exact=True).click()
    assert "fail_on_marker" in page.locator("main").inner_text()


def test_everything_works_without_javascript(browser: Any, server: Server, tmp_path: Path) -> None:
    source = csv_inputs(tmp_path / "in", objects=2, rows=5)
    context = browser.new_context(java_script_enabled=False, base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        page.goto("/console/transform-jobs/new")
        page.get_by_label("Job name").fill("no-script")
        page.get_by_label("Model").select_option("echo")
        page.get_by_label("Input location").fill(str(source))
        page.get_by_label("Output location").fill(str(tmp_path / "out"))
        page.get_by_role("button", name="Create job").click()
        page.wait_for_url("**/console/transform-jobs/no-script")
        wait_status(server, "no-script", "Completed")
        page.reload()  # without script the page shows the job as it was when loaded
        assert page.locator("#job-status h1 .badge-completed").count() == 1
        assert page.locator("#objects .badge-completed").count() == 2
        assert "[data-log]" in page.locator("#log").inner_text()

        page.goto("/console/transform-jobs")
        page.get_by_label("Name contains").fill("no-scr")
        page.get_by_role("button", name="Filter").click()
        assert list_names(page) == ["no-script"]
        page.get_by_role("link", name=re.compile("^Status")).click()
        assert "sort=Status" in page.url and list_names(page) == ["no-script"]
    finally:
        context.close()


def test_the_lists_work_from_the_keyboard(page: Any, server: Server) -> None:
    page.goto("/console/models")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(12):  # past the filters to the first sortable column
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent").startswith("Name"):
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/models?*sort=Name*")
    names = list_names(page)
    assert names == sorted(names)


def test_a_list_with_running_jobs_keeps_itself_current(
    page: Any, server: Server, tmp_path: Path
) -> None:
    source = csv_inputs(tmp_path / "in", objects=1, rows=6)
    create_job(server, "listed-while-running", "very-slow", source, BatchStrategy="SingleRecord")
    page.goto("/console/transform-jobs?name=listed-while-running")
    page.evaluate("window.stillTheSamePage = true")
    row = page.locator("#resource-list tbody tr")
    assert row.locator(".badge-inprogress").count() == 1
    page.wait_for_selector("#resource-list .badge-completed")
    assert page.evaluate("window.stillTheSamePage") is True


def test_an_endpoints_try_it_form_returns_a_prediction(page: Any, server: Server) -> None:
    sagemaker = server.client()
    sagemaker.create_model(
        ModelName="summer", PrimaryContainer={"Image": str(HANDLERS / "csv_sum")}
    )
    variant = {"VariantName": "AllTraffic", "ModelName": "summer", "InitialInstanceCount": 1}
    sagemaker.create_endpoint_config(EndpointConfigName="summer", ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName="summer", EndpointConfigName="summer")
    sagemaker.get_waiter("endpoint_in_service").wait(
        EndpointName="summer", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )

    page.goto("/console/endpoints")
    page.get_by_role("link", name="summer").click()
    assert page.locator("#instances tbody tr").count() == 1
    page.get_by_label("Request body").fill("1,2,3\n10,20,5")
    page.get_by_role("button", name="Invoke").click()
    assert page.locator("#try-answer-body").inner_text().strip() == "6,3\n35,20"
    assert "AllTraffic" in page.locator("#try-answer").inner_text()
    # The invocation is counted in the endpoint's figures.
    assert page.locator("#fig-invocations").inner_text() == "1"

    assert "is serving" in page.locator("#log").inner_text()  # the endpoint's own log

    page.get_by_label("Request body").fill("not,numbers")
    page.get_by_role("button", name="Invoke").click()
    assert "ModelError" in page.locator("#try-answer").inner_text()
    # The model's traceback reaches the page's log tail.
    page.wait_for_function("document.getElementById('log').textContent.includes('ValueError')")


def test_posts_without_the_pages_csrf_token_are_refused(server: Server, tmp_path: Path) -> None:
    source = csv_inputs(tmp_path / "in", objects=1, rows=3)
    create_job(server, "csrf-target", "very-slow", source)
    request = urllib.request.Request(
        f"{server.url}/console/transform-jobs/csrf-target/stop", data=b"csrf=forged", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    # No page may load anything from elsewhere, nor be framed by another site.
    with urllib.request.urlopen(f"{server.url}/console/transform-jobs", timeout=10) as answer:
        policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    status = server.client().describe_transform_job(TransformJobName="csrf-target")
    assert status["TransformJobStatus"] != "Stopped"
    server.client().stop_transform_job(TransformJobName="csrf-target")


def test_with_auth_the_console_asks_for_an_access_key_first(browser: Any, tmp_path: Path) -> None:
    env = {"BATCHFORM_AUTH_KEYS": "AKIDCONSOLE:console-secret"}
    with running_server(tmp_path / "home", "--auth", env=env) as secured:
        context = browser.new_context(base_url=secured.url)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto("/console/models")
        assert "/console/login" in page.url
        page.get_by_label("Access key id").fill("AKIDCONSOLE")
        page.get_by_label("Secret access key").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        assert "does not match" in page.get_by_role("alert").inner_text()

        page.get_by_label("Secret access key").fill("console-secret")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/models")
        assert page.get_by_role("heading", name="Models").count() == 1
        assert "AKIDCONSOLE" in page.locator("header").inner_text()
        cookie = next(c for c in context.cookies() if c["name"] == "batchform_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        page.get_by_role("button", name="Sign out").click()
        page.goto("/console/transform-jobs")
        assert "/console/login" in page.url
        context.close()
        # Without a session, a page answers with the sign-in form, never with data.
        with urllib.request.urlopen(f"{secured.url}/console/transform-jobs", timeout=10) as answer:
            assert urllib.parse.urlsplit(answer.url).path == "/console/login"
            assert b"Sign in" in answer.read()


def test_a_training_jobs_page_shows_its_statuses_hyperparameters_log_and_artifacts(
    page: Any, server: Server, tmp_path: Path
) -> None:
    data = tmp_path / "train"
    data.mkdir()
    (data / "rows.csv").write_text("1,2\n3,4\n")
    server.client().create_training_job(
        TrainingJobName="perl-fit",
        AlgorithmSpecification={
            "TrainingImage": str(ROOT / "tests" / "models" / "perl_train"),
            "TrainingInputMode": "File",
        },
        RoleArn="arn:aws:iam::111111111111:role/SageMakerRole",
        HyperParameters={"mode": "fit", "scale": "2"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": str(data)}},
            }
        ],
        OutputDataConfig={"S3OutputPath": str(tmp_path / "models")},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    page.goto("/console/training-jobs")
    page.get_by_role("link", name="perl-fit").click()
    page.wait_for_selector("#training-status .badge-completed")
    timeline = page.locator("#training-status .timeline").inner_text()
    for status in ("Starting", "Downloading", "Training", "Uploading", "Completed"):
        assert status in timeline
    assert "scale" in page.locator("#hyperparameters").inner_text()
    assert "model.tar.gz" in page.locator("#training-status").inner_text()
    page.wait_for_function("document.getElementById('log').textContent.includes('loss=')")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "perl-fit-model.tar.gz"
    assert Path(download.value.path()).read_bytes()[:2] == b"\x1f\x8b"  # a gzip file


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/console/transform-jobs/no-such-job",
            "Could not find requested job with name no-such-job",
        ),
        ("/console/endpoints/no-such-endpoint", "Could not find endpoint"),
        ("/console/models/no-such-model", "Could not find model"),
    ],
)
def test_a_missing_resource_is_a_404_page_with_the_services_message(
    server: Server, path: str, message: str
) -> None:
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(server.url + path, timeout=10)
    assert missing.value.code == 404
    assert message in missing.value.read().decode()
