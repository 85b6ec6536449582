// The openai npm SDK configured as a user would for MiMo: an API key and a
// base URL, nothing else. It runs a streamed tool conversation and keeps the
// assistant messages the way the SDK's types describe them, which have no
// reasoning_content: the real-world way the field gets lost. Prints one JSON line.
import OpenAI from 'openai';

const MAX_ROUNDS = 8;
const client = new OpenAI({ apiKey: process.env.MIMO_API_KEY, baseURL: process.env.MIMO_BASE_URL });
const tools = ['get_weather', 'read_file', 'search_web'].map((name) => ({
  type: 'function',
  function: { name, description: name, parameters: { type: 'object', properties: {} } },
}));

const out = { rounds: 0, reasoningCharsSeen: 0, finalContent: null, error: null };
const messages = [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
try {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const stream = await client.chat.completions.create({ model: 'mimo-v2.6-pro', messages, tools, stream: true });
    out.rounds++;
    let content = '';
    const calls = [];
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta;
      if (!delta) continue;
      // Present on the wire (the SDK passes unknown fields through), absent from its types.
      if (typeof delta.reasoning_content === 'string') out.reasoningCharsSeen += delta.reasoning_content.length;
      if (delta.content) content += delta.content;
      for (const piece of delta.tool_calls ?? []) {
        const call = (calls[piece.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (piece.id) call.id = piece.id;
        if (piece.function?.name) call.function.name += piece.function.name;
        if (piece.function?.arguments) call.function.arguments += piece.function.arguments;
      }
    }
    if (calls.length === 0) {
      out.finalContent = content;
      break;
    }
    messages.push({ role: 'assistant', content, tool_calls: calls });
    for (const call of calls) messages.push({ role: 'tool', tool_call_id: call.id, content: '{"result":"晴，25°C"}' });
  }
} catch (err) {
  out.error = { status: err?.status ?? null, message: String(err?.message ?? err) };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
