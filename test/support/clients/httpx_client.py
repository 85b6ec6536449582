"""httpx as openai-python and AutoGen use it: defaults only (trust_env, verify=True).
A non-streamed forgetful tool conversation of ROUNDS requests, then the test site.
Proxy and CA come from the environment alone. Prints one JSON line."""
import json
import os

import httpx

key = os.environ["MIMO_API_KEY"]
base = os.environ["MIMO_BASE_URL"]
site = os.environ.get("SITE_URL")
rounds = int(os.environ.get("ROUNDS", "2"))

out = {"statuses": [], "site": None}
history = [{"role": "user", "content": "北京今天天气怎么样？请一步一步查。"}]
with httpx.Client(timeout=20.0) as client:
    try:
        for _ in range(rounds):
            res = client.post(f"{base}/chat/completions", headers={"authorization": f"Bearer {key}"},
                              json={"model": "mimo-v2.6-pro", "messages": history})
            out["statuses"].append(res.status_code)
            if res.status_code != 200:
                break
            message = res.json()["choices"][0]["message"]
            calls = message.get("tool_calls") or []
            # Forgetful: reasoning_content is not kept.
            history.append({"role": "assistant", "content": message.get("content") or "", "tool_calls": calls or None})
            if not calls:
                break
            for call in calls:
                history.append({"role": "tool", "tool_call_id": call["id"], "content": '{"result":"晴"}'})
    except Exception as err:  # reported, so the test shows what failed
        out["statuses"].append(f"{type(err).__name__}: {err}")
    if site:
        try:
            res = client.get(site)
            out["site"] = {"status": res.status_code, "body": res.text}
        except Exception as err:
            out["site"] = {"error": f"{type(err).__name__}: {err}"}
print(json.dumps(out))
