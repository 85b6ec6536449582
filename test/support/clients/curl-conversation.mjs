// A streamed tool conversation in which every request is made by the curl
// binary (curl -sS -N, stream: true); this script only folds the SSE and
// keeps the history, dropping reasoning_content like a forgetful agent.
// curl gets its proxy and CA from the environment alone. Prints one JSON line.
import { spawnSync } from 'node:child_process';

const key = process.env.MIMO_API_KEY;
const url = `${process.env.MIMO_BASE_URL}/chat/completions`;
const MAX_ROUNDS = 8;
const CURL_TIMEOUT_MS = 20_000;

function curl(body) {
  const args = ['-sS', '-N', '-X', 'POST', url, '-H', 'content-type: application/json', '-H', `authorization: Bearer ${key}`, '--data-binary', '@-', '-w', '\n%{http_code}'];
  const run = spawnSync('curl', args, { input: body, encoding: 'utf8', timeout: CURL_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
  if (run.status !== 0) return { status: `curl exit ${run.status}: ${run.stderr.trim()}`, text: '' };
  const cut = run.stdout.lastIndexOf('\n');
  return { status: Number(run.stdout.slice(cut + 1)), text: run.stdout.slice(0, cut) };
}

function fold(text) {
  const message = { content: '', reasoning: '', calls: [] };
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:')) continue;
    const data = line.slice(5).trim();
    if (data === '' || data === '[DONE]') continue;
    const delta = JSON.parse(data).choices?.[0]?.delta;
    if (!delta) continue;
    if (delta.reasoning_content) message.reasoning += delta.reasoning_content;
    if (delta.content) message.content += delta.content;
    for (const piece of delta.tool_calls ?? []) {
      const call = (message.calls[piece.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (piece.id) call.id = piece.id;
      if (piece.function?.name) call.function.name += piece.function.name;
      if (piece.function?.arguments) call.function.arguments += piece.function.arguments;
    }
  }
  return message;
}

const out = { statuses: [], reasoningCharsSeen: 0, finalContent: null };
const messages = [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
for (let round = 0; round < MAX_ROUNDS; round++) {
  const { status, text } = curl(JSON.stringify({ model: 'mimo-v2.6-pro', stream: true, messages }));
  out.statuses.push(status);
  if (status !== 200) break;
  const message = fold(text);
  out.reasoningCharsSeen += message.reasoning.length;
  if (message.calls.length === 0) {
    out.finalContent = message.content;
    break;
  }
  messages.push({ role: 'assistant', content: message.content, tool_calls: message.calls });
  for (const call of message.calls) messages.push({ role: 'tool', tool_call_id: call.id, content: '{"result":"晴，25°C"}' });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
