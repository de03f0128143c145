"""The four resource lists: one List* call per page, filtered and sorted by the server.

Filters and sort order are plain query parameters (`?name=abc&status=Failed&sort=Name
&order=Ascending`), so a list works without JavaScript, can be bookmarked, and pages
with the API's own NextToken.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from batchform.console.web import Console, Refused, Visit

PAGE_SIZE = 50
#: Statuses that will change on their own: a list showing one refreshes itself.
CHANGING = frozenset(
    {"InProgress", "Stopping", "Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
)
ORDERS = ("Descending", "Ascending")

TRANSFORM_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
ENDPOINT_STATUSES = (
    "OutOfService", "Creating", "Updating", "SystemUpdating", "RollingBack",
    "InService", "Deleting", "Failed", "UpdateRollbackFailed",
)  # fmt: skip


@dataclass(frozen=True)
class Column:
    label: str
    field: str
    sort_key: str | None = None  # the List* SortBy value, when it sorts by this column
    kind: str = "text"  # text, status, time, link


@dataclass(frozen=True)
class Listing:
    slug: str  # the URL part: /console/<slug>
    title: str
    operation: str
    answer_key: str
    columns: tuple[Column, ...]
    statuses: tuple[str, ...] = ()
    #: Adds fields a List* summary lacks (ListModels has no image), from Describe calls.
    enrich: Callable[[Console, dict[str, Any]], dict[str, Any]] | None = None

    @property
    def status_field(self) -> str | None:
        return next((column.field for column in self.columns if column.kind == "status"), None)

    def changing(self, rows: list[dict[str, Any]]) -> bool:
        """Does any row show a resource on its way to another status (worth refreshing)?"""
        field = self.status_field
        return field is not None and any(row.get(field) in CHANGING for row in rows)


def _model_image(console: Console, summary: dict[str, Any]) -> dict[str, Any]:
    try:
        described = console.call_now("DescribeModel", {"ModelName": summary["ModelName"]})
    except Refused:
        return summary
    container = described.get("PrimaryContainer") or (described.get("Containers") or [{}])[0]
    return {**summary, "Image": container.get("Image", ""), "Data": container.get("ModelDataUrl")}


def _name(label: str, field: str) -> Column:
    return Column(label, field, "Name", "link")


def _created(field: str = "CreationTime") -> Column:
    return Column("Created", field, "CreationTime", "time")


LISTINGS = {
    listing.slug: listing
    for listing in (
        Listing(
            "transform-jobs", "Transform jobs", "ListTransformJobs", "TransformJobSummaries",
            (
                _name("Name", "TransformJobName"),
                Column("Status", "TransformJobStatus", "Status", "status"),
                _created(),
                Column("Ended", "TransformEndTime", None, "time"),
                Column("Failure reason", "FailureReason"),
            ),
            TRANSFORM_STATUSES,
        ),
        Listing(
            "training-jobs", "Training jobs", "ListTrainingJobs", "TrainingJobSummaries",
            (
                _name("Name", "TrainingJobName"),
                Column("Status", "TrainingJobStatus", "Status", "status"),
                Column("Secondary status", "SecondaryStatus"),
                _created(),
                Column("Ended", "TrainingEndTime", None, "time"),
            ),
            TRANSFORM_STATUSES,
        ),
        Listing(
            "models", "Models", "ListModels", "Models",
            (_name("Name", "ModelName"), Column("Image", "Image"), _created()),
            enrich=_model_image,
        ),
        Listing(
            "endpoints", "Endpoints", "ListEndpoints", "Endpoints",
            (
                _name("Name", "EndpointName"),
                Column("Status", "EndpointStatus", "Status", "status"),
                _created(),
                Column("Last modified", "LastModifiedTime", None, "time"),
            ),
            ENDPOINT_STATUSES,
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Filters:
    name: str
    status: str
    sort: str
    order: str
    token: str

    @classmethod
    def of(cls, visit: Visit, listing: Listing) -> Filters:
        sort = visit.param("sort", "CreationTime")
        order = visit.param("order", "Descending")
        return cls(
            name=visit.param("name").strip(),
            status=visit.param("status") if listing.statuses else "",
            sort=sort,
            order=order,
            token=visit.param("token"),
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"SortBy": self.sort, "SortOrder": self.order}
        body["MaxResults"] = PAGE_SIZE
        for key, value in (
            ("NameContains", self.name),
            ("StatusEquals", self.status),
            ("NextToken", self.token),
        ):
            if value:
                body[key] = value
        return body

    def query(self, **changes: str) -> str:
        """This list's query string with some parameters changed (a new page, a sort)."""
        values = {"name": self.name, "status": self.status, "sort": self.sort}
        values.update(order=self.order, token=self.token)
        values.update(changes)
        return urllib.parse.urlencode({key: value for key, value in values.items() if value})

    def sort_link(self, key: str) -> str:
        """Sorting by a column: ascending first, flipping when it is already the sort."""
        flipped = "Ascending" if self.order == "Descending" else "Descending"
        order = flipped if self.sort == key else "Ascending"
        return self.query(sort=key, order=order, token="")

    def aria_sort(self, key: str) -> str:
        if self.sort != key:
            return "none"
        return "ascending" if self.order == "Ascending" else "descending"


def list_page(console: Console, listing: Listing) -> Callable[[Visit], Any]:
    async def page(visit: Visit) -> Response:
        filters = Filters.of(visit, listing)
        rows: list[dict[str, Any]] = []
        error: Refused | None = None
        next_token = None
        try:
            answer = await console.call(listing.operation, filters.body())
            rows = answer.get(listing.answer_key, [])
            next_token = answer.get("NextToken")
        except Refused as refusal:
            error = refusal
        if listing.enrich is not None:
            enrich = listing.enrich
            rows = await run_in_threadpool(lambda: [enrich(console, row) for row in rows])
        return console.render(
            "list.html",
            visit,
            400 if error else 200,
            listing=listing,
            filters=filters,
            rows=rows,
            error=error,
            next_token=next_token,
        )

    return page
