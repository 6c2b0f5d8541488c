"""The sandbox holds a request's users for the whole request, as the API
does (requests for users that a multi call is processing wait behind it):
through --delay-ms and through the `slow` fault's sleep alike. A second
request for a held user gets 429 and counts in user_overlap; one for
another user does not. And the request's form outside the limits is
checked too, so a test can catch the bridge breaking it: the query's
action=multi, a JSON Content-Type, apiVersion 1.0.6 and a time of sending
(set again on a retry); each wrong one is refused and counted in
rule_violations."""
import json
import threading
import time
import urllib.error
import urllib.request

import harness as h

APPS = {"app_alpha": "key-alpha-SECRET1"}


def post(url, user, version="1.0.6", sent=None, ctype="application/json"):
    body = json.dumps({"appId": "app_alpha", "clientKey": APPS["app_alpha"],
                       "apiVersion": version, "time": time.time() if sent is None else sent,
                       "data": [{"action": "start", "userId": user}]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": ctype})
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

sandbox = h.Sandbox(APPS, h.workdir(), name="form")
wrong = [(post(sandbox.url.replace("action=multi", "action=track"), "u"), 400, "query"),
         (post(sandbox.url, "u", ctype="text/plain"), 415, "Content-Type"),
         (post(sandbox.url, "u", version="0.0"), 400, "apiVersion"),
         (post(sandbox.url, "u", sent=0), 400, "time")]
for (status, _), want, what in wrong:
    h.check(status == want, f"a request with the wrong {what} got {status}, want {want}")
h.check(sandbox.stats()["rule_violations"] == 4, f"rule_violations {sandbox.stats()}")
h.check(post(sandbox.url, "u")[0] == 200, "a right request refused")
sandbox.stop()
print("1 passed, 0 failed")
