"""Verifies Herald's webhook signatures with the Standard Webhooks reference
library (tests/api/webhooks.rs). Reads {secret, cases: [{id, timestamp,
signature, body}]} on stdin; prints one verdict per case: "ok" or the
library's exception."""
import json
import sys

from standardwebhooks.webhooks import Webhook

request = json.load(sys.stdin)
hook = Webhook(request["secret"])
verdicts = []
for case in request["cases"]:
    headers = {
        "webhook-id": case["id"],
        "webhook-timestamp": case["timestamp"],
        "webhook-signature": case["signature"],
    }
    try:
        hook.verify(case["body"], headers)
        verdicts.append("ok")
    except Exception as e:  # the library's WebhookVerificationError
        verdicts.append(f"{type(e).__name__}: {e}")
print(json.dumps(verdicts))
