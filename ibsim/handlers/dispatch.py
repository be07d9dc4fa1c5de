"""Which handler answers which client message: the table the connections dispatch on, the
requests ibsim does not serve (answered at once with an error so the client's future ends), and
where each message carries its request id (for error replies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ibsim.messages import ids
from ibsim.session import Session

#: answers one client message (its fields, the id first)
Handler = Callable[[Session, list[str]], None]
Method = TypeVar("Method", bound=Callable[..., None])

#: handler method -> the message ids it answers (see :func:`answers`)
_ANSWERS: dict[Any, tuple[int, ...]] = {}


def answers(*msg_ids: int) -> Callable[[Method], Method]:
    """Mark a method of a :class:`RequestGroup` as the handler of these message ids."""

    def mark(method: Method) -> Method:
        _ANSWERS[method] = msg_ids
        return method

    return mark


class RequestGroup:
    """A family of request handlers: the methods marked with :func:`answers`."""

    def table(self) -> dict[int, Handler]:
        """Message id -> bound handler, for every marked method."""
        table: dict[int, Handler] = {}
        for name, value in vars(type(self)).items():
            for msg_id in _ANSWERS.get(value, ()):
                table[msg_id] = getattr(self, name)
        return table


# awaited requests the simulator does not serve: answer with an error on their reqId so the
# client's future ends at once (msgId -> (index of reqId, error code, text))
UNSERVED_REQUESTS = {
    96: (1, 162, "Historical Market Data Service error message:no ticks in the simulator"),
    88: (1, 162, "Historical Market Data Service error message:no histogram in the simulator"),
    50: (2, 162, "Historical Market Data Service error message:no real-time bars in the simulator"),
    10: (2, 354, "Requested market data is not subscribed."),
    54: (2, 200, "No security definition has been found for the request"),
    55: (2, 200, "No security definition has been found for the request"),
    86: (1, 162, "Historical news is not available in the simulator"),
    22: (1, 162, "Scanner is not available in the simulator"),
}
#: where the request / order id sits in the messages that carry one
_REQUEST_ID_INDEX = {
    ids.PLACE_ORDER: 1,
    ids.CANCEL_ORDER: 2,
    ids.REQ_CONTRACT_DATA: 2,
    ids.REQ_MKT_DATA: 2,
    ids.REQ_EXECUTIONS: 2,
    ids.REQ_ACCOUNT_SUMMARY: 2,
    ids.REQ_ACCOUNT_UPDATES_MULTI: 2,
    ids.REQ_MATCHING_SYMBOLS: 1,
    ids.REQ_SEC_DEF_OPT_PARAMS: 1,
    ids.REQ_PNL: 1,
    ids.REQ_PNL_SINGLE: 1,
}


def answer_unserved(session: Session, msg_id: int, fields: list[str]) -> bool:
    """Answer a request ibsim does not serve with its error; False when ``msg_id`` is not one."""
    if msg_id not in UNSERVED_REQUESTS:
        return False
    index, code, text = UNSERVED_REQUESTS[msg_id]
    session.error(int(fields[index]), code, text)
    return True


def request_id(fields: list[str]) -> int:
    """Best guess at the request / order id of a client message, for error replies."""
    try:
        msg_id = int(fields[0])
    except (ValueError, IndexError):
        return -1
    index = _REQUEST_ID_INDEX.get(msg_id)
    if index is None:
        index = UNSERVED_REQUESTS.get(msg_id, (None,))[0]
    if index is None or index >= len(fields):
        return -1
    try:
        return int(fields[index])
    except ValueError:
        return -1
