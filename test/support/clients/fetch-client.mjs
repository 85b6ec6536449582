// A client that uses Node's built-in fetch and nothing else: no agent, no CA
// option, no proxy option. Whatever reaches MiMo does so through the
// environment it was started with. `fetch-client.mjs site` fetches only
// SITE_URL. Prints one JSON line.
const key = process.env.MIMO_API_KEY;
const base = process.env.MIMO_BASE_URL;
const site = process.env.SITE_URL;
const MAX_ROUNDS = 8;
const siteOnly = process.argv[2] === 'site';

function failure(err) {
  return { error: String(err?.cause?.code ?? err?.code ?? err?.message ?? err) };
}

const out = { models: null, statuses: [], finalContent: null, site: null };
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

if (!siteOnly) try {
  const res = await fetch(`${base}/models`, { headers });
  out.models = { status: res.status, ids: (await res.json()).data?.map((m) => m.id) ?? [] };
} catch (err) {
  out.models = failure(err);
}

// A forgetful agent: it keeps tool_calls and drops reasoning_content.
const history = [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
if (!siteOnly) try {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const res = await fetch(`${base}/chat/completions`, { method: 'POST', headers, body: JSON.stringify({ model: 'mimo-v2.6-pro', messages: history }) });
    out.statuses.push(res.status);
    if (res.status !== 200) break;
    const message = (await res.json()).choices[0].message;
    const calls = message.tool_calls ?? [];
    history.push({ role: 'assistant', content: message.content ?? '', tool_calls: calls.length > 0 ? calls : undefined });
    if (calls.length === 0) {
      out.finalContent = message.content;
      break;
    }
    for (const call of calls) history.push({ role: 'tool', tool_call_id: call.id, content: '{"result":"晴，25°C"}' });
  }
} catch (err) {
  out.statuses.push(failure(err));
}

if (site) {
  try {
    const res = await fetch(site);
    out.site = { status: res.status, body: await res.text() };
  } catch (err) {
    out.site = failure(err);
  }
}

process.stdout.write(`${JSON.stringify(out)}\n`);
