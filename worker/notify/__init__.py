"""Telegram notices, alarms and the owner-only command bot.

The worker calls exactly two things::

    from worker.notify import enqueue_notices, Notifier

    enqueue_notices(session, event, settings)   # inside the transaction that records the fact
    notifier = Notifier(settings, sessions, redis_client)
    notifier.start(); notifier.wake(); notifier.ib_connection_changed(False, "1100 ...")
    notifier.worker_stopping("SIGTERM"); notifier.stop(timeout=5.0)

``compose`` says what a notice reads like (pure), ``notice_rows`` stores it durably, ``sender`` and
``transport`` deliver it, ``bot`` answers commands, ``notifier`` runs it all on one thread.
"""

from worker.notify.compose import NoticeDraft
from worker.notify.notice_rows import enqueue_notices
from worker.notify.notifier import Notifier

__all__ = ["Notifier", "NoticeDraft", "enqueue_notices"]
