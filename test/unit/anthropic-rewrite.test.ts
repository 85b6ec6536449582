import { describe, expect, it } from 'vitest';
import { anthropicEntry, body, entriesOf, memory, rewritten, type Entry, type Json } from '../support/unit.js';
import { anthropicContextForm, anthropicTurnIdentity } from '../../src/anthropic/fingerprint.js';
import { ContextWindows, CONTEXT_WINDOW, lookupKeys, type TurnIdentity } from '../../src/reasoning/match.js';
import { rewriteMessagesRequest } from '../../src/anthropic/rewrite.js';
import { encodeThinking, type ThinkingBlock } from '../../src/anthropic/types.js';
import type { RewritePolicy } from '../../src/reasoning/rewrite.js';



const PLACEHOLDER: RewritePolicy = { degrade: 'placeholder' };
const FLATTEN: RewritePolicy = { degrade: 'flatten' };


const thinking = (text: string, signature = '') => ({ type: 'thinking' as const, thinking: text, signature });
const use = (id: string, name: string, input: unknown) => ({ type: 'tool_use', id, name, input });
const result = (id: string, content: unknown, extra: Json = {}) => ({ type: 'tool_result', tool_use_id: id, content, ...extra });

const READ_THINKING = thinking('要先读入口文件 src/主.ts。');
const GREP_THINKING = thinking('再用 grep 搜调用点。', 'EqQBCkgIAxABGAIiQL3/签名+Ab==');

const readTurn = { role: 'assistant', content: [{ type: 'text', text: '我先看一下文件。' }, use('toolu_read_1', 'read_file', { path: 'src/主.ts' })] };
const grepTurn = { role: 'assistant', content: [use('toolu_grep_2', 'grep', { pattern: 'loadConfig' }), use('toolu_grep_3', 'grep', { pattern: 'env' })] };

function conversation(read: Json = readTurn, grep: Json = grepTurn): Json {
  return {
    model: 'mimo-v2.6-pro',
    max_tokens: 4096,
    system: 'You are a coding agent.',
    stream: true,
    messages: [
      { role: 'user', content: '配置是怎么加载的？' },
      read,
      { role: 'user', content: [result('toolu_read_1', 'export function loadConfig() {}')] },
      grep,
      { role: 'user', content: [result('toolu_grep_2', [{ type: 'text', text: 'src/a.ts:3: loadConfig()' }]), result('toolu_grep_3', 'src/env.ts:1: process.env', { is_error: true }), { type: 'text', text: '继续' }] },
    ],
    tools: [{ name: 'read_file', input_schema: { type: 'object' } }],
  };
}

/** What the conversation of `conversation()` learned from the upstream for its two tool turns. */
const remembered = (read: ThinkingBlock[] = [READ_THINKING]): Entry[] => [
  anthropicEntry(conversation()['messages'], 1, encodeThinking(read)),
  anthropicEntry(conversation()['messages'], 3, encodeThinking([GREP_THINKING])),
];

/** Every key a rewrite may ask for the turn at `index` of `messages`, in order. */
function keysAsked(messages: readonly Json[], index: number): string[] {
  const identity = anthropicTurnIdentity(messages[index]) as TurnIdentity;
  return [...lookupKeys(identity, () => new ContextWindows(messages, anthropicContextForm).before(index))];
}

/** Every tool_result points at a tool_use of an assistant turn before it, and no turn is left empty. */
function assertNoOrphans(messages: readonly Json[]): void {
  const ids = new Set<unknown>();
  for (const message of messages) {
    if (message === null || typeof message !== 'object' || !Array.isArray(message['content'])) continue;
    expect(message['content'].length, JSON.stringify(message)).toBeGreaterThan(0);
    for (const block of message['content'] as Json[]) {
      if (block?.['type'] === 'tool_use' && message['role'] === 'assistant') ids.add(block['id']);
      // A result with no id at all was an orphan as the client sent it: not ours to judge.
      if (block?.['type'] === 'tool_result' && block['tool_use_id'] !== undefined) expect(ids.has(block['tool_use_id']), JSON.stringify(block)).toBe(true);
    }
  }
}

