"""A NAS test double for Dynamic Authorization (RFC 5176): it listens where a switch's CoA
server would (UDP 3799 in the lab's NAS namespace), checks each CoA- or Disconnect-Request's
Request Authenticator and Message-Authenticator against the shared secret, logs it as one
JSON line, and answers as told: ACK, NAK with an Error-Cause, or silence for the first N
copies (to exercise retransmission). Run it with `python -m tools.labnet.nas`.

    --answer ack | nak:503 | nak:401 ...   what CoA-Requests get (Disconnect: --disconnect)
    --ignore N                             say nothing to the first N datagrams
"""

from __future__ import annotations

import argparse
import json
import socket
import sys

from netaccess.config.radius_dictionary import standard_dictionary
from netaccess.proto.radius import auth
from netaccess.proto.radius.dictionary import named
from netaccess.proto.radius.errors import RadiusError
from netaccess.proto.radius.packet import Code, decode_packet

ANSWERS = {
    Code.COA_REQUEST: (Code.COA_ACK, Code.COA_NAK),
    Code.DISCONNECT_REQUEST: (Code.DISCONNECT_ACK, Code.DISCONNECT_NAK),
}


def answer_of(text: str) -> int | None:
    """None for ACK, else the NAK's Error-Cause."""
    if text == "ack":
        return None
    kind, _, cause = text.partition(":")
    if kind != "nak" or not cause.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use ack or nak:CAUSE")
    return int(cause)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=3799)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--answer", type=answer_of, default=None, help="CoA-Requests")
    parser.add_argument("--disconnect", type=answer_of, default=None, help="Disconnects")
    parser.add_argument("--ignore", type=int, default=0)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    secret = args.secret.encode()
    dictionary = standard_dictionary()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.address, args.port))
    print("ready", flush=True)
    ignored = 0
    with open(args.log, "a", buffering=1) as log:
        while True:
            data, peer = sock.recvfrom(4096)
            entry: dict[str, object] = {"from": peer[0], "hex": data.hex()}
            try:
                packet = decode_packet(data)
                if packet.code not in ANSWERS:
                    raise RadiusError(f"code {packet.code} is not a CoA or Disconnect")
                auth.verify_request_authenticator(data, secret)
                entry["message_authenticator"] = auth.verify_message_authenticator(
                    data, packet, secret
                )
                entry["code"] = Code(packet.code).name
                entry["identifier"] = packet.identifier
                entry["attributes"] = {
                    k: [str(v) for v in vs] for k, vs in named(dictionary.decode(packet)).items()
                }
            except RadiusError as exc:
                entry["refused"] = str(exc)
                log.write(json.dumps(entry) + "\n")
                continue
            if ignored < args.ignore:
                ignored += 1
                entry["answer"] = "ignored"
                log.write(json.dumps(entry) + "\n")
                continue
            ack, nak = ANSWERS[Code(packet.code)]
            cause = args.answer if packet.code == Code.COA_REQUEST else args.disconnect
            attributes = [] if cause is None else dictionary.encode("Error-Cause", cause)
            reply = auth.encode_reply(
                ack if cause is None else nak,
                packet.identifier,
                packet.authenticator,
                attributes,
                secret,
            )
            entry["answer"] = "ack" if cause is None else f"nak:{cause}"
            log.write(json.dumps(entry) + "\n")
            sock.sendto(reply, peer)


if __name__ == "__main__":
    sys.exit(main())
