"""Take the README's console screenshots (docs/console/*.png) from a real server.

    .venv/bin/python -m scripts.console_screenshots

Starts `batchform server` in a temporary home, creates a few models and jobs (one that
completes, one that fails, one stopped, one running long enough to chart), and captures
the job list, the running job's page and the create form with Debian's chromium.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from tests.e2e.test_console import CHROMIUM_FLAGS, chromium_path, create_job, csv_inputs
from tests.serverproc import Server, running_server

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "console"
HANDLERS = ROOT / "tests" / "handlers"
VIEWPORT = {"width": 1366, "height": 900}


def seed(server: Server, work: Path) -> None:
    sagemaker = server.client()
    for name, handler, env in (
        ("csv-sum", "csv_sum", {}),
        ("scorer", "slow", {"SLOW_SECONDS": "0.03"}),
        ("strict-parser", "fail_on_marker", {}),
    ):
        container = {"Image": str(HANDLERS / handler), "Environment": env}
        sagemaker.create_model(ModelName=name, PrimaryContainer=container)
    create_job(server, "daily-sums-2026-11-30", "csv-sum", _numbers(work / "sums", 4))
    create_job(
        server, "parse-orders", "strict-parser", csv_inputs(work / "orders", 3, 50, marker_in=2)
    )
    backfill = csv_inputs(work / "backfill", 2, 400)
    create_job(server, "score-backfill", "scorer", backfill, BatchStrategy="SingleRecord")
    time.sleep(3)
    sagemaker.stop_transform_job(TransformJobName="score-backfill")
    reviews = csv_inputs(work / "reviews", 6, 500)
    create_job(
        server,
        "score-reviews",
        "scorer",
        reviews,
        BatchStrategy="SingleRecord",
        MaxConcurrentTransforms=4,
    )


def _numbers(folder: Path, objects: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(objects):
        rows = "".join(f"{index},{row},{row * 2}\n" for row in range(200))
        (folder / f"day-{index}.csv").write_text(rows)
    return folder


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        with running_server(
            home / "home", "--heartbeat", "0.5", "--max-concurrent-jobs", "3"
        ) as server:
            seed(server, home)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium_path(), args=CHROMIUM_FLAGS
                )
                context = browser.new_context(viewport=VIEWPORT, base_url=server.url)
                page = context.new_page()
                time.sleep(20)  # the running job has a chart's worth of samples
                page.goto("/console/transform-jobs/score-reviews")
                page.wait_for_timeout(1500)
                page.screenshot(path=str(OUT / "job-running.png"), full_page=True)
                page.goto("/console/transform-jobs")
                page.screenshot(path=str(OUT / "job-list.png"))
                page.goto("/console/transform-jobs/new?clone=daily-sums-2026-11-30")
                page.screenshot(path=str(OUT / "create-form.png"), full_page=True)
                context.close()
                browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
