"""Task domains and the registry that maps task names to them.

Built in: ``hanoi`` (with ``disks``) and its short form ``hanoi-Ndisk``, e.g. ``hanoi-10disk``.
Users add their own with :func:`register_domain`::

    register_domain("sorting", lambda options: SortingDomain())
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from maker_worker.domains.base import Domain
from maker_worker.domains.hanoi import HanoiDomain
from maker_worker.errors import ConfigError

__all__ = [
    "Domain",
    "DomainFactory",
    "HanoiDomain",
    "TaskOptions",
    "get_domain",
    "known_tasks",
    "register_domain",
]


@dataclass(frozen=True)
class TaskOptions:
    """Options a task name may need, as given on the command line or in the job record."""

    disks: int | None = None


DomainFactory = Callable[[TaskOptions], Domain]
"""Builds a domain from the task options; raises ConfigError when they do not fit."""

_HANOI_SHORT_FORM = re.compile(r"hanoi-(\d{1,6})disks?")
_HANOI_SHORT_NAME = "hanoi-Ndisk"


def _hanoi(options: TaskOptions) -> Domain:
    """Factory of the ``hanoi`` task, which needs ``disks``."""
    if options.disks is None:
        raise ConfigError(
            "task 'hanoi' needs the number of disks; pass --disks N or use the short form hanoi-Ndisk "
            "(e.g. hanoi-10disk)"
        )
    return HanoiDomain(options.disks)


_REGISTRY: dict[str, DomainFactory] = {"hanoi": _hanoi}


def register_domain(name: str, factory: DomainFactory) -> None:
    """Make ``factory`` available as task ``name`` (replacing any domain of that name).

    Raises:
        ConfigError: the name is empty or clashes with the ``hanoi-Ndisk`` short form.
    """
    key = name.strip().lower()
    if not key or _HANOI_SHORT_FORM.fullmatch(key):
        raise ConfigError(f"cannot register a domain named {name!r}; choose a non-empty, unused name")
    _REGISTRY[key] = factory


def known_tasks() -> list[str]:
    """Names accepted by :func:`get_domain`; ``hanoi-Ndisk`` stands for the short form."""
    return ["hanoi", _HANOI_SHORT_NAME, *(name for name in _REGISTRY if name != "hanoi")]


def get_domain(task: str, *, disks: int | None = None) -> Domain:
    """The domain for a task name.

    Args:
        task: a registered name such as ``hanoi``, or the short form ``hanoi-Ndisk``.
        disks: number of disks for ``hanoi``; with the short form it must agree with N.

    Raises:
        ConfigError: the task is unknown or its options are missing or inconsistent.
    """
    key = task.strip().lower()
    short = _HANOI_SHORT_FORM.fullmatch(key)
    if short is not None:
        n_disks = int(short.group(1))
        if disks is not None and disks != n_disks:
            raise ConfigError(f"task {task!r} means {n_disks} disks but --disks {disks} was given; drop one")
        return HanoiDomain(n_disks)
    factory = _REGISTRY.get(key)
    if factory is None:
        raise ConfigError(f"unknown task {task!r}; known tasks: {', '.join(map(_describe, known_tasks()))}")
    return factory(TaskOptions(disks=disks))


def _describe(name: str) -> str:
    """A task name as shown in error messages, with an example for the short form."""
    return f"{name} (e.g. hanoi-10disk)" if name == _HANOI_SHORT_NAME else name
