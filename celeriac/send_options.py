"""SendOptions: what celeriac itself tells the publish path about one call.

A user's send options are Celery's ``apply_async``/``send_task`` keywords and travel in
``**options``. The few flags only celeriac sets travel beside them, in one frozen
:class:`SendOptions` passed as ``send_options=``, so no private key can be spelt by a user,
collide with a header, or be forgotten in a ``pop``. The instances are module constants: the
publish path allocates none.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_SEND", "FROM_TASK", "RETRY", "SendOptions"]


@dataclass(frozen=True, slots=True)
class SendOptions:
    """Flags for one send that are not Celery options."""

    #: whether ``task_always_eager`` may run the call here instead of publishing it; False when
    #: the Task already chose to publish (``apply_async`` checked the setting, ``retry`` runs on
    #: a worker)
    allow_eager: bool = True
    #: keep ``parent_id``/``root_id`` as given instead of taking them from the task running in
    #: this thread: a retry is the same call again, not a child of itself
    keep_parent: bool = False


#: ``send_task`` called by a user: the defaults
DEFAULT_SEND = SendOptions()
#: ``Task.apply_async``: the task already checked ``task_always_eager``
FROM_TASK = SendOptions(allow_eager=False)
#: ``Task.retry``: publish, keeping the original parent and root
RETRY = SendOptions(allow_eager=False, keep_parent=True)
