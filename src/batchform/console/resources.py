"""Training job, model and endpoint pages, and the endpoint's try-it form."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from batchform.console import charts, live
from batchform.console import format as formatting
from batchform.console.web import PREFIX, TERMINAL, Console, Refused, Visit, file_response, redirect
from batchform.errors import EndpointModelError, ServiceError

#: How much of a model's answer the try-it form shows.
ANSWER_PREVIEW = 64 * 1024


# Training jobs


async def _training_context(console: Console, name: str) -> dict[str, Any]:
    job = await console.call("DescribeTrainingJob", {"TrainingJobName": name})
    return {"job": job, "finished": job["TrainingJobStatus"] in TERMINAL}


TRAINING_FRAGMENTS = {"training-status": "training/_status.html"}


async def training_page(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    context = await _training_context(console, name)
    log = await run_in_threadpool(console.service.training.log_path, name)
    return await live.page_with_log(console, visit, "training/job.html", context, log)


async def training_events(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    log = await run_in_threadpool(console.service.training.log_path, name)
    return live.page_events(
        console, visit, lambda: _training_context(console, name), TRAINING_FRAGMENTS, log
    )


async def training_artifacts(console: Console, visit: Visit) -> Response:
    """The job's model.tar.gz, once training has written it."""
    job = await console.call("DescribeTrainingJob", {"TrainingJobName": visit.path("name")})
    url = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not url:
        return PlainTextResponse("This job has no model artifacts yet.\n", status_code=404)
    return await file_response(url, download=f"{job['TrainingJobName']}-model.tar.gz")


async def stop_training(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    await console.call("StopTrainingJob", {"TrainingJobName": name})
    return redirect(f"{PREFIX}/training-jobs/{name}")


# Models


async def model_page(console: Console, visit: Visit) -> Response:
    model = await console.call("DescribeModel", {"ModelName": visit.path("name")})
    return console.render("model.html", visit, model=model)


# Endpoints


def endpoint_charts(series: list[dict[str, Any]]) -> list[charts.Chart]:
    rate = [(point["at"], point["per_second"]) for point in series]
    latency = [(point["at"], point["latency_ms"]) for point in series]
    return [
        charts.line_chart(
            "rate", "Invocations", rate, lambda v: f"{v:,.2f}/s", formatting.duration
        ),
        charts.line_chart(
            "latency", "Latency", latency, lambda v: f"{v:,.1f} ms", formatting.duration
        ),
    ]


async def _endpoint_context(console: Console, name: str) -> dict[str, Any]:
    endpoint = await console.call("DescribeEndpoint", {"EndpointName": name})
    try:
        stats = await run_in_threadpool(console.service.endpoints.live, name)
    except ServiceError as exc:
        raise Refused(exc.code, str(exc)) from exc
    return {"endpoint": endpoint, "stats": stats, "charts": endpoint_charts(stats["series"])}


ENDPOINT_FRAGMENTS = {"endpoint-live": "endpoint/_live.html"}


async def endpoint_page(
    console: Console, visit: Visit, answer: dict[str, Any] | None = None
) -> Response:
    name = visit.path("name")
    context = await _endpoint_context(console, name)
    log = await run_in_threadpool(console.service.endpoints.log_path, name)
    lines, offset = await run_in_threadpool(live.tail, log)
    return console.render(
        "endpoint/endpoint.html",
        visit,
        200 if answer is None or answer.get("ok") else 400,
        answer=answer,
        events_url=f"{PREFIX}/endpoints/{name}/events",
        log_lines=lines,
        log_offset=offset,
        **context,
    )


async def endpoint_events(console: Console, visit: Visit) -> Response:
    name = visit.path("name")
    log = await run_in_threadpool(console.service.endpoints.log_path, name)
    return live.page_events(
        console, visit, lambda: _endpoint_context(console, name), ENDPOINT_FRAGMENTS, log, 2.0
    )


async def invoke_endpoint(console: Console, visit: Visit) -> Response:
    """The try-it form: InvokeEndpoint with the body typed in, the answer shown on the page."""
    name = visit.path("name")
    form = visit.form
    request = {
        "body": form.get("body", ""),
        "content_type": form.get("content_type") or "text/csv",
        "accept": form.get("accept") or None,
    }
    answer = await run_in_threadpool(_invoke, console, name, request)
    return await endpoint_page(console, visit, {**request, **answer})


def _invoke(console: Console, name: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = console.service.invoke_endpoint(
            name, request["body"].encode(), request["content_type"], request["accept"]
        )
    except EndpointModelError as exc:
        return {"ok": False, "error": f"ModelError: {exc}"}
    except ServiceError as exc:
        return {"ok": False, "error": f"{exc.code}: {exc}"}
    text = answer.body[:ANSWER_PREVIEW].decode("utf-8", errors="replace")
    return {
        "ok": True,
        "answer": text,
        "truncated": len(answer.body) > ANSWER_PREVIEW,
        "answer_type": answer.content_type,
        "variant": answer.invoked_variant,
    }
