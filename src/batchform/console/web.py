"""What every console page shares: the service's operations, sessions and CSRF, templates.

Pages call the same operation handlers the JSON API dispatches to (through the API's
own error mapping), so they show what a boto3 user would see, refusals included.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

from batchform.console import format as formatting
from batchform.console.sessions import COOKIE_NAME, SESSION_SECONDS, Session, Sessions
from batchform.errors import BatchformError, ServiceError, SpecValidationError
from batchform.server import protocol
from batchform.server.protocol import ApiError
from batchform.service import Service, filesystem

PREFIX = "/console"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: Forms are small; anything bigger is refused before it is read whole.
MAX_FORM_BYTES = 8 * 1024 * 1024
FILE_CHUNK = 1 << 20
#: Every page's assets come from this server: the policy says so to the browser too.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: The statuses a job ends in.
TERMINAL = ("Completed", "Failed", "Stopped")
NAV = (
    ("transform-jobs", "Transform jobs"),
    ("training-jobs", "Training jobs"),
    ("models", "Models"),
    ("endpoints", "Endpoints"),
)


@dataclass(frozen=True)
class Refused(Exception):
    """An operation the service refused: SageMaker's code and message, and for a
    ValidationException each (field path, rule, value) problem."""

    code: str
    message: str
    problems: list[tuple[str, str, object]] = field(default_factory=list)


@dataclass
class Visit:
    """One request to a console page, past the session and CSRF checks."""

    request: Request
    session: Session
    form: dict[str, str]
    csrf: str

    def param(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value


Page = Callable[[Visit], Awaitable[Response]]


class Console:
    """The console's state: the service's operations, sessions, templates."""

    def __init__(self, service: Service, access_keys: Mapping[str, str] | None) -> None:
        self.service = service
        self.operations = service.operations()
        self.sessions = Sessions(access_keys)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters.update(formatting.FILTERS)
        self.templates.globals.update(prefix=PREFIX, nav=NAV)

    async def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run a SageMaker operation as the API does; refusals raise `Refused`."""
        return await run_in_threadpool(self.call_now, operation, body)

    def call_now(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return protocol.call(self.operations[operation], body)
        except ApiError as error:
            cause = error.__cause__
            problems = cause.problems if isinstance(cause, SpecValidationError) else []
            raise Refused(error.code, error.message, list(problems)) from error

    def render_text(self, template: str, visit: Visit | None, **values: Any) -> str:
        parts = visit.request.url.path.split("/") if visit else []
        context = {
            "visit": visit,
            "csrf": visit.csrf if visit else "",
            "section": parts[2] if len(parts) > 2 else "",
            "signed_in": visit.session.access_key if visit else None,
            **values,
        }
        return self.templates.get_template(template).render(context)

    def render(
        self, template: str, visit: Visit | None, status: int = 200, **values: Any
    ) -> Response:
        text = self.render_text(template, visit, **values)
        return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)

    def refused(self, visit: Visit, refusal: Refused) -> Response:
        """The service's refusal as a page: 404 when what was asked for does not exist
        (SageMaker says so with ValidationException for most resources), else 400."""
        message = refusal.message.lower()
        missing = (
            refusal.code == "ResourceNotFound" or "not find" in message or "not found" in message
        )
        status = 404 if missing else 400
        return self.render("error.html", visit, status, code=refusal.code, message=refusal.message)

    def page(self, handler: Page) -> Callable[[Request], Awaitable[Response]]:
        """A console endpoint: signed-in (when the server has keys), CSRF-checked POSTs."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.decode(request.cookies.get(COOKIE_NAME))
            fresh = session is None
            if session is None:
                if self.sessions.login_required:
                    return _to_login(request)
                session = self.sessions.new()
            form: dict[str, str] = {}
            if request.method == "POST":
                form = await read_form(request)
                if not self.sessions.csrf_ok(session, form.get("csrf")) or not same_origin(request):
                    return self.forbidden()
            visit = Visit(request, session, form, self.sessions.csrf_token(session))
            try:
                response = await handler(visit)
            except Refused as refusal:
                response = self.refused(visit, refusal)
            except ServiceError as exc:
                response = self.refused(visit, Refused(exc.code, str(exc)))
            if fresh:
                self.set_cookie(response, session)
            response.headers.update(SECURITY_HEADERS)
            return response

        return endpoint

    def set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.sessions.encode(session),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
        )

    def forbidden(self) -> Response:
        text = self.render_text(
            "error.html",
            None,
            code="Forbidden",
            message="This form has expired or came from another site. Go back, reload the "
            "page and try again.",
        )
        return HTMLResponse(text, status_code=403, headers=SECURITY_HEADERS)


def _to_login(request: Request) -> Response:
    if request.method != "GET":
        return Response("Sign in first.\n", status_code=401, media_type="text/plain")
    wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urllib.parse.urlencode({"next": wanted})
    return RedirectResponse(f"{PREFIX}/login?{query}", status_code=303)


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body, first value of each name (multi-part is not used)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            break
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    parsed = urllib.parse.parse_qs(text, keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


def same_origin(request: Request) -> bool:
    """A browser's POST says where its form came from; it must be this server."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path of this console, never another site."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return f"{PREFIX}/transform-jobs"


async def file_response(url: str, download: str | None = None) -> Response:
    """A file from the job's storage (any URL the service reads), streamed: shown as text,
    or with `download` as an attachment of that name."""
    try:
        fs, path = await run_in_threadpool(filesystem, url)
        handle = await run_in_threadpool(fs.open, path, "rb")
    except (BatchformError, OSError) as exc:
        return PlainTextResponse(f"Cannot read {url}: {exc}\n", status_code=404)
    headers = {"X-Content-Type-Options": "nosniff", "Content-Disposition": "inline"}
    media_type = "text/plain; charset=utf-8"
    if download is not None:
        headers["Content-Disposition"] = f'attachment; filename="{download}"'
        media_type = "application/octet-stream"
    return StreamingResponse(_chunks(handle), media_type=media_type, headers=headers)


def _chunks(handle: Any) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(FILE_CHUNK):
            yield chunk


def redirect(path: str) -> Response:
    return RedirectResponse(path, status_code=303)
