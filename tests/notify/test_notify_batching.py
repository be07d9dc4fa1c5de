"""Pure logic of the sender's flood policy: batches keep order and exactly-once, stay within
Telegram's limit; the per-chat pace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.notice_text import MAX_TEXT, text_length
from worker.notify.sender import BATCH_SEPARATOR, PendingNotice, TokenBucket, batch_text, build_batch


def _drain(rows: list[PendingNotice], batching: bool) -> list[list[PendingNotice]]:
    batches = []
    while rows:
        batch = build_batch(rows, batching)
        batches.append(batch)
        rows = rows[len(batch) :]
    return batches


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=MAX_TEXT), min_size=1, max_size=60))
def test_batches_keep_order_exactly_once_and_fit(lengths: list[int]) -> None:
    rows = [PendingNotice(i, "fill", "x" * n, False) for i, n in enumerate(lengths)]
    batches = _drain(rows, batching=True)
    assert [row.id for batch in batches for row in batch] == list(range(len(rows)))
    assert all(text_length(batch_text(batch)) <= MAX_TEXT for batch in batches)
    # Greedy: a batch only ends when the next notice would not fit.
    for batch, following in zip(batches, batches[1:], strict=False):
        assert text_length(batch_text(batch)) + len(BATCH_SEPARATOR) + len(following[0].text) > MAX_TEXT


def test_no_batching_sends_one_by_one() -> None:
    rows = [PendingNotice(i, "fill", "x", False) for i in range(5)]
    assert [len(b) for b in _drain(rows, batching=False)] == [1] * 5


def test_a_hundred_fill_notices_make_a_handful_of_messages() -> None:
    rows = [PendingNotice(i, "fill", "f" * 300, False) for i in range(100)]
    assert len(_drain(rows, batching=True)) <= 8


def test_token_bucket_allows_a_burst_then_paces() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=1.0, burst=3, clock=lambda: now[0])
    for _ in range(3):
        assert bucket.delay() == 0
        bucket.take()
    assert bucket.delay() == 1.0
    now[0] += 0.5
    assert abs(bucket.delay() - 0.5) < 1e-9
    now[0] += 0.5
    assert bucket.delay() == 0
    bucket.take()
    now[0] += 100  # a long quiet spell refills only up to the burst
    for _ in range(3):
        bucket.take()
    assert bucket.delay() > 0
