"""A tiny exec credential plugin for the tests (run as a subprocess, never imported).

usage: exec_plugin.py STATE_DIR MODE
It appends KUBERNETES_EXEC_INFO to STATE_DIR/calls.jsonl, then answers by MODE:
token (token "tok-<n>", expiring after $EXPIRES_IN seconds if set), cert (the
PEM files STATE_DIR/client.crt and client.key), fail (exit 3), garbage (not
JSON), wrong-version (an answer in another apiVersion), empty (no credential).
"""

import datetime
import json
import os
import sys
from pathlib import Path

state, mode = Path(sys.argv[1]), sys.argv[2]
calls = state / "calls.jsonl"
with calls.open("a") as f:
    f.write(os.environ.get("KUBERNETES_EXEC_INFO", "null") + "\n")
n = len(calls.read_text().splitlines())
status: dict[str, str] = {}
if mode == "token":
    status["token"] = f"{os.environ.get('TOKEN_PREFIX', 'tok')}-{n}"
elif mode == "cert":
    status["clientCertificateData"] = (state / "client.crt").read_text()
    status["clientKeyData"] = (state / "client.key").read_text()
elif mode == "fail":
    print("the identity service said no", file=sys.stderr)
    sys.exit(3)
elif mode == "garbage":
    print("this is not json")
    sys.exit(0)
if "EXPIRES_IN" in os.environ:
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=float(os.environ["EXPIRES_IN"])
    )
    status["expirationTimestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
asked = json.loads(os.environ["KUBERNETES_EXEC_INFO"])["apiVersion"]
other = {"client.authentication.k8s.io/v1": "client.authentication.k8s.io/v1beta1"}
version = other.get(asked, "client.authentication.k8s.io/v1") if mode == "wrong-version" else asked
print(
    json.dumps(
        {
            "apiVersion": version,
            "kind": "ExecCredential",
            "status": status,
        }
    )
)
