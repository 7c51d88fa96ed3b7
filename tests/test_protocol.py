"""Decoding and encoding messages, without sockets."""

from __future__ import annotations

import json

import orjson
import pytest

from rtcserver import protocol
from rtcserver.protocol import (
    MAX_ROOM,
    EnterRoom,
    ErrorCode,
    GetRoom,
    ProtocolError,
    Relay,
)


def test_getroom_is_recognised() -> None:
    assert protocol.decode('{"type":"GETROOM","value":""}') == GetRoom()


def test_dispatch_does_not_depend_on_key_order() -> None:
    assert protocol.decode('{"value":42,"type":"ENTERROOM"}') == EnterRoom(room=42)
    assert protocol.decode('{"value":"","type":"GETROOM"}') == GetRoom()


@pytest.mark.parametrize(
    "value",
    [None, "42", 4.2, 42.0, -1, 0, MAX_ROOM + 1, 2**64, True, False, {}, [], [42]],
)
def test_anything_but_a_room_number_is_an_invalid_room(value: object) -> None:
    text = json.dumps({"type": "ENTERROOM", "value": value})  # stdlib: any int size
    assert protocol.decode(text) == EnterRoom(room=None)


def test_missing_value_is_an_invalid_room() -> None:
    assert protocol.decode('{"type":"ENTERROOM"}') == EnterRoom(room=None)


def test_largest_browser_safe_room_number_is_valid() -> None:
    assert protocol.decode(f'{{"type":"ENTERROOM","value":{MAX_ROOM}}}') == EnterRoom(MAX_ROOM)


def test_other_types_are_relayed() -> None:
    message = protocol.decode('{"type":"offer","sdp":"v=0"}')
    assert isinstance(message, Relay) and message.type == "offer"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_JSON),
        ('{"type":', ErrorCode.BAD_JSON),
        ("[1,2]", ErrorCode.NOT_AN_OBJECT),
        ('"GETROOM"', ErrorCode.NOT_AN_OBJECT),
        ("null", ErrorCode.NOT_AN_OBJECT),
        ("{}", ErrorCode.BAD_TYPE),
        ('{"type":5}', ErrorCode.BAD_TYPE),
        ('{"type":null}', ErrorCode.BAD_TYPE),
        ('{"value":"","type":["GETROOM"]}', ErrorCode.BAD_TYPE),
    ],
)
def test_bad_input_names_its_problem(text: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(text)
    assert caught.value.code is code
    reply = orjson.loads(protocol.encode(caught.value.reply))
    assert reply["type"] == "ERROR" and reply["code"] == code.value and reply["message"]


def test_replies_have_the_books_shape_with_type_first() -> None:
    assert protocol.encode(protocol.GetRoomReply(value=7)) == '{"type":"GETROOM","value":7}'
    assert protocol.PEER_JOINED_TEXT == '{"type":"PEERJOINED"}'
    assert protocol.PEER_LEFT_TEXT == '{"type":"PEERLEFT"}'
    wrong = orjson.loads(
        protocol.encode(protocol.WrongRoom(reason=protocol.WrongRoomReason.ROOM_FULL))
    )
    assert wrong == {"type": "WRONGROOM", "reason": "room-full"}


def test_large_room_numbers_encode_as_exact_json_integers() -> None:
    text = protocol.encode(protocol.GetRoomReply(value=MAX_ROOM))
    assert text == f'{{"type":"GETROOM","value":{MAX_ROOM}}}'
