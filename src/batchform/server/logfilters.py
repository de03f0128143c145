"""What FilterLogEvents keeps: the streams a request names and the messages its pattern matches.

`filterPattern` supports CloudWatch's plain-text syntax only: terms that must all appear
(`ERROR timeout`), `"quoted phrases"`, `?term` (at least one of them), `-term` (must not
appear) and `%regex%`; JSON (`{ $.x = 1 }`) and space-delimited (`[a, b]`) patterns are
refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from batchform.server.logrequest import Catalog, LogLocator, constraint, invalid, str_param


def stream_selection(
    body: Mapping[str, Any], group: str, locate: LogLocator, catalog: Catalog
) -> dict[str, tuple[Path, Callable[[str], bool]]]:
    """FilterLogEvents' streams: job → (file, which of its streams)."""
    if "logStreamNames" in body and "logStreamNamePrefix" in body:
        raise invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
    if "logStreamNames" not in body:
        prefix = str_param(body, "logStreamNamePrefix")
        jobs = catalog.jobs(group, prefix, locate)
        return {job: (path, _prefixed(f"{job}/", prefix)) for job, path in jobs}
    chosen: dict[str, tuple[Path, set[str]]] = {}
    for name in _stream_names(body):
        path, stream = catalog.stream_file(group, name, locate)
        chosen.setdefault(name.partition("/")[0], (path, set()))[1].add(stream)
    return {job: (path, streams.__contains__) for job, (path, streams) in chosen.items()}


def _prefixed(job_prefix: str, prefix: str) -> Callable[[str], bool]:
    return lambda stream: (job_prefix + stream).startswith(prefix)


def _stream_names(body: Mapping[str, Any]) -> list[str]:
    names = body["logStreamNames"]
    if not isinstance(names, list) or not 1 <= len(names) <= 100:
        raise constraint("logStreamNames", names, "have length between 1 and 100")
    if not all(isinstance(name, str) and name for name in names):
        raise constraint("logStreamNames", names, "contain only non-empty names")
    return names


# Filter patterns ------------------------------------------------------------------------

_TERM = re.compile(r'([?-]?)(?:"([^"]*)"|%([^%]+)%|(\S+))')


def message_filter(text: str) -> Callable[[str], bool]:
    """CloudWatch's plain-text filter syntax (see the module's docstring); case-sensitive."""
    if text.strip()[:1] in ("{", "["):
        raise invalid("batchform supports only plain-text filter patterns (terms, phrases)")
    tests: dict[str, list[Callable[[str], bool]]] = {"": [], "?": [], "-": []}
    for sign, phrase, regex, word in _TERM.findall(text):
        tests[sign].append(_regex(regex) if regex else _contains(phrase or word))
    required, optional, excluded = tests[""], tests["?"], tests["-"]
    return lambda message: (
        all(test(message) for test in required)
        and (not optional or any(test(message) for test in optional))
        and not any(test(message) for test in excluded)
    )


def _contains(term: str) -> Callable[[str], bool]:
    return lambda message: term in message


def _regex(source: str) -> Callable[[str], bool]:
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise invalid(f"Invalid regular expression in filter pattern: {exc}") from exc
    return lambda message: compiled.search(message) is not None
