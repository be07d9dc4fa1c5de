"""The domain shared by the web app and the execution worker.

Models and migrations, the engine/session factory, ids (orderRef), the operator service functions
behind the admin API, dashboard and Telegram commands, the outbox relay and enqueue, and every
Redis key, queue and job name (:mod:`core.keys`). Imports neither ``app`` nor ``worker``.
"""
