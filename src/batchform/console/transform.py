"""Transform job pages: the create form (and clone), a job's detail page and its live
stream, Stop, and the job's output files and log."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, PlainTextResponse, Response

from batchform.console import charts, forms, live
from batchform.console import format as formatting
from batchform.console.web import PREFIX, TERMINAL, Console, Refused, Visit, file_response, redirect
from batchform.errors import BatchformError, SpecValidationError, describe_problem
from batchform.service import parse_transform_request


def _job_url(name: str) -> str:
    return f"{PREFIX}/transform-jobs/{name}"


# The create form


async def new_job(console: Console, visit: Visit) -> Response:
    clone = visit.param("clone")
    values = forms.defaults()
    if clone:
        described = await console.call("DescribeTransformJob", {"TransformJobName": clone})
        values = forms.clone_values(described)
    return await _form(console, visit, values, clone=clone)


async def _form(
    console: Console,
    visit: Visit,
    values: dict[str, str],
    errors: dict[str, list[str]] | None = None,
    general: list[str] | None = None,
    status: int = 200,
    clone: str = "",
) -> Response:
    models = await console.call("ListModels", {"MaxResults": 100, "SortBy": "Name"})
    names = [model["ModelName"] for model in models.get("Models", [])]
    return console.render(
        "transform_new.html",
        visit,
        status,
        sections=forms.SECTIONS,
        values=values,
        errors=errors or {},
        general=general or [],
        models=sorted(names),
        clone=clone,
    )


def place_problems(
    problems: list[tuple[str, str, object]], unreadable: dict[str, str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Validation problems beside the inputs they are about, in the service's own words;
    those about no input, for above the form."""
    errors: dict[str, list[str]] = {name: [text] for name, text in unreadable.items()}
    general: list[str] = []
    for problem in problems:
        text = describe_problem(*problem)
        target = forms.field_for_problem(problem[0])
        if target is None:
            general.append(text)
        else:
            errors.setdefault(target, []).append(text)
    return errors, general


#: The input a refusal other than a validation problem is about, by its code.
_REFUSAL_FIELDS = {
    "ResourceInUse": "TransformJobName",
    "ResourceLimitExceeded": "TransformResources.InstanceCount",
}


def _refusal_field(refusal: Refused) -> str | None:
    if refusal.message.startswith("Could not find model"):
        return "ModelName"
    return _REFUSAL_FIELDS.get(refusal.code)


async def create_job(console: Console, visit: Visit) -> Response:
    body, unreadable = forms.body_from_form(visit.form)
    values = {name: visit.form.get(name, "") for name in forms.FIELDS}
    if not unreadable:
        try:
            await console.call("CreateTransformJob", body)
            return redirect(_job_url(body["TransformJobName"]))
        except Refused as refusal:
            errors, general = place_problems(refusal.problems, unreadable)
            if not refusal.problems:
                target = _refusal_field(refusal)
                if target is None:
                    general.append(f"{refusal.code}: {refusal.message}")
                else:
                    errors[target] = [refusal.message]
    else:
        errors, general = place_problems([], unreadable)
    return await _form(console, visit, values, errors, general, status=400)


async def validate_job(_console: Console, visit: Visit) -> Response:
    """Checks a filled form as CreateTransformJob would (without creating anything):
    the form's inline messages as the user types."""
    body, unreadable = forms.body_from_form(visit.form)
    problems: list[tuple[str, str, object]] = []
    try:
        parse_transform_request(body)
    except SpecValidationError as exc:
        problems = exc.problems
    errors, general = place_problems(problems, unreadable)
    return JSONResponse({"errors": errors, "general": general})


# A job's page


def timeline(job: dict[str, Any]) -> list[dict[str, Any]]:
    """Created → Started → the end (or where the job is now)."""
    status = job["TransformJobStatus"]
    started = job.get("TransformStartTime")
    steps = [{"label": "Created", "at": job["CreationTime"], "state": "done"}]
    if started is None:
        steps.append({"label": "Waiting for a worker", "at": None, "state": "current"})
    else:
        steps.append({"label": "Running", "at": started, "state": "done"})
    if status == "Stopping":
        steps.append({"label": "Stopping", "at": None, "state": "current"})
    if status in TERMINAL:
        steps.append({"label": status, "at": job.get("TransformEndTime"), "state": status})
    elif started is not None and status != "Stopping":
        steps[-1]["state"] = "current"
    return steps


def job_charts(series: list[dict[str, Any]]) -> list[charts.Chart]:
    def plot(ident: str, title: str, field: str, show: Any) -> charts.Chart:
        samples = [(point["at"], point[field]) for point in series]
        return charts.line_chart(ident, title, samples, show, formatting.duration)

    return [
        plot("records", "Throughput", "records_per_second", lambda v: f"{v:,.1f} records/s"),
        plot("latency", "Invocation latency", "latency_ms", lambda v: f"{v:,.1f} ms"),
        plot("cpu", "Model CPU", "cpu_percent", lambda v: f"{v:,.0f}% of a core"),
        plot("memory", "Model memory", "memory_mb", lambda v: f"{v:,.0f} MiB"),
    ]


async def _job_context(console: Console, name: str) -> dict[str, Any]:
    job = await console.call("DescribeTransformJob", {"TransformJobName": name})
    try:
        view = await run_in_threadpool(console.service.transform_job_view, name)
    except BatchformError as exc:
        raise Refused("ResourceNotFound", str(exc)) from exc
    return {
        "job": job,
        "view": view,
        "charts": job_charts(view["series"]),
        "timeline": timeline(job),
        "finished": job["TransformJobStatus"] in TERMINAL,
    }


#: The page's parts the live stream re-renders, by element id.
JOB_FRAGMENTS = {
    "job-status": "transform/_status.html",
    "job-progress": "transform/_progress.html",
    "job-settings": "transform/_settings.html",
    "job-charts": "_charts.html",
    "job-objects": "transform/_objects.html",
}


async def job_page(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    context = await _job_context(console, name)
    log = await run_in_threadpool(console.service.job_log, name)
    return await live.page_with_log(console, visit, "transform/job.html", context, log)


async def job_events(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    log = await run_in_threadpool(console.service.job_log, name)
    return live.page_events(console, visit, lambda: _job_context(console, name), JOB_FRAGMENTS, log)


async def stop_job(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    await console.call("StopTransformJob", {"TransformJobName": name})
    return redirect(_job_url(name))


# Files


async def job_file(console: Console, visit: Visit) -> Response:
    """One of the job's outputs, dead-letter files or its summary, shown as text.

    Only files the job itself wrote are served: the key must be one of its objects.
    """
    name = visit.path("name")
    context = await _job_context(console, name)
    kind, key = visit.param("kind", "output"), visit.param("key")
    url = _file_url(context, kind, key)
    if url is None:
        return PlainTextResponse("No such file of this job.\n", status_code=404)
    return await file_response(url)


def _file_url(context: dict[str, Any], kind: str, key: str) -> str | None:
    view = context["view"]
    if kind == "summary":
        url: str | None = view["summary_url"]
        return url
    known = {obj["key"]: obj for obj in view["objects"]}
    if key not in known:
        return None
    found: str | None = known[key]["errors_url" if kind == "errors" else "output_url"]
    return found


async def job_log(console: Console, visit: Visit) -> Response:
    path = await run_in_threadpool(console.service.job_log, visit.path("name"))
    text = await run_in_threadpool(_read_text, path)
    return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})


def _read_text(path: Any) -> str:
    try:
        text: str = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return text
