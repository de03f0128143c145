"""Which runtime a model folder gets, and how its connection pool is sized."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchform.errors import ConfigurationError
from batchform.runtimes.registry import MIN_CONNECTIONS, ModelReference, pool_size, runtime_kind


def executable(path: Path, text: str = "#!/bin/sh\n") -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_serve_or_entrypoint_make_a_container(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    executable(tmp_path / "a" / "serve")
    (tmp_path / "b").mkdir()
    executable(tmp_path / "b" / "entrypoint")

    assert runtime_kind(ModelReference(image=str(tmp_path / "a"))) == "container"
    assert runtime_kind(ModelReference(image=f"file://{tmp_path / 'b'}")) == "container"


def test_inference_py_makes_a_handler(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text("")

    assert runtime_kind(ModelReference(image=str(tmp_path))) == "handler"


def test_a_serve_without_its_x_bit_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "serve").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "serve", 0o644)

    with pytest.raises(ConfigurationError, match=r"serve is not executable \(chmod \+x it\)"):
        runtime_kind(ModelReference(image=str(tmp_path)))


def test_a_url_wins_over_everything() -> None:
    assert runtime_kind(ModelReference(image="/nowhere", url="http://127.0.0.1:1")) == "http"


@pytest.mark.parametrize(("requested", "pool"), [(1, MIN_CONNECTIONS), (200, 200)])
def test_pools_leave_room_for_what_the_model_may_offer(requested: int, pool: int) -> None:
    assert pool_size(requested) == pool
