"""Resource names as the sagemaker SDK makes them: `<base>-<UTC timestamp to the ms>`.

Names follow SageMaker's rule (letters, digits and hyphens, at most 63 characters), so
a base taken from a local folder name (`dbscan_container`) is made valid rather than
refused by the service.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

from batchform.service import BUILTIN_PREFIX

MAX_NAME_LENGTH = 63
_TIMESTAMPED = re.compile(r"^(.+)-(\d{4}(?:-\d{2}){5}-\d{3}|\d{6}-\d{4})$")
_IMAGE = re.compile(r"^(?:.+/)?([^:/]+)(?::[^:/]+)?$")
_INVALID = re.compile(r"[^a-zA-Z0-9-]+")
_issued: set[str] = set()
_issued_lock = threading.Lock()


def timestamp() -> str:
    """UTC now as `2024-05-01-12-30-45-123`."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%d-%H-%M-%S-") + f"{now.microsecond // 1000:03d}"


def name_from_base(base: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """`base` trimmed to fit, then `-<timestamp>`; never the same name twice in a process
    (two jobs started within one millisecond would otherwise collide)."""
    while True:
        stamp = timestamp()
        name = f"{base[: max_length - len(stamp) - 1]}-{stamp}"
        with _issued_lock:
            if name not in _issued:
                _issued.add(name)
                return name
        time.sleep(0.001)


def base_from_name(name: str) -> str:
    """The base of a name made by `name_from_base` (the name itself otherwise)."""
    match = _TIMESTAMPED.match(name)
    return match.group(1) if match else name


def base_name_from_image(image: str, default: str) -> str:
    """`pca` for `.../pca:1` or `builtin:pca`, a folder's name for a local image folder."""
    if image.startswith(BUILTIN_PREFIX):
        candidate = image[len(BUILTIN_PREFIX) :]
    else:
        match = _IMAGE.match(image.rstrip("/"))
        candidate = match.group(1) if match else image
    return valid_name(candidate) or default


def valid_name(text: str) -> str:
    """`text` with every run of characters SageMaker names refuse turned into one hyphen."""
    return _INVALID.sub("-", text).strip("-")[:MAX_NAME_LENGTH]
