"""BNO08x UART-RVC: packet codec, orientation maths, and the serial reader's gyro and axes."""

from __future__ import annotations

import math
import os
import struct
import time

import numpy as np

from deploy.calibration import imu_axes_matrix
from deploy.imu import (
    MG_TO_M_S2,
    RVC_PACKET_BYTES,
    RvcImu,
    RvcParser,
    encode_rvc,
    euler_zyx_to_matrix,
    matrix_to_euler_zyx,
    matrix_to_quat_wxyz,
    quat_wxyz_to_matrix,
)
from deploy.sim.sts_emulator import open_pty


def test_packet_layout_matches_the_rvc_format():
    pkt = encode_rvc(7, 12.34, -5.67, 170.0, np.array([0.0, 0.0, 9.80665]))
    assert len(pkt) == RVC_PACKET_BYTES == 19 and pkt[:2] == b"\xaa\xaa"
    # Adafruit's decoding: unpack "<BhhhhhhBBBB" after the header, checksum = sum(bytes 2..17).
    fields = struct.unpack_from("<BhhhhhhBBBB", pkt, 2)
    assert fields[:7] == (7, 1234, -567, 17000, 0, 0, 1000)
    assert fields[10] == sum(pkt[2:18]) % 256
    (r,) = RvcParser().feed(pkt)
    assert (r.index, r.yaw_deg, r.pitch_deg, r.roll_deg) == (7, 12.34, -5.67, 170.0)
    np.testing.assert_allclose(r.accel_m_s2, [0.0, 0.0, 1000 * MG_TO_M_S2])


def test_parser_resyncs_after_garbage_and_drops_bad_checksums():
    good = [encode_rvc(i, i, 0, 0, np.zeros(3)) for i in range(5)]
    bad = bytearray(good[2])
    bad[5] ^= 0xFF
    stream = b"\x01\xaa\x02" + good[0] + good[1] + bytes(bad) + b"\xaa" + good[3] + good[4]
    p = RvcParser()
    out = []
    for i in range(0, len(stream), 7):  # arrives in pieces
        out += p.feed(stream[i:i + 7])
    assert [r.index for r in out] == [0, 1, 3, 4]
    # Two failed candidates: the corrupted packet, and the stray 0xAA that forms a false header
    # with the next packet's first 0xAA.
    assert p.bad_checksums == 2 and p.packets == 4


def test_euler_matrix_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        yaw, pitch, roll = rng.uniform(-3, 3), rng.uniform(-1.5, 1.5), rng.uniform(-3, 3)
        r = euler_zyx_to_matrix(yaw, pitch, roll)
        np.testing.assert_allclose(matrix_to_euler_zyx(r), (yaw, pitch, roll), atol=1e-9)
        np.testing.assert_allclose(quat_wxyz_to_matrix(matrix_to_quat_wxyz(r)), r, atol=1e-9)


def test_reader_maps_axes_and_differentiates_orientation():
    """A sensor mounted rotated (body x = IMU +y) turning about body z at 0.5 rad/s, tilted."""
    master, slave, path = open_pty()
    m = imu_axes_matrix(["+y", "-x", "+z"])
    imu = RvcImu(path, m)
    try:
        pitch_b = math.radians(10.0)  # body nose down by 10 deg
        for i in range(6):
            r_wb = euler_zyx_to_matrix(0.5 * 0.01 * i, pitch_b, 0.0)
            r_wi = r_wb @ m
            yaw, pitch, roll = matrix_to_euler_zyx(r_wi)
            accel_b = r_wb.T @ np.array([0, 0, 9.80665])
            os.write(master, encode_rvc(i, math.degrees(yaw), math.degrees(pitch),
                                        math.degrees(roll), m.T @ accel_b))
        # Poll until the 6 packets are in (a pty delivers a moment later; not a fixed sleep a
        # busy machine can outrun; 10 s only bounds a hang).
        n, give_up = 0, time.monotonic() + 10.0
        while n < 6 and time.monotonic() < give_up:
            t_poll = time.perf_counter()  # before the poll that got the last packets
            n += imu.poll()
            time.sleep(0.001)
        assert n == 6
        quat, gyro, accel, age = imu.body_reading()
        # The age counts from this poll's packets (not a bound in ms: that is the machine's load).
        assert 0.0 <= age <= time.perf_counter() - t_poll
        r_wb_last = euler_zyx_to_matrix(0.025, pitch_b, 0.0)
        np.testing.assert_allclose(quat_wxyz_to_matrix(quat), r_wb_last, atol=2e-4)
        # The yaw rate appears about body z tilted by the pitch: w_body = R^T (0, 0, 0.5).
        np.testing.assert_allclose(gyro, r_wb_last.T @ np.array([0, 0, 0.5]), atol=0.02)
        np.testing.assert_allclose(accel, r_wb_last.T @ np.array([0, 0, 9.80665]), atol=0.02)
    finally:
        imu.close()
        os.close(master)
        os.close(slave)
