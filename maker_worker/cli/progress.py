"""A live progress bar on stderr (steps/s, samples, red flags, ETA)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class StepProgress:
    """Use as a context manager; ``update`` fits the coordinator's step callback."""

    def __init__(self, steps: int, console: Console, done: int = 0) -> None:
        self.bar = Progress(
            TextColumn("[bold]steps"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("samples {task.fields[samples]}  red flags {task.fields[red_flags]}"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task_id = self.bar.add_task(
            "steps", total=steps, completed=done, rate="", samples=0, red_flags=0
        )

    def __enter__(self) -> StepProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()

    def update(self, steps_done: int, totals: Mapping[str, int] | Counter[str]) -> None:
        speed = self.bar.tasks[0].speed
        self.bar.update(
            self.task_id,
            completed=steps_done,
            rate=f"{speed:7.1f} steps/s" if speed else "",
            samples=totals.get("samples", 0),
            red_flags=totals.get("red_flags", 0),
        )
