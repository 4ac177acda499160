"""Writes the seed corpora of the fuzz targets (run from fuzz/seeds; idempotent).

frame_decoder inputs are a knob byte (frame limit and read size) then a byte stream;
handshake inputs are a knob byte (side, digest, legacy, features) then the peer's
frames. The handshake seeds hold correct answers for the fixed challenge
`{digest}` + 0x5a * 40 under the key b"fuzz-key", so the fuzzer starts past the MAC.
"""
import hashlib
import hmac
import struct

KEY = b"fuzz-key"
DIGESTS = ["md5", "sha256", "sha384", "sha3_256", "sha3_384"]


def frame(p):
    return struct.pack("!i", len(p)) + p


def write(target, name, data):
    with open(f"{target}/{name}", "wb") as f:
        f.write(data)


write("frame_decoder", "two_frames", bytes([20]) + frame(b"hello") + frame(b""))
write("frame_decoder", "long_form", bytes([31]) + b"\xff\xff\xff\xff" + struct.pack("!Q", 3) + b"abc")
write("frame_decoder", "huge_length", bytes([5]) + b"\x7f\xff\xff\xff")
write("frame_decoder", "negative_length", bytes([20]) + b"\xff\xff\xff\xfe")
write("frame_decoder", "truncated", bytes([20 | 0x40]) + frame(b"0123456789")[:9])
write("frame_decoder", "many_small", bytes([16 | 0x20]) + b"".join(frame(bytes([i]) * i) for i in range(40)))

for i, d in enumerate(DIGESTS):
    for features in (b"", b"#SHOAL#zstd"):
        knobs = (i << 2) | 2 | (0x80 if features else 0)
        message = b"{" + d.encode() + b"}" + b"\x5a" * 40 + features
        mac = hmac.new(KEY, message, d).digest()
        # Server side (even knobs): the peer answers the fixed challenge.
        write("handshake", f"server_{d}{'_features' if features else ''}",
              bytes([knobs]) + frame(b"{" + d.encode() + b"}" + mac))
    # Client side (odd knobs): the peer challenges, then welcomes.
    challenge = b"#CHALLENGE#{" + d.encode() + b"}" + bytes(range(40)) + b"#SHOAL#zstd"
    write("handshake", f"client_{d}", bytes([(i << 2) | 3]) + frame(challenge) + frame(b"#WELCOME#"))

legacy_message = b"{sha256}" + b"\x5a" * 40
write("handshake", "server_legacy_md5",
      bytes([(1 << 2) | 2]) + frame(hmac.new(KEY, legacy_message, "md5").digest()))
write("handshake", "client_legacy", bytes([3]) + frame(b"#CHALLENGE#" + bytes(20)) + frame(b"#WELCOME#"))
write("handshake", "client_failure", bytes([3]) + frame(b"#CHALLENGE#" + bytes(20)) + frame(b"#FAILURE#"))
write("handshake", "junk", bytes([1]) + frame(b"not a challenge"))
