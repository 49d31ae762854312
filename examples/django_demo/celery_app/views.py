"""The tutorial's views: start a task, read its result, run the canvas primitives."""

from django.http import JsonResponse

from celeriac import chain, chord, group
from celeriac.result import AsyncResult

from .tasks import add, mul, xsum


def index(request):
    """Start ``add(x, y)`` (query parameters, default 2 and 3) and return the task id."""
    x = int(request.GET.get("x", 2))
    y = int(request.GET.get("y", 3))
    result = add.delay(x, y)
    return JsonResponse({"task_id": result.id})


def get_result(request):
    """``{"status": ..., "result": ...}`` of ``?task_id=``."""
    task_id = request.GET.get("task_id")
    if not task_id:
        return JsonResponse({"error": "task_id is required"}, status=400)
    result = AsyncResult(task_id)
    value = result.result if result.ready() else None
    if isinstance(value, BaseException):
        value = repr(value)
    return JsonResponse({"status": result.status, "result": value})


def primitive(request):
    """Start each canvas primitive; their ids, to read with get_result."""
    group_result = group(add.s(i, i) for i in range(5))()
    started = {
        "group": [child.id for child in group_result.results],
        "chain": chain(add.s(2, 2), mul.s(4))().id,
        "chord": chord((add.s(i, i) for i in range(5)), xsum.s())().id,
        "map": xsum.map([[1, 2], [3, 4]]).delay().id,
        "starmap": add.starmap([(1, 2), (3, 4)]).delay().id,
        # chunks run as a group of tasks: one id per chunk
        "chunks": [
            chunk.id for chunk in add.chunks([(i, i) for i in range(10)], 2).group()().results
        ],
    }
    return JsonResponse(started)
