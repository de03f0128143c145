"""Browser tests keep each test's outcome on its item, so a page fixture can say what
the page and the server showed when a test failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[Any]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