describe('rewriting an Anthropic Messages request', () => {
  it('puts remembered thinking back as the first block, signature included, for the same turn found by its ids', () => {
    const cache = memory(remembered());
    const sent = conversation();
    const outcome = rewriteMessagesRequest(body(sent), cache.lookup, PLACEHOLDER);
    const { request, messages } = rewritten(outcome);
    expect(messages[1]?.['content']).toEqual([READ_THINKING, ...readTurn.content]);
    expect(messages[3]?.['content']).toEqual([GREP_THINKING, ...grepTurn.content]);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 2, placeholders: 0, flattened: 0, missing: 0 });
    // Found by the ids: no context key was made or asked for; everything else is as sent.
    expect(cache.calls).toEqual([keysAsked(sent['messages'], 1).slice(0, 1), keysAsked(sent['messages'], 3).slice(0, 1)]);
    expect(cache.calls.flat().every((key) => key.startsWith('t:'))).toBe(true);
    expect({ ...request, messages: undefined }).toEqual({ ...sent, messages: undefined });
    expect(Object.keys(request)).toEqual(Object.keys(sent));
  });

  it('puts several thinking blocks back in order', () => {
    const blocks = [thinking('第一段。', 'sig-1'), { type: 'redacted_thinking', data: 'EmwKAhgB' } as ThinkingBlock, thinking('第二段。')];
    const cache = memory(remembered(blocks));
    const { messages } = rewritten(rewriteMessagesRequest(body(conversation()), cache.lookup, PLACEHOLDER));
    expect(messages[1]?.['content']).toEqual([...blocks, ...readTurn.content]);
  });

  it('finds the thinking by its context when the client changed the ids and re-serialised the input', () => {
    const cache = memory(remembered());
    const renamed = { role: 'assistant', content: [{ type: 'text', text: ' 我先看一下文件。\n' }, use('call_x1', 'read_file', '{ "path" : "src/主.ts" }')] };
    const request = conversation(renamed);
    request['messages'][2] = { role: 'user', content: [result('call_x1', 'ok')] };
    const { messages } = rewritten(rewriteMessagesRequest(body(request), cache.lookup, PLACEHOLDER));
    expect(messages[1]?.['content'][0]).toEqual(READ_THINKING);
    const [idKey, contextKey] = keysAsked(request['messages'], 1);
    expect(cache.calls[0]).toEqual([idKey, contextKey]);
    expect(remembered()[0]?.keys).not.toContain(idKey);
    expect(remembered()[0]?.keys).toContain(contextKey);
  });

  it('misses when the ids match but the turn does not: another input, another tool or other text', () => {
    const variants = [
      { role: 'assistant', content: [readTurn.content[0], use('toolu_read_1', 'read_file', { path: 'src/副.ts' })] },
      { role: 'assistant', content: [readTurn.content[0], use('toolu_read_1', 'read_files', { path: 'src/主.ts' })] },
      { role: 'assistant', content: [{ type: 'text', text: '我先看一下另一个文件。' }, readTurn.content[1]] },
    ];
    for (const variant of variants) {
      const outcome = rewriteMessagesRequest(body(conversation(variant)), memory(remembered()).lookup, PLACEHOLDER);
      const { messages } = rewritten(outcome);
      expect(JSON.stringify(messages[1]), JSON.stringify(variant)).not.toContain(READ_THINKING.thinking);
      expect(outcome.kind === 'rewritten' && outcome.changes, JSON.stringify(variant)).toEqual({ injected: 1, placeholders: 1, flattened: 0, missing: 1 });
    }
  });

  it('misses the same turn in another conversation', () => {
    const cache = memory(remembered([thinking('另一段对话的思考。')]));
    const other = conversation({ role: 'assistant', content: [readTurn.content[0], use('toolu_0', 'read_file', { path: 'src/主.ts' })] });
    other['messages'][0] = { role: 'user', content: '日志是怎么写的？' };
    other['messages'][2] = { role: 'user', content: [result('toolu_0', 'export function loadConfig() {}')] };
    const outcome = rewriteMessagesRequest(body(other), cache.lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    expect(JSON.stringify(messages)).not.toContain('另一段对话的思考。');
    expect(outcome.kind === 'rewritten' && outcome.changes.placeholders).toBeGreaterThanOrEqual(1);
  });

  it('finds a turn by its upstream ids even when the history before it changed', () => {
    const pruned = conversation();
    pruned['messages'][0] = { role: 'user', content: '（之前的对话已压缩）' };
    pruned['messages'][2] = { role: 'user', content: [result('toolu_read_1', '[output pruned]')] };
    const { messages } = rewritten(rewriteMessagesRequest(body(pruned), memory(remembered()).lookup, PLACEHOLDER));
    expect(messages[1]?.['content'][0]).toEqual(READ_THINKING);
    expect(messages[3]?.['content'][0]).toEqual(GREP_THINKING);
  });

  it(`still finds a turn when the client trims old turns outside the ${CONTEXT_WINDOW}-message window, but not inside it`, () => {
    const full: Json[] = [{ role: 'user', content: '把所有模块读一遍。' }];
    for (let i = 0; i < 6; i++) full.push({ role: 'assistant', content: [use(`toolu_s${i}`, 'read_file', { path: `src/m${i}.ts` })] }, { role: 'user', content: [result(`toolu_s${i}`, `module ${i}`)] });
    const turn = { role: 'assistant', content: [{ type: 'text', text: '再读主模块。' }, use('toolu_main', 'read_file', { path: 'src/主.ts' })] };
    full.push(turn, { role: 'user', content: [result('toolu_main', 'done')] });
    const index = full.indexOf(turn);
    const oldest = index - CONTEXT_WINDOW;
    expect(oldest).toBeGreaterThan(1);
    // Learned from a request: the context key alone, so only the context can find it.
    const cache = memory([anthropicEntry(full, index, encodeThinking([thinking('主模块最后读。')]), false)]);
    const trimmed = [full[0], ...full.slice(oldest)];
    const { messages } = rewritten(rewriteMessagesRequest(body({ system: 'x', messages: trimmed }), cache.lookup, PLACEHOLDER));
    expect(messages[trimmed.indexOf(turn)]?.['content'][0]).toEqual(thinking('主模块最后读。'));
    const inside = [...full.slice(0, index - 2), ...full.slice(index)];
    const outcome = rewriteMessagesRequest(body({ system: 'x', messages: inside }), cache.lookup, PLACEHOLDER);
    expect(outcome.kind === 'rewritten' && outcome.changes.injected).toBe(0);
  });

  for (const policy of [FLATTEN, { degrade: 'flatten', plainTurns: true } as RewritePolicy]) {
    it(`finds a later turn by its context after an earlier turn was degraded in the same request (${JSON.stringify(policy)})`, () => {
      // The first tool turn has no remembered thinking (it degrades); the second was learned
      // from a request under its context (the context key alone finds it). The context must
      // be the messages as the client sent them, not as the degrade changed them.
      const messages: Json[] = [
        { role: 'user', content: '先读再搜。' },
        { role: 'assistant', content: '好的。' },
        { role: 'user', content: '开始吧' },
        readTurn,
        { role: 'user', content: [result('toolu_read_1', 'export function loadConfig() {}')] },
        grepTurn,
        { role: 'user', content: [result('toolu_grep_2', 'a'), result('toolu_grep_3', 'b')] },
      ];
      const cache = memory([anthropicEntry(messages, 5, encodeThinking([GREP_THINKING]), false)]);
      const outcome = rewriteMessagesRequest(body({ messages }), cache.lookup, policy);
      const { messages: sent } = rewritten(outcome);
      expect(outcome.kind === 'rewritten' && outcome.changes.injected).toBe(1);
      expect(sent[5]?.['content'][0]).toEqual(GREP_THINKING);
      // The answer's context is the one the next request computes for it, from what the client sent.
      expect(outcome.kind === 'rewritten' && outcome.context).toBe(new ContextWindows(messages, anthropicContextForm).end());
    });
  }

  it('counts a string content and the same text as one text block as the same context', () => {
    const asString: Json[] = [{ role: 'user', content: '配置是怎么加载的？' }, readTurn];
    const asBlocks: Json[] = [{ role: 'user', content: [{ type: 'text', text: '配置是怎么加载的？', cache_control: { type: 'ephemeral' } }] }, readTurn];
    expect(new ContextWindows(asBlocks, anthropicContextForm).before(1)).toBe(new ContextWindows(asString, anthropicContextForm).before(1));
  });

  it('still finds a turn when the client rewrites the system prompt', () => {
    const cache = memory([anthropicEntry(conversation()['messages'], 1, encodeThinking([READ_THINKING]), false)]);
    for (const system of ['You are a coding agent. Today is Tuesday.', [{ type: 'text', text: 'Other prompt', cache_control: { type: 'ephemeral' } }], undefined]) {
      const request = { ...conversation(), system };
      const { messages } = rewritten(rewriteMessagesRequest(body(request), cache.lookup, PLACEHOLDER));
      expect(messages[1]?.['content'][0], JSON.stringify(system)).toEqual(READ_THINKING);
    }
  });

  it('leaves a turn with its own thinking untouched and reports it as learned, in its context and without upstream ids', () => {
    const own = { role: 'assistant', content: [{ type: 'thinking', thinking: '客户端自己带回的思考。', signature: 'abc' }, ...readTurn.content] };
    const cache = memory(remembered());
    const sent = conversation(own);
    const outcome = rewriteMessagesRequest(body(sent), cache.lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    expect(messages[1]).toEqual(own);
    const context = new ContextWindows(sent['messages'], anthropicContextForm).before(1);
    const learned = outcome.kind === 'rewritten' ? outcome.learned : [];
    expect(learned).toEqual([{ identity: anthropicTurnIdentity(readTurn), reasoning: encodeThinking([thinking('客户端自己带回的思考。', 'abc')]), context, upstreamIds: false }]);
    // What is learned finds this thinking for the same turn sent back later without it.
    const { messages: again } = rewritten(rewriteMessagesRequest(body(conversation()), memory(entriesOf(learned)).lookup, PLACEHOLDER));
    expect(again[1]?.['content'][0]).toEqual(thinking('客户端自己带回的思考。', 'abc'));
  });

  it('reports the context of the turn that answers the request, as the next request will see that turn', () => {
    const sent = conversation();
    const outcome = rewriteMessagesRequest(body(sent), memory(remembered()).lookup, PLACEHOLDER);
    const next = [...sent['messages'], { role: 'assistant', content: [{ type: 'text', text: '配置在 loadConfig 里加载。' }] }, { role: 'user', content: '谢谢' }];
    expect(outcome.kind !== 'skipped' && outcome.context).toBe(new ContextWindows(next, anthropicContextForm).before(sent['messages'].length));
  });

  it('replaces an empty or whitespace thinking block the client left in place', () => {
    for (const empty of [{ type: 'thinking', thinking: '', signature: '' }, { type: 'thinking', thinking: ' \n' }, { type: 'redacted_thinking', data: '' }]) {
      const turn = { role: 'assistant', content: [empty, ...readTurn.content] };
      const outcome = rewriteMessagesRequest(body(conversation(turn)), memory(remembered()).lookup, PLACEHOLDER);
      const { messages } = rewritten(outcome);
      expect(messages[1]?.['content'], JSON.stringify(empty)).toEqual([READ_THINKING, ...readTurn.content]);
      expect(outcome.kind === 'rewritten' && outcome.learned).toEqual([]);
    }
  });

  it('restores thinking the client demoted to a text block, found by its ids', () => {
    const demoted = { role: 'assistant', content: [{ type: 'text', text: READ_THINKING.thinking }, ...readTurn.content] };
    const { messages } = rewritten(rewriteMessagesRequest(body(conversation(demoted)), memory(remembered()).lookup, PLACEHOLDER));
    expect(messages[1]?.['content']).toEqual([READ_THINKING, ...readTurn.content]);
  });

  it('restores demoted thinking found by its context when the ids changed too', () => {
    const cache = memory(remembered());
    const demoted = { role: 'assistant', content: [{ type: 'text', text: `\n${READ_THINKING.thinking}` }, readTurn.content[0], use('call_new', 'read_file', { path: 'src/主.ts' })] };
    const request = conversation(demoted);
    request['messages'][2] = { role: 'user', content: [result('call_new', 'ok')] };
    const { messages } = rewritten(rewriteMessagesRequest(body(request), cache.lookup, PLACEHOLDER));
    expect(messages[1]?.['content']).toEqual([READ_THINKING, readTurn.content[0], use('call_new', 'read_file', { path: 'src/主.ts' })]);
  });

  it('does not count a demoted copy as thinking, and keeps text equal to the thinking after the tool_use', () => {
    // No memory: the demoted text is not thinking, so the turn still gets a placeholder.
    const demoted = { role: 'assistant', content: [{ type: 'text', text: 'some reasoning' }, ...readTurn.content] };
    const outcome = rewriteMessagesRequest(body(conversation(demoted)), memory().lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    expect(messages[1]?.['content'][0]?.['type']).toBe('thinking');
    expect(messages[1]?.['content'].slice(1)).toEqual(demoted.content);
    // A copy after the tool_use is the turn's own text.
    const after = { role: 'assistant', content: [...readTurn.content, { type: 'text', text: READ_THINKING.thinking }] };
    const cache = memory([anthropicEntry(conversation(after)['messages'], 1, encodeThinking([READ_THINKING]))]);
    const { messages: kept } = rewritten(rewriteMessagesRequest(body(conversation(after)), cache.lookup, PLACEHOLDER));
    expect(kept[1]?.['content']).toEqual([READ_THINKING, ...after.content]);
  });

  it('gives a non-empty placeholder specific to each turn, naming its tools, and keeps everything else', () => {
    const sent = conversation();
    const outcome = rewriteMessagesRequest(body(sent), memory().lookup, PLACEHOLDER);
    const { messages } = rewritten(outcome);
    const first = messages[1]?.['content'][0];
    const second = messages[3]?.['content'][0];
    for (const block of [first, second]) {
      expect(block?.['type']).toBe('thinking');
      expect(block?.['signature']).toBe('');
      expect(String(block?.['thinking']).trim()).not.toBe('');
    }
    expect(first?.['thinking']).not.toBe(second?.['thinking']);
    expect(first?.['thinking']).toContain('read_file');
    expect(second?.['thinking']).toContain('grep');
    expect(messages.map((m) => ({ ...m, content: Array.isArray(m['content']) && m['role'] === 'assistant' ? m['content'].slice(1) : m['content'] }))).toEqual(sent['messages']);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 0, placeholders: 2, flattened: 0, missing: 2 });
  });

  it('gives different placeholders to two turns that called the same tool with the same input', () => {
    const again = { role: 'assistant', content: [use('toolu_read_9', 'read_file', { path: 'src/主.ts' })] };
    const request = { messages: [{ role: 'user', content: 'go' }, readTurn, { role: 'user', content: [result('toolu_read_1', 'a')] }, again, { role: 'user', content: [result('toolu_read_9', 'a')] }] };
    const { messages } = rewritten(rewriteMessagesRequest(body(request), memory().lookup, PLACEHOLDER));
    expect(messages[1]?.['content'][0]?.['thinking']).not.toBe(messages[3]?.['content'][0]?.['thinking']);
  });

  it('flattens a tool exchange into text blocks with no orphan tool_result and no call in the assistant text', () => {
    const cache = memory([remembered()[1]!]);
    const outcome = rewriteMessagesRequest(body(conversation()), cache.lookup, FLATTEN);
    const { messages } = rewritten(outcome);
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 1, placeholders: 0, flattened: 1, missing: 1 });
    // The read turn keeps its own text only; its result became a text block in the same user turn.
    expect(messages[1]).toEqual({ role: 'assistant', content: [{ type: 'text', text: '我先看一下文件。' }] });
    expect(messages[2]?.['content']).toHaveLength(1);
    const text = String(messages[2]?.['content'][0]?.['text']);
    expect(messages[2]?.['content'][0]?.['type']).toBe('text');
    expect(text).toContain('read_file');
    expect(text).toContain('{"path":"src/主.ts"}');
    expect(text).toContain('export function loadConfig() {}');
    // The grep exchange is intact, with its thinking back.
    expect(messages[3]?.['content']).toEqual([GREP_THINKING, ...grepTurn.content]);
    expect(messages[4]?.['content'].map((b: Json) => b['type'])).toEqual(['tool_result', 'tool_result', 'text']);
    assertNoOrphans(messages);
  });

  it('flattens a turn with no text of its own: a neutral line stays, every call and result is stated', () => {
    const outcome = rewriteMessagesRequest(body(conversation()), memory().lookup, FLATTEN);
    const { messages } = rewritten(outcome);
    expect(messages.map((m) => m['role'])).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
    const grep = messages[3]?.['content'] as Json[];
    expect(grep).toHaveLength(1);
    expect(grep[0]?.['type']).toBe('text');
    expect(String(grep[0]?.['text'])).not.toContain('grep');
    const results = (messages[4]?.['content'] as Json[]).map((b) => String(b['text']));
    expect(results[0]).toContain('{"pattern":"loadConfig"}');
    expect(results[0]).toContain('src/a.ts:3: loadConfig()');
    expect(results[1]).toContain('{"pattern":"env"}');
    expect(results[1]).toContain('src/env.ts:1: process.env');
    expect(results[1]).toContain('error');
    expect(results[2]).toBe('继续');
    assertNoOrphans(messages);
    expect(JSON.stringify(messages)).not.toContain('tool_use');
  });

  it('states a flattened call that has no result, in the next user turn or a new one', () => {
    const unanswered = { messages: [{ role: 'user', content: 'go' }, { role: 'assistant', content: [use('t1', 'ls', {})] }, { role: 'user', content: '然后呢？' }] };
    const { messages } = rewritten(rewriteMessagesRequest(body(unanswered), memory().lookup, FLATTEN));
    expect(messages).toHaveLength(3);
    expect(String(messages[2]?.['content'][0]?.['text'])).toMatch(/ls[\s\S]*No result/);
    expect(messages[2]?.['content'][1]).toEqual({ type: 'text', text: '然后呢？' });
    const last = { messages: [{ role: 'user', content: 'go' }, { role: 'assistant', content: [use('t1', 'ls', {})] }] };
    const { messages: out } = rewritten(rewriteMessagesRequest(body(last), memory().lookup, FLATTEN));
    expect(out.map((m) => m['role'])).toEqual(['user', 'assistant', 'user']);
    expect(String(out[2]?.['content'][0]?.['text'])).toMatch(/ls[\s\S]*No result/);
  });

  it('with flatten and plainTurns gives the flattened turn a placeholder thinking block too', () => {
    const { messages } = rewritten(rewriteMessagesRequest(body(conversation()), memory().lookup, { degrade: 'flatten', plainTurns: true }));
    const first = messages[1]?.['content'][0];
    expect(first?.['type']).toBe('thinking');
    expect(String(first?.['thinking']).trim()).not.toBe('');
    assertNoOrphans(messages);
  });

  it('never degrades when thinking is disabled, but still puts remembered thinking back', () => {
    const disabled = { ...conversation(), thinking: { type: 'disabled' } };
    const original = body(disabled);
    for (const policy of [PLACEHOLDER, FLATTEN, { degrade: 'flatten', plainTurns: true } as const]) {
      const outcome = rewriteMessagesRequest(original, memory().lookup, policy);
      expect(outcome.kind).toBe('unchanged');
      expect(outcome.kind === 'unchanged' && outcome.body).toBe(original);
      expect(outcome.kind === 'unchanged' && outcome.changes.missing).toBe(2);
    }
    const cache = memory([remembered()[0]!]);
    const { messages } = rewritten(rewriteMessagesRequest(original, cache.lookup, FLATTEN));
    expect(messages[1]?.['content'][0]).toEqual(READ_THINKING);
    expect(messages[3]?.['content']).toEqual(grepTurn.content);
  });

  it('treats an enabled or absent thinking switch as on', () => {
    for (const switched of [{ thinking: { type: 'enabled', budget_tokens: 1024 } }, {}]) {
      const outcome = rewriteMessagesRequest(body({ ...conversation(), ...switched }), memory().lookup, PLACEHOLDER);
      expect(outcome.kind === 'rewritten' && outcome.changes.placeholders, JSON.stringify(switched)).toBe(2);
    }
  });

  it('returns the very same Buffer when nothing changed', () => {
    const request = {
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: '你好' },
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: '查天气。', signature: '' }, use('toolu_w', 'get_weather', { city: '北京' })] },
        { role: 'user', content: [result('toolu_w', '晴')] },
      ],
    };
    // Odd spacing: a re-serialised copy would differ.
    const original = Buffer.from(JSON.stringify(request, null, 3), 'utf8');
    const outcome = rewriteMessagesRequest(original, memory().lookup, PLACEHOLDER);
    expect(outcome.kind).toBe('unchanged');
    expect(outcome.kind === 'unchanged' && outcome.body).toBe(original);
    expect(outcome.kind === 'unchanged' && outcome.learned.length).toBe(1);
  });

  it('skips invalid JSON, invalid UTF-8, non-objects and bodies without messages', () => {
    const lookup = memory().lookup;
    expect(rewriteMessagesRequest(Buffer.from('{"messages": ['), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'invalid-json' });
    expect(rewriteMessagesRequest(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'invalid-json' });
    expect(rewriteMessagesRequest(Buffer.from('[1,2]'), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'not-an-object' });
    expect(rewriteMessagesRequest(Buffer.from('{"messages": {}}'), lookup, PLACEHOLDER)).toEqual({ kind: 'skipped', reason: 'no-messages' });
  });

  it('leaves string-content turns alone, and gives plain turns a placeholder only with plainTurns', () => {
    const request = { messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: '第一轮回答。' }, { role: 'user', content: 'b' }, { role: 'assistant', content: [{ type: 'text', text: '第二轮回答。' }] }, { role: 'user', content: 'c' }] };
    const without = rewriteMessagesRequest(body(request), memory().lookup, PLACEHOLDER);
    expect(without.kind).toBe('unchanged');
    expect(without.kind === 'unchanged' && without.changes.missing).toBe(0);
    const outcome = rewriteMessagesRequest(body(request), memory().lookup, { degrade: 'placeholder', plainTurns: true });
    const { messages } = rewritten(outcome);
    expect(messages[1]?.['content']).toEqual([{ type: 'thinking', thinking: expect.stringContaining('step 1'), signature: '' }, { type: 'text', text: '第一轮回答。' }]);
    expect(messages[3]?.['content'][0]?.['thinking']).toContain('step 2');
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 0, placeholders: 2, flattened: 0, missing: 2 });
  });

  it('puts remembered thinking back into a plain turn with block content only with plainTurns', () => {
    const plain = { role: 'assistant', content: [{ type: 'text', text: '北京今天晴。' }] };
    const asked = [{ role: 'user', content: '?' }, plain];
    const cache = memory([anthropicEntry(asked, 1, encodeThinking([thinking('直接回答。')]))]);
    const request = body({ messages: asked });
    expect(rewriteMessagesRequest(request, cache.lookup, PLACEHOLDER).kind).toBe('unchanged');
    const { messages } = rewritten(rewriteMessagesRequest(request, cache.lookup, { degrade: 'placeholder', plainTurns: true }));
    expect(messages[1]?.['content']).toEqual([thinking('直接回答。'), ...plain.content]);
  });

  it('treats a lookup that throws or returns whitespace as a miss', () => {
    const throwing = rewriteMessagesRequest(body(conversation()), () => {
      throw new Error('cache broke');
    }, PLACEHOLDER);
    expect(throwing.kind === 'rewritten' && throwing.changes.placeholders).toBe(2);
    const blank = rewriteMessagesRequest(body(conversation()), () => '  ', PLACEHOLDER);
    expect(blank.kind === 'rewritten' && blank.changes.placeholders).toBe(2);
  });

  it('never throws on random bytes or odd shapes', () => {
    let seed = 4242;
    const random = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    for (let run = 0; run < 300; run++) {
      const bytes = Buffer.alloc(Math.floor(random() * 200));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      expect(rewriteMessagesRequest(bytes, memory().lookup, FLATTEN).kind).toBe('skipped');
    }
    const odd: unknown[] = [
      { messages: [null, 1, 'x', [], { role: 'assistant' }] },
      { messages: [{ role: 'assistant', content: [null, 7, 'x', { type: 'tool_use' }, { type: 'tool_use', id: 5, name: 9, input: [1] }] }, { role: 'user', content: [{ type: 'tool_result' }, { type: 'tool_result', tool_use_id: 5 }] }] },
      { messages: [{ role: 'assistant', content: [{ type: 'thinking', thinking: 7 }, use('a', '', null)] }, { role: 'user', content: [result('a', { weird: true }), result('a', [1, null, { type: 'image' }])] }] },
      { messages: [{ role: 'assistant', content: [use('a', 'ls', 'not json')] }, { role: 'user', content: 5 }, { role: 'assistant', content: [use('a', 'ls', {})] }] },
      { messages: [], thinking: 'disabled' },
      { messages: [{ role: 'assistant', content: [{ type: 'text', text: 5 }, { type: 'redacted_thinking', data: 3 }] }] },
    ];
    for (const shape of odd) {
      for (const policy of [PLACEHOLDER, FLATTEN, { degrade: 'flatten', plainTurns: true } as const, { degrade: 'placeholder', plainTurns: true } as const]) {
        const outcome = rewriteMessagesRequest(body(shape), memory().lookup, policy);
        expect(outcome.kind, JSON.stringify(shape)).not.toBe('skipped');
        if (outcome.kind === 'rewritten') assertNoOrphans(JSON.parse(outcome.body.toString('utf8')).messages as Json[]);
      }
    }
  });
});

describe('flattening malformed ids', () => {
  it('takes a tool_result with an empty tool_use_id along with its tool_use (no orphan)', () => {
    const request = { messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: [use('', 'read_file', {})] }, { role: 'user', content: [result('', 'text')] }] };
    const { messages } = rewritten(rewriteMessagesRequest(body(request), memory().lookup, FLATTEN));
    expect(JSON.stringify(messages)).not.toContain('"tool_result"');
    expect(JSON.stringify(messages)).not.toContain('"tool_use"');
  });
});
