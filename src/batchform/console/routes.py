"""The console's routes, mounted by the server beside the API (`create_app`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from batchform.console import resources, transform
from batchform.console.listing import LISTINGS, list_page
from batchform.console.sessions import COOKIE_NAME
from batchform.console.web import (
    PREFIX,
    STATIC,
    Console,
    Visit,
    read_form,
    redirect,
    safe_next,
    same_origin,
)
from batchform.service import Service

Handler = Callable[[Console, Visit], Awaitable[Response]]


def console_routes(service: Service, access_keys: Mapping[str, str] | None) -> list[BaseRoute]:
    console = Console(service, access_keys)

    def page(handler: Handler) -> Any:
        return console.page(partial(handler, console))

    def get(path: str, handler: Handler) -> Route:
        return Route(PREFIX + path, page(handler), methods=["GET"])

    def post(path: str, handler: Handler) -> Route:
        return Route(PREFIX + path, page(handler), methods=["POST"])

    lists = [
        Route(f"{PREFIX}/{slug}", console.page(list_page(console, listing)), methods=["GET"])
        for slug, listing in LISTINGS.items()
    ]
    return [
        Route("/", _home, methods=["GET"]),
        Route(PREFIX, _home, methods=["GET"]),
        Route(PREFIX + "/", _home, methods=["GET"]),
        Route(PREFIX + "/login", partial(_login, console), methods=["GET", "POST"]),
        post("/logout", _logout),
        Mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="static"),
        get("/transform-jobs/new", transform.new_job),
        post("/transform-jobs/validate", transform.validate_job),
        *lists,
        post("/transform-jobs", transform.create_job),
        get("/transform-jobs/{name}", transform.job_page),
        get("/transform-jobs/{name}/events", transform.job_events),
        get("/transform-jobs/{name}/files", transform.job_file),
        get("/transform-jobs/{name}/log", transform.job_log),
        post("/transform-jobs/{name}/stop", transform.stop_job),
        get("/training-jobs/{name}", resources.training_page),
        get("/training-jobs/{name}/events", resources.training_events),
        get("/training-jobs/{name}/artifacts", resources.training_artifacts),
        post("/training-jobs/{name}/stop", resources.stop_training),
        get("/models/{name}", resources.model_page),
        get("/endpoints/{name}", resources.endpoint_page),
        get("/endpoints/{name}/events", resources.endpoint_events),
        post("/endpoints/{name}/invoke", resources.invoke_endpoint),
    ]


async def _home(_request: Request) -> Response:
    return redirect(f"{PREFIX}/transform-jobs")


async def _logout(console: Console, _visit: Visit) -> Response:
    response = redirect(f"{PREFIX}/login" if console.sessions.login_required else PREFIX + "/")
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


async def _login(console: Console, request: Request) -> Response:
    """Sign in with one of the server's access keys and its secret (as boto3 is set up)."""
    sessions = console.sessions
    if not sessions.login_required:
        return redirect(PREFIX + "/")
    wanted = safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return console.render("login.html", None, next=wanted, error=None)
    form = await read_form(request)
    wanted = safe_next(form.get("next"))
    key, secret = form.get("access_key", "").strip(), form.get("secret_key", "")
    if not same_origin(request) or not sessions.check_login(key, secret):
        error = "Unknown access key, or the secret does not match it."
        return console.render("login.html", None, 401, next=wanted, error=error, key=key)
    response = redirect(wanted)
    console.set_cookie(response, sessions.new(key))
    return response
