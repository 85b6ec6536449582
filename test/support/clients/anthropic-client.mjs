// The @anthropic-ai/sdk npm client configured as a user would for MiMo's
// Anthropic-compatible endpoint: an API key and a base URL, nothing else. It
// runs a streamed tool conversation and, like the affected agents, sends back
// the assistant's text and tool_use blocks but not its thinking blocks.
// Prints one JSON line.
import Anthropic from '@anthropic-ai/sdk';

const MAX_ROUNDS = 8;
const client = new Anthropic({ apiKey: process.env.MIMO_API_KEY, baseURL: process.env.MIMO_ANTHROPIC_BASE_URL });
const tools = ['get_weather', 'read_file', 'search_web'].map((name) => ({ name, description: name, input_schema: { type: 'object', properties: {} } }));

const out = { rounds: 0, thinkingCharsSeen: 0, finalText: null, error: null };
const messages = [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
try {
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const stream = client.messages.stream({ model: 'mimo-v2.6-pro', max_tokens: 1024, messages, tools });
    const message = await stream.finalMessage();
    out.rounds++;
    for (const block of message.content) if (block.type === 'thinking') out.thinkingCharsSeen += block.thinking.length;
    const uses = message.content.filter((b) => b.type === 'tool_use');
    if (uses.length === 0) {
      out.finalText = message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
      break;
    }
    messages.push({ role: 'assistant', content: message.content.filter((b) => b.type !== 'thinking') });
    messages.push({ role: 'user', content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id, content: '晴，25°C' })) });
  }
} catch (err) {
  out.error = { status: err?.status ?? null, message: String(err?.message ?? err) };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
