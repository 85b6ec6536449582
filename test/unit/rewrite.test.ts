import { describe, expect, it } from 'vitest';
import { body, chatEntry, entriesOf, memory, rewritten, type Entry, type Json } from '../support/unit.js';
import { chatContextForm, chatTurnIdentity } from '../../src/chat/fingerprint.js';
import { ContextWindows, CONTEXT_WINDOW, lookupKeys, type TurnIdentity } from '../../src/reasoning/match.js';
import { rewriteChatRequest } from '../../src/chat/rewrite.js';
import { thinkingDisabled, type RewritePolicy } from '../../src/reasoning/rewrite.js';


const call = (id: string, name: string, args: string) => ({ id, type: 'function', function: { name, arguments: args } });
const toolResult = (id: string, content: unknown) => ({ role: 'tool', tool_call_id: id, content });


const PLACEHOLDER: RewritePolicy = { degrade: 'placeholder' };
const FLATTEN: RewritePolicy = { degrade: 'flatten' };


const readTurn = { role: 'assistant', content: '我先看一下文件。', tool_calls: [call('call_read_1', 'read_file', '{"path":"src/主.ts"}')] };
const grepTurn = { role: 'assistant', content: null, tool_calls: [call('call_grep_2', 'grep', '{"pattern":"loadConfig"}'), call('call_grep_3', 'grep', '{"pattern":"env"}')] };

function conversation(read: Json = readTurn, grep: Json = grepTurn): Json {
  return {
    model: 'mimo-v2.6-pro',
    stream: true,
    messages: [
      { role: 'system', content: 'You are a coding agent.' },
      { role: 'user', content: '配置是怎么加载的？' },
      read,
      toolResult('call_read_1', 'export function loadConfig() {}'),
      grep,
      toolResult('call_grep_2', [{ type: 'text', text: 'src/a.ts:3: loadConfig()' }]),
      toolResult('call_grep_3', 'src/env.ts:1: process.env'),
      { role: 'user', content: '继续' },
    ],
    tools: [{ type: 'function', function: { name: 'read_file' } }],
  };
}

/** Every key a rewrite may ask for the turn at `index` of `messages`, in order. */
function keysAsked(messages: readonly Json[], index: number): string[] {
  const identity = chatTurnIdentity(messages[index] as Json) as TurnIdentity;
  return [...lookupKeys(identity, () => new ContextWindows(messages, chatContextForm).before(index))];
}

/** What the conversation of `conversation()` learned for its two tool turns. */
const remembered = (read = '要先读入口文件。', grep = '再搜调用点。'): Entry[] => [
  chatEntry(conversation()['messages'], 2, read),
  chatEntry(conversation()['messages'], 4, grep),
];

/** A longer agent session: a user task, then `steps` read exchanges, then the turn under test and its result. */
function session(steps: number, turn: Json): Json[] {
  const messages: Json[] = [{ role: 'system', content: 'You are a coding agent.' }, { role: 'user', content: '把所有模块读一遍。' }];
  for (let i = 0; i < steps; i++) {
    messages.push({ role: 'assistant', content: null, tool_calls: [call(`call_s${i}`, 'read_file', JSON.stringify({ path: `src/m${i}.ts` }))] }, toolResult(`call_s${i}`, `module ${i}`));
  }
  messages.push(turn, toolResult(String(turn['tool_calls']?.[0]?.['id']), 'done'), { role: 'user', content: '继续' });
  return messages;
}

