import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { anthropicContextForm, anthropicTurnIdentity, canonicalInput, canonicalTurn, identifiableTurn, toolUseIds } from '../../src/anthropic/fingerprint.js';
import { decodeThinking, encodeThinking, type ThinkingBlock } from '../../src/anthropic/types.js';
import { chatTurnIdentity } from '../../src/chat/fingerprint.js';
import { parseJson } from '../../src/reasoning/json.js';

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

const readUse = { type: 'tool_use', id: 'toolu_01A7f2c0a9e41', name: 'read_file', input: { path: 'src/主.ts', limit: 200 } };
const grepUse = { type: 'tool_use', id: 'toolu_01B81d33e0c5', name: 'grep_search', input: { pattern: 'loadConfig', path: 'src' } };
const turn = {
  role: 'assistant',
  content: [{ type: 'thinking', thinking: '先读入口文件。', signature: '' }, { type: 'text', text: '\n\n我先看一下入口文件，再搜索调用点。' }, readUse, grepUse],
};

describe('the identity of an Anthropic turn', () => {
  it('is the sha256 hex of the canonical form, with the tool_use ids in order without repeats or empty ones', () => {
    const twice = { content: [readUse, grepUse, { ...readUse }, { ...grepUse, id: '' }] };
    expect(toolUseIds(twice)).toEqual(['toolu_01A7f2c0a9e41', 'toolu_01B81d33e0c5']);
    expect(anthropicTurnIdentity(turn)).toEqual({ turn: sha256(canonicalTurn(turn)), ids: ['toolu_01A7f2c0a9e41', 'toolu_01B81d33e0c5'] });
    expect(anthropicTurnIdentity(turn)?.turn).toMatch(/^[0-9a-f]{64}$/);
    expect(anthropicTurnIdentity({ content: '北京今天晴。' })?.ids).toEqual([]);
  });

  it('is undefined for a turn with neither tool_use nor text', () => {
    expect(anthropicTurnIdentity({ content: [{ type: 'thinking', thinking: '只有思考', signature: '' }] })).toBeUndefined();
    expect(anthropicTurnIdentity(null)).toBeUndefined();
  });
});

describe('the canonical form of an Anthropic turn', () => {
  it('is the same when the client re-serialises the input, reorders its keys or sends it as a JSON string', () => {
    const base = canonicalTurn(turn);
    const reordered = { content: [turn.content[1], { ...readUse, input: { limit: 200, path: 'src/主.ts' } }, grepUse] };
    const asString = { content: [turn.content[1], { ...readUse, input: '{ "limit" : 200, "path": "src/主.ts" }' }, grepUse] };
    expect(canonicalTurn(reordered)).toBe(base);
    expect(canonicalTurn(asString)).toBe(base);
  });

  it('is the same across text whitespace, split-off empty text blocks and changed ids', () => {
    const base = canonicalTurn(turn);
    const trimmed = {
      content: [{ type: 'text', text: '我先看一下入口文件，再搜索调用点。  ' }, { type: 'text', text: ' ' }, { ...readUse, id: 'call_other' }, { ...grepUse, id: 'x' }],
    };
    expect(canonicalTurn(trimmed)).toBe(base);
    // The digest is the same; the ids, part of the identity, are not.
    expect(anthropicTurnIdentity(trimmed)?.turn).toBe(anthropicTurnIdentity(turn)?.turn);
    expect(anthropicTurnIdentity(trimmed)?.ids).toEqual(['call_other', 'x']);
  });

  it('leaves thinking and redacted_thinking blocks out, so a turn without them matches', () => {
    const without = { content: turn.content.slice(1) };
    const redacted = { content: [{ type: 'redacted_thinking', data: 'EmwKAhgB' }, ...turn.content] };
    expect(canonicalTurn(without)).toBe(canonicalTurn(turn));
    expect(canonicalTurn(redacted)).toBe(canonicalTurn(turn));
  });

  it('changes with the text, a tool name, a tool input or the order of the tools', () => {
    const base = canonicalTurn(turn);
    const variants = [
      { content: [{ type: 'text', text: '我先看一下入口文件。' }, readUse, grepUse] },
      { content: [turn.content[1], { ...readUse, name: 'read_files' }, grepUse] },
      { content: [turn.content[1], { ...readUse, input: { path: 'src/主.ts', limit: 201 } }, grepUse] },
      { content: [turn.content[1], grepUse, readUse] },
      // The thinking demoted to a text block is text: it changes the form.
      { content: [{ type: 'text', text: '先读入口文件。' }, ...turn.content.slice(1)] },
    ];
    const forms = new Set(variants.map(canonicalTurn));
    expect(forms.size).toBe(variants.length);
    expect(forms.has(base)).toBe(false);
  });

  it('treats a string content as one text block and never meets the chat surface digest', () => {
    expect(canonicalTurn({ role: 'assistant', content: ' 北京今天晴。\n' })).toBe(canonicalTurn({ content: [{ type: 'text', text: '北京今天晴。' }] }));
    expect(canonicalTurn({ content: '北京今天晴。' })).toBe('{"text":"北京今天晴。","tool_use":[]}');
    expect(anthropicTurnIdentity({ content: '北京今天晴。' })?.turn).not.toBe(chatTurnIdentity({ role: 'assistant', content: '北京今天晴。' })?.turn);
  });

  it('treats an absent or empty input as {}', () => {
    const empty = (input: unknown): string => canonicalTurn({ content: [{ type: 'tool_use', id: 'a', name: 'ls', input }] });
    expect(empty(undefined)).toBe(empty({}));
    expect(empty('')).toBe(empty({}));
    expect(empty(null)).toBe(empty({}));
  });

  it('reads an input parsed keeping number text the same as one parsed plainly (request and response sides)', () => {
    const text = '{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"big":12345678901234567890,"f":1.50,"e":1e400,"z":-0}}]}';
    const kept = parseJson(text) as { content: { input: unknown }[] };
    expect(canonicalInput(kept.content[0]?.input)).toBe(canonicalInput((JSON.parse(text) as typeof kept).content[0]?.input));
    expect(anthropicTurnIdentity(kept)).toEqual(anthropicTurnIdentity(JSON.parse(text)));
  });

  it('says a turn with neither tool_use nor text has no identity of its own', () => {
    expect(identifiableTurn(turn)).toBe(true);
    expect(identifiableTurn({ content: '答案' })).toBe(true);
    expect(identifiableTurn({ content: [{ type: 'tool_use', name: 'ls' }] })).toBe(true);
    for (const none of [{ content: [] }, { content: '  ' }, { content: [{ type: 'thinking', thinking: '只有思考' }, { type: 'text', text: '\n' }] }, null, 'x', { content: 7 }]) {
      expect(identifiableTurn(none), JSON.stringify(none)).toBe(false);
    }
  });
});

