/**
 * Long agent sessions in both dialects, as large as asked (one tool result
 * carries the padding), for the large-body tests: some turns carry their own
 * reasoning (learned from the request), some were remembered (hits), the rest
 * were not (misses: placeholder or flatten). The body keeps a number that
 * JSON.parse would change, so the lossless parse is exercised too.
 */
import { encodeThinking } from '../../src/anthropic/types.js';
import { anthropicEntry, chatEntry, type Entry, type Json } from './unit.js';

export interface Session {
  body: Buffer;
  /** What was remembered for some of its forgetful turns. */
  remembered: Entry[];
}

/** `steps` tool rounds; turn i: own reasoning when i % 4 === 0, remembered when i % 4 === 1, else a miss. */
export function chatSession(steps: number, padBytes: number): Session {
  const messages: Json[] = [{ role: 'system', content: 'You are a coding agent.' }, { role: 'user', content: '把所有模块读一遍。' }];
  const turns: number[] = [];
  for (let i = 0; i < steps; i++) {
    const turn: Json = { role: 'assistant', content: i % 3 === 0 ? null : `第 ${i} 步`, tool_calls: [{ id: `call_${i}`, type: 'function', function: { name: 'read_file', arguments: JSON.stringify({ path: `src/m${i}.ts` }) } }] };
    if (i % 4 === 0) turn['reasoning_content'] = `先读 m${i}。`;
    turns.push(messages.length);
    messages.push(turn, { role: 'tool', tool_call_id: `call_${i}`, content: i === 0 ? 'x'.repeat(padBytes) : `module ${i}` });
  }
  messages.push({ role: 'user', content: '继续' });
  const remembered = turns.filter((_, i) => i % 4 === 1).map((index) => chatEntry(messages, index, `记得第 ${index} 条。`));
  return { body: withExactNumber({ model: 'mimo-v2.6-pro', stream: true, messages }), remembered };
}

/** The same in the Anthropic Messages dialect (thinking blocks, tool_use, tool_result). */
export function anthropicSession(steps: number, padBytes: number): Session {
  const messages: Json[] = [{ role: 'user', content: '把所有模块读一遍。' }];
  const turns: number[] = [];
  for (let i = 0; i < steps; i++) {
    const content: Json[] = [{ type: 'tool_use', id: `toolu_${i}`, name: 'read_file', input: { path: `src/m${i}.ts` } }];
    if (i % 3 !== 0) content.unshift({ type: 'text', text: `第 ${i} 步` });
    if (i % 4 === 0) content.unshift({ type: 'thinking', thinking: `先读 m${i}。`, signature: '' });
    turns.push(messages.length);
    messages.push({ role: 'assistant', content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_${i}`, content: i === 0 ? 'x'.repeat(padBytes) : `module ${i}` }] });
  }
  messages.push({ role: 'user', content: '继续' });
  const remembered = turns
    .filter((_, i) => i % 4 === 1)
    .map((index) => anthropicEntry(messages, index, encodeThinking([{ type: 'thinking', thinking: `记得第 ${index} 条。`, signature: '' }])));
  return { body: withExactNumber({ model: 'mimo-v2.6-pro', max_tokens: 4096, system: 'You are a coding agent.', stream: true, messages }), remembered };
}

function withExactNumber(request: Json): Buffer {
  return Buffer.from(JSON.stringify({ ...request, seed: 'SEED' }).replace('"SEED"', '12345678901234567890'), 'utf8');
}
