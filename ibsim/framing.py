"""Wire framing and field codecs of the TWS API socket protocol (server side).

Every message after the initial ``API\\0`` greeting is a 4-byte big-endian length followed by
a UTF-8 payload of NUL-terminated text fields (the last field is terminated too).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from collections.abc import Iterable, Sequence
from decimal import Decimal

UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = 1.7976931348623157e308
#: what real TWS writes for an unset double where the client tolerates it (margins, realizedPNL)
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
#: frames above this size are treated as hostile: the connection is closed
MAX_FRAME = 1 << 20
HANDSHAKE_PREFIX = b"API\0"

_LEN = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent bytes that do not follow the protocol; the connection should be closed."""


class FieldError(ProtocolError):
    """A field could not be decoded as the type the layout requires."""


def encode_field(value: object) -> str:
    """Encode one field value the way TWS writes it (ints without a decimal point, unset as "")."""
    kind = type(value)
    if kind is str:
        return value if "\0" not in value else value.replace("\0", "")  # type: ignore[union-attr]
    if kind is int:
        return "" if value == UNSET_INTEGER else str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return "" if value == UNSET_INTEGER else str(value)
    if isinstance(value, float):
        if value == UNSET_DOUBLE or math.isnan(value):
            return ""
        if math.isinf(value):
            return "Infinite"
        # repr keeps full precision; strip the pointless ".0" so 100.0 reads as "100"
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, Decimal):
        return str(value)
    text = str(value)
    if "\0" in text:
        # a NUL inside a field would shift every later field of the message
        text = text.replace("\0", "")
    return text


def encode_payload(fields: Iterable[object]) -> bytes:
    """Join fields into a payload, each terminated by NUL."""
    return "".join(encode_field(f) + "\0" for f in fields).encode("utf-8")


def frame(fields: Iterable[object]) -> bytes:
    """Build one length-prefixed frame from message fields."""
    payload = encode_payload(fields)
    return _LEN.pack(len(payload)) + payload


def frame_raw(payload: bytes) -> bytes:
    """Length-prefix an already encoded payload."""
    return _LEN.pack(len(payload)) + payload


def unpack_length(header: bytes) -> int:
    """Decode the 4-byte length prefix, refusing frames above MAX_FRAME."""
    (length,) = _LEN.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} byte limit")
    return length


def split_payload(payload: bytes) -> list[str]:
    """Split a received payload into fields (dropping the empty element after the last NUL)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("payload is not UTF-8") from exc
    fields = text.split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return fields


def parse_version_range(payload: bytes) -> tuple[int, int]:
    """Parse the client's ``v<min>..<max>[ options]`` handshake payload."""
    try:
        text = payload.decode("ascii").split(" ", 1)[0].strip("\0")
        if not text.startswith("v"):
            raise ValueError(text)
        low, _, high = text[1:].partition("..")
        return int(low), int(high or low)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"bad handshake payload {payload[:40]!r}") from exc


def parse_time_field(text: str, date_only: bool = False) -> float | None:
    """A request's time field, ``yyyymmdd hh:mm:ss [tz]`` or ``yyyymmdd-hh:mm:ss`` (with
    ``date_only`` also ``yyyymmdd``), as unix seconds read as UTC (the zone is ignored); None when
    it is none of those."""
    parts = text.strip().replace("-", " ").split()
    try:
        stamp = dt.datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S")
    except ValueError:
        if not date_only or not parts:
            return None
        try:
            stamp = dt.datetime.strptime(parts[0], "%Y%m%d")
        except ValueError:
            return None
    return stamp.replace(tzinfo=dt.UTC).timestamp()


def connect_options(payload: bytes) -> str:
    """The connect options after the version range (e.g. ``+PACEAPI``), or ""."""
    text = payload.decode("ascii", "replace")
    return text.split(" ", 1)[1] if " " in text else ""


class FieldReader:
    """Cursor over the fields of one client message with typed getters."""

    __slots__ = ("fields", "pos")

    def __init__(self, fields: Sequence[str], pos: int = 0) -> None:
        self.fields = fields
        self.pos = pos

    def _next(self) -> str:
        if self.pos >= len(self.fields):
            raise FieldError(f"message truncated: wanted field {self.pos}, have {len(self.fields)}")
        value = self.fields[self.pos]
        self.pos += 1
        return value

    def str(self) -> str:
        """Next field as text."""
        return self._next()

    def int(self, default: int = 0) -> int:
        """Next field as int; "" gives ``default`` (an int may arrive as ``5.0`` from odd clients)."""
        text = self._next()
        if text == "":
            return default
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError as exc:
                raise FieldError(f"field {self.pos - 1}: {text!r} is not an integer") from exc
            if not number.is_integer():
                raise FieldError(f"field {self.pos - 1}: {text!r} is not an integer") from None
            return int(number)

    def float(self, default: float = UNSET_DOUBLE) -> float:
        """Next field as float; "" gives ``default`` (UNSET unless told)."""
        text = self._next()
        if text == "":
            return default
        if text == "Infinite":
            return math.inf
        try:
            value = float(text)
        except ValueError as exc:
            raise FieldError(f"field {self.pos - 1}: {text!r} is not a number") from exc
        if math.isnan(value):
            raise FieldError(f"field {self.pos - 1}: NaN is not a number")
        return value

    def bool(self) -> bool:
        """Next field as a 0/1 flag ("" is false)."""
        text = self._next()
        if text in ("", "0", "false", "False"):
            return False
        if text in ("1", "true", "True"):
            return True
        try:
            return bool(int(float(text)))
        except ValueError as exc:
            raise FieldError(f"field {self.pos - 1}: {text!r} is not a flag") from exc

    def skip(self, count: int = 1) -> None:
        """Skip fields (checked: running past the end is an error)."""
        if self.pos + count > len(self.fields):
            raise FieldError("message truncated")
        self.pos += count

    @property
    def remaining(self) -> int:
        """Fields not consumed yet."""
        return len(self.fields) - self.pos

    def expect_end(self) -> None:
        """Raise unless every field was consumed (catches layout/version mistakes)."""
        if self.pos != len(self.fields):
            raise FieldError(f"{len(self.fields) - self.pos} unexpected trailing fields")
