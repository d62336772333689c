"""A real SMTP server for unitsync's notification tests (aiosmtpd).

Usage: smtp_sink.py PORT OUTDIR [USER PASSWORD]

Listens on 127.0.0.1:PORT and writes each received message to OUTDIR/NNN.json with the
envelope, the AUTH login (when given), the parsed headers and the decoded plain-text body
(with LF line ends and a single final newline), and the whole DATA as received (`data`).
With USER and PASSWORD, AUTH PLAIN/LOGIN is offered on the plain connection
(auth_require_tls=False) and required; wrong credentials are refused.
Prints "READY" once it accepts connections; stops on SIGTERM or when stdin closes.
"""

import email
import email.policy
import json
import os
import sys
import threading
import warnings

# Requiring AUTH without TLS is what this local test server is for.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = None
        if session.auth_data is not None:
            login = session.auth_data.login.decode()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_login": login,
            "headers": {k.lower(): str(v) for k, v in message.items()},
            # Line ends as text (CRLF on the wire), without the blank line the transfer adds.
            "body": message.get_content().replace("\r\n", "\n").rstrip("\n") + "\n",
            "data": envelope.original_content.decode("utf-8", "replace"),
        }
        with self.lock:
            self.count += 1
            path = os.path.join(self.outdir, "%03d.json" % self.count)
        with open(path + ".partial", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.rename(path + ".partial", path)
        return "250 Message accepted for delivery"


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    kwargs = {}
    if len(sys.argv) > 4:
        user, password = sys.argv[3].encode(), sys.argv[4].encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == user and auth_data.password == password
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        kwargs = {
            "authenticator": authenticator,
            "auth_require_tls": False,
            "auth_required": True,
        }
    controller = Controller(Sink(outdir), hostname="127.0.0.1", port=port, server_kwargs=kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