describe('the context form of an Anthropic message', () => {
  const result = (id: string, content: unknown, extra: Record<string, unknown> = {}) => ({ type: 'tool_result', tool_use_id: id, content, ...extra });

  it('gives an assistant turn with tool_use by its calls alone: never thinking, demoted text or ids', () => {
    const plain = { role: 'assistant', content: [readUse, grepUse] };
    expect(anthropicContextForm(turn)).toBe(anthropicContextForm(plain));
    expect(anthropicContextForm({ role: 'assistant', content: [{ type: 'text', text: '先读入口文件。' }, { ...readUse, id: 'other' }, grepUse] })).toBe(anthropicContextForm(plain));
    expect(anthropicContextForm({ role: 'assistant', content: [readUse] })).not.toBe(anthropicContextForm(plain));
  });

  it('gives a user turn by its text and results, not by tool_use ids or cache_control markers', () => {
    const sent = { role: 'user', content: [result('toolu_1', 'ok'), { type: 'text', text: '继续', cache_control: { type: 'ephemeral' } }] };
    const later = { role: 'user', content: [result('call_9', [{ type: 'text', text: ' ok ' }]), { type: 'text', text: '继续' }] };
    expect(anthropicContextForm(later)).toBe(anthropicContextForm(sent));
    expect(anthropicContextForm({ role: 'user', content: [result('toolu_1', 'ok', { is_error: true }), { type: 'text', text: '继续' }] })).not.toBe(anthropicContextForm(sent));
    expect(anthropicContextForm({ role: 'user', content: [result('toolu_1', 'not ok'), { type: 'text', text: '继续' }] })).not.toBe(anthropicContextForm(sent));
  });

  it('never throws on odd shapes', () => {
    for (const odd of [null, 42, 'text', [], { content: 5 }, { role: 'user', content: [null, 7, { type: 'image', source: { data: 'x' } }, { type: 'tool_result' }] }]) {
      expect(typeof anthropicContextForm(odd)).toBe('string');
    }
  });
});

describe('the thinking codec', () => {
  const blocks: ThinkingBlock[] = [
    { type: 'thinking', thinking: '第一段思考：需要城市名。', signature: 'EqQBCkgIAxABGAIiQL3/签名+Ab==' },
    { type: 'redacted_thinking', data: 'EmwKAhgBEgy3va3pzix/LafPsn4a' },
    { type: 'thinking', thinking: '第二段："引号" 与 \\ 反斜杠', signature: '' },
  ];

  it('round-trips several thinking blocks with their signatures, in order', () => {
    const encoded = encodeThinking(blocks);
    expect(typeof encoded).toBe('string');
    expect(decodeThinking(encoded)).toEqual(blocks);
  });

  it('reads nothing from a value that is not its encoding (the chat dialect is scoped apart)', () => {
    expect(decodeThinking('用户想知道天气。')).toBeUndefined();
    expect(decodeThinking('{"other":"json"}')).toBeUndefined();
  });

  it('gives nothing for empty thinking, whitespace or a broken encoding with no block left', () => {
    expect(decodeThinking('')).toBeUndefined();
    expect(decodeThinking(' \n')).toBeUndefined();
    expect(decodeThinking(encodeThinking([{ type: 'thinking', thinking: ' ', signature: 'x' }]))).toBeUndefined();
    expect(decodeThinking('{"anthropic_thinking":[{"type":"thinking","thinking":5},null,"x"]}')).toBeUndefined();
    // Our prefix but not JSON: not ours after all.
    expect(decodeThinking('{"anthropic_thinking": oops')).toBeUndefined();
  });

  it('fills in a missing signature as empty', () => {
    expect(decodeThinking('{"anthropic_thinking":[{"type":"thinking","thinking":"想一想"}]}')).toEqual([{ type: 'thinking', thinking: '想一想', signature: '' }]);
  });
});
