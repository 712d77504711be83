"""gRPC channel settings shared by the server, the device agent and the client SDK."""

from __future__ import annotations

# ONNX uploads and artifacts travel in one message: the default 4 MiB is too small for them.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

MESSAGE_SIZE_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

# What dials the server (client, agent): keepalive pings find a dead connection (a rebooted
# server, a board on Wi-Fi, a dropped NAT entry) within ~40 s instead of a TCP timeout; the
# server permits pings every 10 s, also without calls.
CHANNEL_OPTIONS = [
    *MESSAGE_SIZE_OPTIONS,
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
