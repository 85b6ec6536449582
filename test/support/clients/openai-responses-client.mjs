// The openai npm SDK's Responses API (`client.responses.create`) configured as a user would
// for MiMo: an API key and a base URL, nothing else. It runs a streamed tool conversation and,
// like Codex with a reasoning item that has no `summary`, sends back every output item but the
// reasoning items. Prints one JSON line.
import OpenAI from 'openai';

const MAX_ROUNDS = 8;
const client = new OpenAI({ apiKey: process.env.MIMO_API_KEY, baseURL: process.env.MIMO_BASE_URL });
const tools = ['shell', 'read_file', 'apply_patch'].map((name) => ({ type: 'function', name, description: name, parameters: { type: 'object', properties: {} }, strict: false }));

const out = { rounds: 0, reasoningItemsSeen: 0, finalText: null, error: null };
const input = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: '仓库里有什么？一步一步看。' }] }];
try {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const stream = await client.responses.create({ model: 'mimo-v2.6-pro', input, tools, stream: true });
    out.rounds++;
    const items = [];
    for await (const event of stream) {
      if (event.type === 'response.output_item.done') items[event.output_index] = event.item;
    }
    out.reasoningItemsSeen += items.filter((item) => item.type === 'reasoning').length;
    const calls = items.filter((item) => item.type === 'function_call');
    for (const item of items) {
      if (item.type === 'reasoning') continue;
      const { status: _status, ...kept } = item;
      input.push(kept);
    }
    if (calls.length === 0) {
      out.finalText = items.filter((item) => item.type === 'message').flatMap((item) => item.content.map((part) => part.text)).join('');
      break;
    }
    for (const call of calls) input.push({ type: 'function_call_output', call_id: call.call_id, output: `ok: ${call.name}` });
  }
} catch (err) {
  out.error = { status: err?.status ?? null, message: String(err?.message ?? err) };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
