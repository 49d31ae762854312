"""The task registry: task name -> task instance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from celeriac.exceptions import NotRegistered

if TYPE_CHECKING:
    from celeriac.task import Task


class TaskRegistry(dict[str, "Task"]):
    NotRegistered = NotRegistered

    def __missing__(self, key: str) -> Task:
        raise NotRegistered(key)

    def register(self, task: Task) -> None:
        if not task.name:
            raise ValueError(f"Task {task!r} has no name")
        self[task.name] = task

    def unregister(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise NotRegistered(name) from None

    def regular(self) -> dict[str, Task]:
        return {name: task for name, task in self.items() if not name.startswith("celery.")}
