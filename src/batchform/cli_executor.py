"""The --executor and --ray-address options, shared by the commands that run jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from batchform.engine.executors import EXECUTORS, ExecutorSettings, get_executor

Command = TypeVar("Command", bound=Callable[..., None])


def executor_options(command: Command) -> Command:
    """Adds `executor` and `ray_address` parameters: where a job's instances run."""
    command = click.option(
        "--ray-address",
        envvar="RAY_ADDRESS",
        help="With --executor ray: the cluster to join (ray://head:10001, head:6379, auto); "
        "default RAY_ADDRESS, else a Ray instance started on this machine.",
    )(command)
    with_executor: Command = click.option(
        "--executor",
        type=click.Choice(sorted(EXECUTORS)),
        default="local",
        show_default=True,
        help="Where instances run: threads of this process, or Ray actors across a cluster "
        "(pip install 'batchform[ray]').",
    )(command)
    return with_executor


def checked_executor(name: str, address: str | None) -> ExecutorSettings:
    """The settings, once the executor is known to be installed (else the install hint)."""
    settings = ExecutorSettings(name, address)
    get_executor(settings)
    return settings
