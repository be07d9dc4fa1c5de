"""Framing and field codecs."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibsim.framing import (
    MAX_FRAME,
    UNSET_DOUBLE,
    UNSET_INTEGER,
    FieldError,
    FieldReader,
    ProtocolError,
    encode_field,
    encode_payload,
    frame,
    parse_version_range,
    split_payload,
    unpack_length,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "1"),
        (False, "0"),
        (0, "0"),
        (-1, "-1"),
        (900000001, "900000001"),
        (UNSET_INTEGER, ""),
        (100.0, "100"),
        (188.5, "188.5"),
        (0.00005, "5e-05"),
        (UNSET_DOUBLE, ""),
        (math.inf, "Infinite"),
        (math.nan, ""),
        ("a\0b", "ab"),
        ("APPLE INC", "APPLE INC"),
    ],
)
def test_encode_field(value: object, text: str) -> None:
    assert encode_field(value) == text


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)))))
def test_payload_round_trip(fields: list[str]) -> None:
    data = frame(fields)
    assert unpack_length(data[:4]) == len(data) - 4
    assert split_payload(data[4:]) == fields


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_survive_the_wire(value: float) -> None:
    assert FieldReader([encode_field(value)]).float() == (value if value != UNSET_DOUBLE else UNSET_DOUBLE)


def test_reader_types_and_errors() -> None:
    r = FieldReader(["5", "", "5.0", "1.5", "", "Infinite", "1", "", "x"])
    assert (r.int(), r.int(), r.int()) == (5, 0, 5)
    assert (r.float(), r.float(), r.float()) == (1.5, UNSET_DOUBLE, math.inf)
    assert (r.bool(), r.bool()) == (True, False)
    with pytest.raises(FieldError):
        r.int()
    with pytest.raises(FieldError):
        r.str()  # past the end
    with pytest.raises(FieldError):
        FieldReader(["2.5"]).int()
    with pytest.raises(FieldError):
        FieldReader(["nan"]).float()
    with pytest.raises(FieldError):
        FieldReader(["maybe"]).bool()
    reader = FieldReader(["a", "b"])
    reader.skip()
    with pytest.raises(FieldError):
        reader.expect_end()
    with pytest.raises(FieldError):
        reader.skip(2)


def test_handshake_parsing_and_limits() -> None:
    assert parse_version_range(b"v157..176") == (157, 176)
    assert parse_version_range(b"v157..178 +PACEAPI") == (157, 178)
    assert parse_version_range(b"v100") == (100, 100)
    for bad in (b"157..176", b"vabc..def", b"\xff\xfe"):
        with pytest.raises(ProtocolError):
            parse_version_range(bad)
    with pytest.raises(ProtocolError):
        unpack_length(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(ProtocolError):
        split_payload(b"\xff\x00")
    assert encode_payload([9, 1, 1]) == b"9\x001\x001\x00"
