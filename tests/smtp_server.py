"""A real SMTP server for portico's email tests (aiosmtpd, from PyPI).

Listens on 127.0.0.1, prints "PORT <n>" once ready, and writes every message it accepts to
DIR/NNNN.json, parsed by Python's own email package (headers, text and HTML parts, the raw
message, the envelope and who authenticated). What it answers is read per message from
DIR/mode: "ok" (default), "4xx" (451, try later), "5xx" (550, refused for good),
"delay:SECONDS" (accept after a pause), or "close" (accept, then close the connection, as a
server limiting messages per connection does). With --user and --password it requires AUTH.
With --tls starttls (STARTTLS required before anything else) or --tls implicit (TLS from the
first byte), it presents a certificate for localhost and 127.0.0.1 from a test CA made by
trustme (PyPI), and writes that CA to DIR/ca.pem.
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0

    def mode(self):
        try:
            with open(os.path.join(self.folder, "mode")) as f:
                return f.read().strip() or "ok"
        except FileNotFoundError:
            return "ok"

    async def handle_DATA(self, server, session, envelope):
        open(os.path.join(self.folder, "receiving"), "w").close()
        mode = self.mode()
        if mode == "4xx":
            return "451 4.3.0 Temporary failure, try again later"
        if mode == "5xx":
            return "550 5.1.1 Mailbox unavailable"
        if mode.startswith("delay:"):
            await asyncio.sleep(float(mode.split(":", 1)[1]))
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {"text": None, "html": None}
        for part in message.walk():
            kind = part.get_content_type()
            if kind == "text/plain" and parts["text"] is None:
                parts["text"] = part.get_content()
            elif kind == "text/html" and parts["html"] is None:
                parts["html"] = part.get_content()
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": (session.auth_data.login.decode() if session.auth_data else None),
            "headers": {k: str(v) for k, v in message.items()},
            "text": parts["text"],
            "html": parts["html"],
            "raw": envelope.content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.folder, "%04d.json" % self.count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        if mode == "close":
            # Runs once the reply is written: the transport sends it, then closes.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 OK"


def main():
    # aiosmtpd warns that AUTH without TLS is allowed: that is what the loopback tests want.
    warnings.filterwarnings("ignore")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tls", choices=["starttls", "implicit"])
    args = parser.parse_args()

    def authenticate(server, session, envelope, mechanism, data):
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == args.user
            and data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    options = {}
    if args.user:
        options = dict(
            authenticator=authenticate,
            auth_required=True,
            # Over STARTTLS, AUTH only once encrypted. (aiosmtpd 1.4 never counts TLS from the
            # first byte as TLS here, so implicit-TLS servers skip this check: they are
            # encrypted from the start anyway.)
            auth_require_tls=args.tls == "starttls",
        )
    if args.tls:
        import ssl

        # The tests refuse this server's certificate on purpose first: aiosmtpd would log each
        # refused handshake as a session exception with a traceback.
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)

        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(os.path.join(args.dir, "ca.pem"))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        if args.tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            options.update(ssl_context=context)
    port = args.port
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    controller = Controller(
        Handler(args.dir), hostname="127.0.0.1", port=port, **options
    )
    controller.start()
    print("PORT %d" % port, flush=True)
    try:
        sys.stdin.read()  # runs until the test closes our stdin or kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