describe('rewriting a chat request', () => {
  it('injects remembered reasoning for the same turn in the same conversation, found by its ids first', () => {
    const cache = memory(remembered());
    const sent = conversation();
    const outcome = rewriteChatRequest(body(sent), cache.lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    expect(messages[2]?.['reasoning_content']).toBe('要先读入口文件。');
    expect(messages[4]?.['reasoning_content']).toBe('再搜调用点。');
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 2, placeholders: 0, flattened: 0, missing: 0 });
    const asked = [keysAsked(sent['messages'], 2), keysAsked(sent['messages'], 4)];
    for (const keys of asked) expect(keys.map((key) => key.slice(0, 2))).toEqual(['t:', 'c:']);
    // Found by the ids: the context key was never made or asked for.
    expect(cache.calls).toEqual(asked.map((keys) => keys.slice(0, 1)));
  });

  it('injects by the context when the client rewrote the ids and re-serialised the arguments', () => {
    const cache = memory(remembered());
    const renamed = { role: 'assistant', content: ' 我先看一下文件。', tool_calls: [call('toolu_01', 'read_file', '{ "path" : "src/主.ts" }')] };
    const input = conversation(renamed);
    input['messages'][3] = toolResult('toolu_01', 'export function loadConfig() {}');
    const { messages } = rewritten(rewriteChatRequest(body(input), cache.lookup, PLACEHOLDER));
    expect(messages[2]?.['reasoning_content']).toBe('要先读入口文件。');
    // The ids key is another one (other ids); the context key is the one learned.
    const [idKey, contextKey] = keysAsked(input['messages'], 2);
    expect(cache.calls[0]).toEqual([idKey, contextKey]);
    expect(remembered()[0]?.keys).not.toContain(idKey);
    expect(remembered()[0]?.keys).toContain(contextKey);
  });

  it('misses when the ids match but the turn does not: other arguments, another tool or other text', () => {
    const variants = [
      { ...readTurn, tool_calls: [call('call_read_1', 'read_file', '{"path":"src/副.ts"}')] },
      { ...readTurn, tool_calls: [call('call_read_1', 'read_files', '{"path":"src/主.ts"}')] },
      { ...readTurn, content: '我先看一下另一个文件。' },
    ];
    for (const variant of variants) {
      const outcome = rewriteChatRequest(body(conversation(variant)), memory(remembered()).lookup, PLACEHOLDER);
      const { messages } = rewritten(outcome);
      expect(messages[2]?.['reasoning_content'], JSON.stringify(variant)).not.toBe('要先读入口文件。');
      expect(outcome.kind === 'rewritten' && outcome.changes, JSON.stringify(variant)).toEqual({ injected: 1, placeholders: 1, flattened: 0, missing: 1 });
    }
  });

  it('misses the same turn in another conversation', () => {
    const cache = memory(remembered('另一段对话的推理。'));
    const other = conversation();
    other['messages'][1] = { role: 'user', content: '日志是怎么写的？' };
    // The client numbers ids per conversation: the same call, under other ids.
    other['messages'][2] = { ...readTurn, tool_calls: [call('call_0', 'read_file', '{"path":"src/主.ts"}')] };
    other['messages'][3] = toolResult('call_0', 'export function loadConfig() {}');
    const outcome = rewriteChatRequest(body(other), cache.lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    expect(JSON.stringify(messages)).not.toContain('另一段对话的推理。');
    expect(outcome.kind === 'rewritten' && outcome.changes.placeholders).toBeGreaterThanOrEqual(1);
  });

  it('finds a turn by its upstream ids even when the history before it changed', () => {
    const cache = memory(remembered());
    const pruned = conversation();
    pruned['messages'][1] = { role: 'user', content: '（之前的对话已压缩）' };
    pruned['messages'][3] = toolResult('call_read_1', '[output pruned]');
    const { messages } = rewritten(rewriteChatRequest(body(pruned), cache.lookup, PLACEHOLDER));
    expect(messages[2]?.['reasoning_content']).toBe('要先读入口文件。');
    expect(messages[4]?.['reasoning_content']).toBe('再搜调用点。');
  });

  it('misses a turn learned from a request (ids not the upstream\'s) once the history before it changed', () => {
    const fromRequest = [chatEntry(conversation()['messages'], 2, '要先读入口文件。', false)];
    const pruned = conversation();
    pruned['messages'][1] = { role: 'user', content: '（之前的对话已压缩）' };
    const outcome = rewriteChatRequest(body(pruned), memory(fromRequest).lookup, PLACEHOLDER);
    expect(outcome.kind === 'rewritten' && outcome.changes.injected).toBe(0);
    expect(fromRequest[0]?.keys.every((key) => key.startsWith('c:'))).toBe(true);
  });

  it(`still finds a turn when the client trims old turns outside the ${CONTEXT_WINDOW}-message window, but not inside it`, () => {
    const turn = { role: 'assistant', content: '再读主模块。', tool_calls: [call('call_main', 'read_file', '{"path":"src/主.ts"}')] };
    const full = session(6, turn);
    const index = full.indexOf(turn);
    // The window is the messages from `oldest` to the turn; the first exchanges are older.
    const oldest = index - CONTEXT_WINDOW;
    expect(oldest).toBeGreaterThan(2);
    // Learned from a request: the context key alone, so only the context can find it.
    const cache = memory([chatEntry(full, index, '主模块最后读。', false)]);
    // Drops the exchanges before the window; the system prompt and the task stay.
    const trimmed = [...full.slice(0, 2), ...full.slice(oldest)];
    const { messages } = rewritten(rewriteChatRequest(body({ messages: trimmed }), cache.lookup, PLACEHOLDER));
    expect(messages[trimmed.indexOf(turn)]?.['reasoning_content']).toBe('主模块最后读。');
    // Dropping the exchange just before the turn changes its window: a miss.
    const inside = [...full.slice(0, index - 2), ...full.slice(index)];
    const outcome = rewriteChatRequest(body({ messages: inside }), cache.lookup, PLACEHOLDER);
    expect(outcome.kind === 'rewritten' && outcome.changes.injected).toBe(0);
  });

  it('still finds a turn when the client rewrites the system prompt or adds a developer message', () => {
    const cache = memory([chatEntry(conversation()['messages'], 2, '要先读入口文件。', false)]);
    const rewrittenPrompt = conversation();
    rewrittenPrompt['messages'][0] = { role: 'system', content: 'You are a coding agent. Today is Tuesday.' };
    rewrittenPrompt['messages'].splice(1, 0, { role: 'developer', content: 'Prefer small diffs.' });
    const { messages } = rewritten(rewriteChatRequest(body(rewrittenPrompt), cache.lookup, PLACEHOLDER));
    expect(messages[3]?.['reasoning_content']).toBe('要先读入口文件。');
  });

  it('leaves the client own reasoning untouched and reports it as learned, in its context and without upstream ids', () => {
    const withOwn = { ...readTurn, reasoning_content: '客户端自己带回的思考。' };
    const cache = memory(remembered('缓存里的另一段。'));
    const sent = conversation(withOwn);
    const outcome = rewriteChatRequest(body(sent), cache.lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    expect(messages[2]?.['reasoning_content']).toBe('客户端自己带回的思考。');
    const context = new ContextWindows(sent['messages'], chatContextForm).before(2);
    expect(outcome.kind === 'rewritten' && outcome.learned).toEqual([{ identity: chatTurnIdentity(readTurn), reasoning: '客户端自己带回的思考。', context, upstreamIds: false }]);
    // What is learned finds this reasoning for the same turn sent back later without it.
    const later = memory(entriesOf(outcome.kind === 'rewritten' ? outcome.learned : []));
    const { messages: again } = rewritten(rewriteChatRequest(body(conversation()), later.lookup, PLACEHOLDER));
    expect(again[2]?.['reasoning_content']).toBe('客户端自己带回的思考。');
  });

  it('reports the context of the turn that answers the request, as the next request will see that turn', () => {
    const sent = conversation();
    const outcome = rewriteChatRequest(body(sent), memory().lookup, PLACEHOLDER);
    const answer = { role: 'assistant', content: '配置在 loadConfig 里加载。' };
    const next = [...sent['messages'], answer, { role: 'user', content: '谢谢' }];
    expect(outcome.kind !== 'skipped' && outcome.context).toBe(new ContextWindows(next, chatContextForm).before(sent['messages'].length));
    const unchanged = rewriteChatRequest(body({ messages: next.slice(0, 2) }), memory().lookup, PLACEHOLDER);
    expect(unchanged.kind === 'unchanged' && unchanged.context).toBe(new ContextWindows(next, chatContextForm).before(2));
  });

  it("treats '', null and whitespace reasoning as absent", () => {
    for (const value of ['', null, ' \n']) {
      const cache = memory(remembered('要先读入口文件。', '再搜。'));
      const outcome = rewriteChatRequest(body(conversation({ ...readTurn, reasoning_content: value })), cache.lookup, PLACEHOLDER);
      const { messages } = rewritten(outcome);
      expect(messages[2]?.['reasoning_content'], JSON.stringify(value)).toBe('要先读入口文件。');
      expect(outcome.kind === 'rewritten' && outcome.learned).toEqual([]);
    }
  });

  it('gives a non-empty placeholder specific to each turn and keeps tool calls and results', () => {
    const sent = conversation();
    const outcome = rewriteChatRequest(body(sent), memory().lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    const first = messages[2]?.['reasoning_content'];
    const second = messages[4]?.['reasoning_content'];
    expect(typeof first === 'string' && first.trim().length > 0).toBe(true);
    expect(typeof second === 'string' && second.trim().length > 0).toBe(true);
    expect(first).not.toBe(second);
    expect(first).toContain('read_file');
    expect(second).toContain('grep');
    // Everything but the reasoning is as it was.
    const sentMessages = sent['messages'] as Json[];
    expect(messages.map(({ reasoning_content: _, ...rest }) => rest)).toEqual(sentMessages);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 0, placeholders: 2, flattened: 0, missing: 2 });
  });

  it('gives different placeholders to two turns that called the same tool', () => {
    const again = { role: 'assistant', content: null, tool_calls: [call('call_read_9', 'read_file', '{"path":"b"}')] };
    const request = { messages: [readTurn, toolResult('call_read_1', 'a'), again, toolResult('call_read_9', 'b')] };
    const { messages } = rewritten(rewriteChatRequest(body(request), memory().lookup, PLACEHOLDER));
    expect(messages[0]?.['reasoning_content']).not.toBe(messages[2]?.['reasoning_content']);
  });

  it('flattens a call with an empty id together with its result (no orphan tool message)', () => {
    const request = { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: '', tool_calls: [call('', 'read_file', '{}')] }, toolResult('', 'text'), { role: 'user', content: 'next' }] };
    const { messages } = rewritten(rewriteChatRequest(body(request), memory().lookup, FLATTEN));
    expect(messages.some((m) => m['role'] === 'tool')).toBe(false);
    // The result it took away is in the text: flattening loses nothing.
    expect(String(messages[1]?.['content'])).toContain('Result:\ntext');
  });

  it('flattens a tool exchange into text with no orphan tool message and no call markers', () => {
    const cache = memory([remembered()[1] as Entry]);
    const outcome = rewriteChatRequest(body(conversation()), cache.lookup, FLATTEN);
    const { messages } = rewritten(outcome);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 1, placeholders: 0, flattened: 1, missing: 1 });
    // The read turn keeps its text only; its result became a user message; the grep turn is intact.
    expect(messages[2]).toEqual({ role: 'assistant', content: '我先看一下文件。' });
    expect(messages[3]?.['role']).toBe('user');
    const text = String(messages[3]?.['content']);
    expect(text).toContain('read_file');
    expect(text).toContain('{"path":"src/主.ts"}');
    expect(text).toContain('export function loadConfig() {}');
    expect(messages[4]?.['tool_calls']).toEqual(grepTurn.tool_calls);
    expect(messages.slice(5, 7).map((m) => m['tool_call_id'])).toEqual(['call_grep_2', 'call_grep_3']);
    assertNoOrphans(messages);
    expect(JSON.stringify(messages)).not.toContain('[Called');
  });

  it('drops an assistant message without text when flattening and states every call and result', () => {
    const { messages } = rewritten(rewriteChatRequest(body(conversation()), memory().lookup, FLATTEN));
    expect(messages.map((m) => m['role'])).toEqual(['system', 'user', 'assistant', 'user', 'user', 'user']);
    const grepText = String(messages[4]?.['content']);
    expect(grepText).toContain('{"pattern":"loadConfig"}');
    expect(grepText).toContain('src/a.ts:3: loadConfig()');
    expect(grepText).toContain('{"pattern":"env"}');
    expect(grepText).toContain('src/env.ts:1: process.env');
    assertNoOrphans(messages);
    for (const message of messages) if (message['role'] === 'assistant') expect(message['tool_calls']).toBeUndefined();
  });

  it('says so when a flattened call has no result', () => {
    const request = { messages: [{ role: 'user', content: 'go' }, { role: 'assistant', content: '', tool_calls: [call('c1', 'ls', '{}')] }] };
    const { messages } = rewritten(rewriteChatRequest(body(request), memory().lookup, FLATTEN));
    expect(messages).toHaveLength(2);
    expect(String(messages[1]?.['content'])).toMatch(/ls[\s\S]*No result/);
  });

  it('never degrades when thinking is disabled, but still injects', () => {
    const disabled = { ...conversation(), thinking: { type: 'disabled' } };
    const original = body(disabled);
    for (const policy of [PLACEHOLDER, FLATTEN, { degrade: 'flatten', plainTurns: true } as const]) {
      const outcome = rewriteChatRequest(original, memory().lookup, policy);
      expect(outcome.kind).toBe('unchanged');
      expect(outcome.kind === 'unchanged' && outcome.body).toBe(original);
      expect(outcome.kind === 'unchanged' && outcome.changes.missing).toBe(2);
    }
    const cache = memory([chatEntry(conversation()['messages'], 2, '要先读。')]);
    const { messages } = rewritten(rewriteChatRequest(original, cache.lookup, FLATTEN));
    expect(messages[2]?.['reasoning_content']).toBe('要先读。');
    expect(messages[4]?.['tool_calls']).toEqual(grepTurn.tool_calls);
    expect(messages[4]?.['reasoning_content']).toBeUndefined();
  });

  it('returns the very same Buffer when nothing changed', () => {
    const request = { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: '你好' }, { role: 'user', content: '?' }] };
    // Odd spacing: a re-serialised copy would differ.
    const original = Buffer.from(JSON.stringify(request, null, 3), 'utf8');
    const outcome = rewriteChatRequest(original, memory().lookup, PLACEHOLDER);
    expect(outcome.kind).toBe('unchanged');
    expect(outcome.kind === 'unchanged' && outcome.body).toBe(original);
  });

  it('skips invalid JSON, invalid UTF-8, non-objects and bodies without messages', () => {
    const lookup = memory().lookup;
    expect(rewriteChatRequest(Buffer.from('{"messages": ['), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'invalid-json' });
    expect(rewriteChatRequest(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'invalid-json' });
    expect(rewriteChatRequest(Buffer.from('[1,2]'), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'not-an-object' });
    expect(rewriteChatRequest(Buffer.from('null'), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'not-an-object' });
    expect(rewriteChatRequest(Buffer.from('{"messages": {}}'), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'no-messages' });
    expect(rewriteChatRequest(Buffer.from('{"prompt": "x"}'), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'no-messages' });
  });

  it('gives plain turns a placeholder only with plainTurns', () => {
    const plainA = { role: 'assistant', content: '第一轮回答。' };
    const plainB = { role: 'assistant', content: [{ type: 'text', text: '第二轮回答。' }] };
    const request = { messages: [{ role: 'user', content: 'a' }, plainA, { role: 'user', content: 'b' }, plainB, { role: 'user', content: 'c' }] };
    const without = rewriteChatRequest(body(request), memory().lookup, PLACEHOLDER);
    expect(without.kind).toBe('unchanged');
    expect(without.kind === 'unchanged' && without.changes.missing).toBe(0);
    const outcome = rewriteChatRequest(body(request), memory().lookup, { degrade: 'placeholder', plainTurns: true });
    const { messages } = rewritten(outcome);
    const a = messages[1]?.['reasoning_content'];
    const b = messages[3]?.['reasoning_content'];
    expect(typeof a === 'string' && a.trim() !== '' && typeof b === 'string' && b.trim() !== '').toBe(true);
    expect(a).not.toBe(b);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 0, placeholders: 2, flattened: 0, missing: 2 });
  });

  it('with flatten and plainTurns gives the kept text of a flattened turn a placeholder too', () => {
    const { messages } = rewritten(rewriteChatRequest(body(conversation()), memory().lookup, { degrade: 'flatten', plainTurns: true }));
    expect(messages[2]?.['role']).toBe('assistant');
    expect(String(messages[2]?.['reasoning_content']).trim()).not.toBe('');
    expect(messages[2]?.['tool_calls']).toBeUndefined();
  });

  it("looks plain turns up only with plainTurns, and a short reply never takes another conversation's reasoning", () => {
    const plain = { role: 'assistant', content: '好的' };
    const asked = [{ role: 'user', content: '?' }, plain, { role: 'user', content: 'next' }];
    const cache = memory([chatEntry(asked, 1, '这段对话的推理。')]);
    const request = body({ messages: asked });
    const outcome = rewriteChatRequest(request, cache.lookup, PLACEHOLDER);
    expect(outcome.kind).toBe('unchanged');
    expect(cache.calls).toEqual([]);
    const { messages } = rewritten(rewriteChatRequest(request, cache.lookup, { degrade: 'placeholder', plainTurns: true }));
    expect(messages[1]?.['reasoning_content']).toBe('这段对话的推理。');
    expect(cache.calls[0]?.map((key) => key.slice(0, 2))).toEqual(['c:']);
    // The same short reply in another conversation gets a placeholder, not this reasoning.
    const other = body({ messages: [{ role: 'user', content: '可以开始了吗？' }, plain, { role: 'user', content: 'next' }] });
    const { messages: out } = rewritten(rewriteChatRequest(other, cache.lookup, { degrade: 'placeholder', plainTurns: true }));
    expect(out[1]?.['reasoning_content']).not.toBe('这段对话的推理。');
  });

  it('keeps other fields and their order', () => {
    const request = { model: 'mimo-v2.6-pro', messages: [{ role: 'user', content: 'x' }, { role: 'assistant', name: 'bot', content: null, tool_calls: [call('c', 'f', '{}')], extra: { a: 1 } }], temperature: 0.2, stream_options: { include_usage: true } };
    const { request: out, messages } = rewritten(rewriteChatRequest(body(request), memory().lookup, PLACEHOLDER));
    expect(Object.keys(out)).toEqual(['model', 'messages', 'temperature', 'stream_options']);
    expect(Object.keys(messages[1] ?? {})).toEqual(['role', 'name', 'content', 'tool_calls', 'extra', 'reasoning_content']);
    expect(out['stream_options']).toEqual({ include_usage: true });
  });

  it('treats a lookup that throws as a miss', () => {
    const outcome = rewriteChatRequest(body(conversation()), () => {
      throw new Error('cache broke');
    }, PLACEHOLDER);
    expect(outcome.kind === 'rewritten' && outcome.changes.placeholders).toBe(2);
  });

  it('never throws on random bytes or odd shapes', () => {
    let seed = 12345;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    for (let run = 0; run < 300; run++) {
      const bytes = Buffer.alloc(Math.floor(random() * 200));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      expect(rewriteChatRequest(bytes, memory().lookup, FLATTEN).kind).toBe('skipped');
    }
    const odd: unknown[] = [
      { messages: [null, 1, 'x', [], { role: 'assistant' }] },
      { messages: [{ role: 'assistant', tool_calls: 'x', content: 5 }] },
      { messages: [{ role: 'assistant', tool_calls: [null, 7, { function: null }, { id: 3, function: { name: 9, arguments: { a: 1 } } }] }, { role: 'tool', tool_call_id: null, content: 4 }] },
      { messages: [{ role: 'assistant', tool_calls: [call('a', '', '')], reasoning_content: 17 }, { role: 'tool', tool_call_id: 'a', content: { weird: true } }, { role: 'tool', tool_call_id: 'a', content: [1, null, { type: 'image_url' }] }] },
      { messages: [], thinking: 'disabled' },
      { messages: [{ role: 'assistant', content: [null, { text: 5 }], tool_calls: [] }] },
    ];
    for (const shape of odd) {
      for (const policy of [PLACEHOLDER, FLATTEN, { degrade: 'flatten', plainTurns: true } as const, { degrade: 'placeholder', plainTurns: true } as const]) {
        const outcome = rewriteChatRequest(body(shape), memory().lookup, policy);
        expect(outcome.kind, JSON.stringify(shape)).not.toBe('skipped');
        if (outcome.kind === 'rewritten') assertNoOrphans(JSON.parse(outcome.body.toString('utf8')).messages as Json[]);
      }
    }
  });

  it('rewrites a 2 MB body of 500 messages correctly (time printed, not asserted)', () => {
    const messages: Json[] = [{ role: 'system', content: 'x'.repeat(1000) }];
    const learnedAt: [number, string][] = [];
    const filler = '这是一段很长的工具输出。'.repeat(380);
    for (let turn = 0; turn < 166; turn++) {
      const assistant = { role: 'assistant', content: turn % 3 === 0 ? `第 ${turn} 步。` : null, tool_calls: [call(`call_${turn}`, 'read_file', JSON.stringify({ path: `src/file_${turn}.ts`, limit: 400 }))] };
      if (turn % 2 === 0) learnedAt.push([messages.length, `第 ${turn} 步的思考。`.repeat(20)]);
      messages.push(assistant, toolResult(`call_${turn}`, filler), { role: 'user', content: `continue ${turn}` });
    }
    const request = { model: 'mimo-v2.6-pro', messages, stream: true };
    const original = body(request);
    expect(original.length).toBeGreaterThan(2_000_000);
    expect(messages.length).toBeGreaterThanOrEqual(499);
    const cache = memory(learnedAt.map(([index, reasoning]) => chatEntry(messages, index, reasoning)));
    const start = performance.now();
    const outcome = rewriteChatRequest(original, cache.lookup, PLACEHOLDER);
    const ms = performance.now() - start;
    console.log(`rewrite: ${(original.length / 1e6).toFixed(2)} MB, ${messages.length} messages in ${ms.toFixed(1)} ms`);
    const out = rewritten(outcome);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 83, placeholders: 83, flattened: 0, missing: 83 });
    expect(out.messages[1]?.['reasoning_content']).toBe('第 0 步的思考。'.repeat(20));
    expect(String(out.messages[4]?.['reasoning_content'])).toContain('step 2');
  });
});

describe('thinkingDisabled', () => {
  it('is true only for thinking.type disabled', () => {
    expect(thinkingDisabled({ thinking: { type: 'disabled' } })).toBe(true);
    for (const other of [{}, { thinking: { type: 'enabled' } }, { thinking: 'disabled' }, { thinking: null }, { enable_thinking: false }, { reasoning_effort: 'none' }, null, 3]) {
      expect(thinkingDisabled(other), JSON.stringify(other)).toBe(false);
    }
  });
});

/** Every tool message points at a tool call of an assistant message before it. */
function assertNoOrphans(messages: readonly Json[]): void {
  const ids = new Set<unknown>();
  for (const message of messages) {
    if (message === null || typeof message !== 'object') continue;
    if (message['role'] === 'assistant' && Array.isArray(message['tool_calls'])) {
      for (const c of message['tool_calls'] as Json[]) if (c && typeof c === 'object') ids.add(c['id']);
    }
    if (message['role'] === 'tool' && typeof message['tool_call_id'] === 'string') expect(ids.has(message['tool_call_id'])).toBe(true);
  }
}
