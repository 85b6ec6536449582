"""requests with defaults only (trust_env, verify=True): the models list, then
the test site. Proxy and CA come from the environment alone. Prints one JSON line."""
import json
import os

import requests

key = os.environ["MIMO_API_KEY"]
base = os.environ["MIMO_BASE_URL"]
site = os.environ.get("SITE_URL")

out = {"models": None, "site": None}
try:
    res = requests.get(f"{base}/models", headers={"authorization": f"Bearer {key}"}, timeout=20)
    out["models"] = {"status": res.status_code, "ids": [m["id"] for m in res.json().get("data", [])]}
except Exception as err:
    out["models"] = {"error": f"{type(err).__name__}: {err}"}
if site:
    try:
        res = requests.get(site, timeout=20)
        out["site"] = {"status": res.status_code, "body": res.text}
    except Exception as err:
        out["site"] = {"error": f"{type(err).__name__}: {err}"}
print(json.dumps(out))
