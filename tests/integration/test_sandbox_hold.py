"""The sandbox holds a request's users for the whole request, as the API
does (requests for users that a multi call is processing wait behind it):
through --delay-ms and through the `slow` fault's sleep alike. A second
request for a held user gets 429 and counts in user_overlap; one for
another user does not."""
import json
import threading
import time
import urllib.error
import urllib.request

import harness as h

APPS = {"app_alpha": "key-alpha-SECRET1"}


def post(url, user):
    body = json.dumps({"appId": "app_alpha", "clientKey": APPS["app_alpha"],
                       "apiVersion": "1.0.6", "time": time.time(),
                       "data": [{"action": "start", "userId": user}]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def overlap_case(extra, first_status):
    wd = h.workdir()
    sandbox = h.Sandbox(APPS, wd, extra=extra)
    first = {}
    t = threading.Thread(target=lambda: first.update(r=post(sandbox.url, "u1")))
    t.start()
    h.wait_for(lambda: sandbox.stats().get("inflight", 0) == 1, 10,
               "the first request to be in the sandbox")
    status, body = post(sandbox.url, "u1")
    h.check(status == 429, f"{extra}: a held user's second request got {status} {body}")
    status, _ = post(sandbox.url, "u2")
    h.check(status == first_status, f"{extra}: another user's request got {status}")
    t.join()
    h.check(first["r"][0] == first_status, f"{extra}: first request got {first['r']}")
    st = sandbox.stats()
    h.check(st["user_overlap"] == 1, f"{extra}: user_overlap {st['user_overlap']}")
    sandbox.stop()


overlap_case(["--delay-ms", "1500"], 200)
overlap_case(["--slow", "1", "--slow-ms", "1500"], 504)
print("1 passed, 0 failed")
