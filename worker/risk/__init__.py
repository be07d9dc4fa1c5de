"""The risk file's rules in the worker: pure checks (:mod:`.checks`), the exchange calendar
(:mod:`.calendar`), what is remembered in the database (:mod:`.state`) and the gate the executor
calls (:mod:`.gate`). See docs/risk.md."""
