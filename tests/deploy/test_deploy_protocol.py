"""Codec of protocol v1: round trips, sizes, the CRC check value, typed errors, fuzzing."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy import protocol as P

RNG = np.random.default_rng(0)


def _messages() -> list[P.Message]:
    q = RNG.uniform(0, 2 * np.pi, 12).astype(np.float32)
    return [
        P.Hello(1),
        P.Read(2),
        P.Estop(65535),
        P.Info(4, 0x01, 0x0100, 100, q - 0.5, q + 0.5),
        P.Command(5, 1, q),
        P.Command(6, 0, np.zeros(12)),
        P.State(7, 2**32 - 1, 0x0F, q, -q, [1, 0, 0, 0], [0.1, -0.2, 0.3], [0, 0, 9.81]),
        P.Error(8, 6),
    ]


MESSAGES = _messages()


def test_crc_check_value():
    assert P.crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    frame = P.encode(msg)
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    assert P.decode(frame) == msg
    assert P.decode(frame[:-1], n_joints=12 if hasattr(msg, "n_joints") else None) == msg


def test_frame_sizes_match_protocol_md():
    q = np.full(12, np.pi, dtype=np.float32)
    assert len(P.encode(P.Command(1, 1, q))) == 57 == P.command_frame_bytes(12)
    state = P.State(1, 0, 0, q, q, [1, 0, 0, 0], [0, 0, 0], [0, 0, 0])
    assert len(P.encode(state)) == 149 == P.state_frame_bytes(12)


def test_wire_layout_is_little_endian():
    raw = cobs.decode(P.encode(P.Command(0x1234, 1, [1.5, -2.0]))[:-1])
    assert raw[:4] == bytes([1, 0x02, 0x34, 0x12])
    assert raw[4] == 1
    assert struct.unpack("<2f", raw[5:13]) == (1.5, -2.0)
    assert struct.unpack("<H", raw[-2:])[0] == P.crc16(raw[:-2])


def _payload(version=1, mtype=0x03, seq=9, body=b""):
    return struct.pack("<BBH", version, mtype, seq) + body


@pytest.mark.parametrize(
    ("frame", "exc", "code", "seq"),
    [
        (P.encode_payload(_payload(version=2)), P.VersionError, 2, 9),
        (P.encode_payload(_payload(mtype=0x42)), P.UnknownTypeError, 4, 9),
        (P.encode_payload(_payload(body=b"\x01")), P.BodyLengthError, 3, 9),
        (P.encode_payload(_payload(mtype=0x02, body=b"\x01" + b"\0" * 5)), P.BodyLengthError,
         3, 9),
        (P.encode_payload(_payload(mtype=0x02, body=b"\x02" + b"\0" * 48)), P.FieldValueError,
         3, 9),
        (P.encode_payload(_payload(mtype=0xFF, body=b"\x09")), P.FieldValueError, 3, 9),
        (P.encode_payload(b"\x01\x03"), P.FrameTooShortError, 3, None),
        (cobs.encode(b"\x01" * 255) + b"\0", P.FrameTooLongError, 3, None),
        (b"\x05\x01\x00", P.FramingError, 1, None),
    ],
    ids=["version", "type", "len-read", "len-command", "mode", "error-code", "short", "long",
         "cobs"],
)
def test_typed_errors(frame, exc, code, seq):
    with pytest.raises(exc) as info:
        P.decode(frame)
    assert info.value.code == code and info.value.seq == seq
    assert isinstance(info.value, P.ProtocolError)


def test_bad_crc_detected_and_joint_count_enforced():
    frame = bytearray(cobs.decode(P.encode(P.Read(3))[:-1]))
    frame[-1] ^= 0x01
    with pytest.raises(P.CrcError):
        P.decode(cobs.encode(bytes(frame)))
    cmd = P.encode(P.Command(1, 1, np.zeros(11)))
    with pytest.raises(P.BodyLengthError, match="expected 12 joints"):
        P.decode(cmd, n_joints=12)


def test_encode_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="seq"):
        P.encode(P.Read(70000))
    with pytest.raises(ValueError, match="254"):
        P.encode(P.State(1, 0, 0, np.zeros(30), np.zeros(30), [1, 0, 0, 0], [0] * 3, [0] * 3))


def test_splitter_resyncs_after_garbage_and_overflow():
    good = P.encode(P.Read(7))
    sp = P.FrameSplitter()
    frames = sp.feed(b"\x13\x37garbage" + b"\x00" + good[:3])
    frames += sp.feed(good[3:] + b"\xff" * 600)
    frames += sp.feed(b"\xff" * 10 + b"\x00" + good)
    decoded = []
    for f in frames:
        try:
            decoded.append(P.decode(f))
        except P.ProtocolError:
            pass
    assert decoded == [P.Read(7), P.Read(7)]
    assert sp.overflows == 1


# --------------------------------------------------------------------------------- fuzzing
_valid_frames = [P.encode(m) for m in MESSAGES]


@settings(max_examples=600, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=300))
def test_fuzz_random_bytes_give_typed_errors_only(data):
    try:
        msg = P.decode(data)
    except P.ProtocolError:
        return
    # Accepted only if it is a genuine frame: re-encoding gives the same bytes.
    assert P.encode(msg)[:-1] == data.rstrip(b"\x00")


@st.composite
def _mutated(draw):
    original = draw(st.sampled_from(range(len(_valid_frames))))
    frame = bytearray(_valid_frames[original][:-1])
    kind = draw(st.sampled_from(["flip", "replace", "truncate", "insert", "delete", "swap"]))
    i = draw(st.integers(0, len(frame) - 1))
    if kind == "flip":
        frame[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "replace":
        frame[i] = draw(st.integers(0, 255))
    elif kind == "truncate":
        frame = frame[:i]
    elif kind == "insert":
        frame.insert(i, draw(st.integers(0, 255)))
    elif kind == "delete":
        del frame[i]
    else:
        j = draw(st.integers(0, len(frame) - 1))
        frame[i], frame[j] = frame[j], frame[i]
    return original, bytes(frame)


@settings(max_examples=1500, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_fuzz_mutated_frames_never_accepted_corrupt(case):
    original, frame = case
    try:
        msg = P.decode(frame)
    except P.ProtocolError:
        return
    # A mutation that still decodes must have been a no-op (e.g. swapping equal bytes).
    assert msg == MESSAGES[original]
    assert frame == _valid_frames[original][:-1]
