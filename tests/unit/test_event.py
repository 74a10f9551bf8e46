from __future__ import annotations

import orjson
import pytest

from streams.errors import ContractError
from streams.event import ChatEvent, EventLimits, decode_event, encode_event

BASE = {"id": "e1", "conversation_id": "c1", "user_id": "u1", "timestamp": 1764280000.5, "request": "hi"}


def _raw(**changes: object) -> bytes:
    data = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


def test_round_trip() -> None:
    event = ChatEvent("e1", "c1", "u1", 1764280000.5, "héllo ✓ 你好", "reply\nline")
    assert decode_event(encode_event(event)) == event


def test_iso_timestamp_and_int_ids() -> None:
    event = decode_event(_raw(timestamp="2025-11-27T21:00:00Z", id=42))
    assert event.id == "42"
    assert event.timestamp == 1764277200.0


def test_unknown_fields_are_ignored() -> None:
    assert decode_event(_raw(extra={"a": 1})).request == "hi"


def test_legal_json_that_orjson_refuses_is_still_read() -> None:
    # an integer beyond 64 bits in a field we do not use is legal JSON
    raw = _raw().replace(b'"hi"', b'"hi", "big": 123456789012345678901234567890')
    assert decode_event(raw).request == "hi"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty"),
        (b"not json", "not_json"),
        (b"\xff\xfe\xfd", "invalid_utf8"),
        (b'{"id": "\\ud800"}', "bad_identifier"),
        (_raw().replace(b'"hi"', b'"hi \\udc00"'), "bad_text"),
        (_raw().replace(b'"hi"', b'"hi", "n": NaN'), "not_json"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "not_json"),
        (b"[1, 2]", "wrong_type"),
        (_raw(id=...), "missing_field"),
        (_raw(request=...), "missing_field"),
        (_raw(request=5), "wrong_type"),
        (_raw(request="   "), "empty_field"),
        (_raw(response=["x"]), "wrong_type"),
        (_raw(timestamp=True), "wrong_type"),
        (_raw(timestamp="yesterday"), "bad_timestamp"),
        (_raw(timestamp="2025-11-27T21:00:00"), "bad_timestamp"),
        (_raw(timestamp=-1), "bad_timestamp"),
        (_raw(id="a\nb"), "bad_identifier"),
        (_raw(id="x" * 300), "bad_identifier"),
        (_raw(request="x" * 40_000), "oversize"),
        (_raw(request="a\x00b"), "bad_text"),
        (b"{" + b'"a":1,' * 50_000 + b'"b":2}', "oversize"),
    ],
)
def test_contract_errors(raw: bytes | None, reason: str) -> None:
    with pytest.raises(ContractError) as info:
        decode_event(raw, EventLimits())
    assert info.value.reason == reason
    assert info.value.message


def test_limits_are_configurable() -> None:
    with pytest.raises(ContractError, match="limit 10"):
        decode_event(_raw(request="x" * 11), EventLimits(max_text_chars=10))
