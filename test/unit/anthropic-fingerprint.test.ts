import { describe, expect, it } from 'vitest';
import { anthropicFingerprintKey, anthropicMessageKeys, canonicalTurn, identifiableTurn, toolUseKeys } from '../../src/anthropic/fingerprint.js';
import { decodeThinking, encodeThinking, storedReasoningText, thinkingText, type ThinkingBlock } from '../../src/anthropic/types.js';
import { fingerprintKey } from '../../src/fingerprint.js';

const readUse = { type: 'tool_use', id: 'toolu_01A7f2c0a9e41', name: 'read_file', input: { path: 'src/主.ts', limit: 200 } };
const grepUse = { type: 'tool_use', id: 'toolu_01B81d33e0c5', name: 'grep_search', input: { pattern: 'loadConfig', path: 'src' } };
const turn = {
  role: 'assistant',
  content: [{ type: 'thinking', thinking: '先读入口文件。', signature: '' }, { type: 'text', text: '\n\n我先看一下入口文件，再搜索调用点。' }, readUse, grepUse],
};

describe('the Anthropic turn fingerprint', () => {
  it('lists every tool_use id key in order without repeats, then the fingerprint key', () => {
    const twice = { content: [readUse, grepUse, { ...readUse }] };
    expect(toolUseKeys(twice)).toEqual(['id:toolu_01A7f2c0a9e41', 'id:toolu_01B81d33e0c5']);
    const keys = anthropicMessageKeys(turn);
    expect(keys.slice(0, 2)).toEqual(['id:toolu_01A7f2c0a9e41', 'id:toolu_01B81d33e0c5']);
    expect(keys[2]).toMatch(/^afp:[0-9a-f]{64}$/);
    expect(keys).toHaveLength(3);
  });

  it('is stable when the client re-serialises the input, reorders its keys or sends it as a JSON string', () => {
    const base = anthropicFingerprintKey(turn);
    const reordered = { content: [turn.content[1], { ...readUse, input: { limit: 200, path: 'src/主.ts' } }, grepUse] };
    const asString = { content: [turn.content[1], { ...readUse, input: '{ "limit" : 200, "path": "src/主.ts" }' }, grepUse] };
    expect(anthropicFingerprintKey(reordered)).toBe(base);
    expect(anthropicFingerprintKey(asString)).toBe(base);
  });

  it('is stable across text whitespace, split-off empty text blocks and changed ids', () => {
    const base = anthropicFingerprintKey(turn);
    const trimmed = {
      content: [{ type: 'text', text: '我先看一下入口文件，再搜索调用点。  ' }, { type: 'text', text: ' ' }, { ...readUse, id: 'call_other' }, { ...grepUse, id: 'x' }],
    };
    expect(anthropicFingerprintKey(trimmed)).toBe(base);
  });

  it('leaves thinking and redacted_thinking blocks out, so a turn without them matches', () => {
    const without = { content: turn.content.slice(1) };
    const redacted = { content: [{ type: 'redacted_thinking', data: 'EmwKAhgB' }, ...turn.content] };
    expect(anthropicFingerprintKey(without)).toBe(anthropicFingerprintKey(turn));
    expect(anthropicFingerprintKey(redacted)).toBe(anthropicFingerprintKey(turn));
  });

  it('changes with the text, a tool name, a tool input or the order of the tools', () => {
    const base = anthropicFingerprintKey(turn);
    const variants = [
      { content: [{ type: 'text', text: '我先看一下入口文件。' }, readUse, grepUse] },
      { content: [turn.content[1], { ...readUse, name: 'read_files' }, grepUse] },
      { content: [turn.content[1], { ...readUse, input: { path: 'src/主.ts', limit: 201 } }, grepUse] },
      { content: [turn.content[1], grepUse, readUse] },
      // The thinking demoted to a text block is text: it changes the fingerprint.
      { content: [{ type: 'text', text: '先读入口文件。' }, ...turn.content.slice(1)] },
    ];
    const keys = new Set(variants.map(anthropicFingerprintKey));
    expect(keys.size).toBe(variants.length);
    expect(keys.has(base)).toBe(false);
  });

  it('treats a string content as one text block and never meets the chat surface fingerprint', () => {
    expect(anthropicFingerprintKey({ role: 'assistant', content: ' 北京今天晴。\n' })).toBe(anthropicFingerprintKey({ content: [{ type: 'text', text: '北京今天晴。' }] }));
    expect(canonicalTurn({ content: '北京今天晴。' })).toBe('{"text":"北京今天晴。","tool_use":[]}');
    expect(anthropicFingerprintKey({ content: '北京今天晴。' }).slice(4)).not.toBe(fingerprintKey({ role: 'assistant', content: '北京今天晴。' }).slice(3));
  });

  it('treats an absent or empty input as {}', () => {
    const empty = (input: unknown): string => anthropicFingerprintKey({ content: [{ type: 'tool_use', id: 'a', name: 'ls', input }] });
    expect(empty(undefined)).toBe(empty({}));
    expect(empty('')).toBe(empty({}));
    expect(empty(null)).toBe(empty({}));
  });

  it('says a turn with neither tool_use nor text has no key of its own', () => {
    expect(identifiableTurn(turn)).toBe(true);
    expect(identifiableTurn({ content: '答案' })).toBe(true);
    expect(identifiableTurn({ content: [{ type: 'tool_use', name: 'ls' }] })).toBe(true);
    for (const none of [{ content: [] }, { content: '  ' }, { content: [{ type: 'thinking', thinking: '只有思考' }, { type: 'text', text: '\n' }] }, null, 'x', { content: 7 }]) {
      expect(identifiableTurn(none), JSON.stringify(none)).toBe(false);
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
    expect(thinkingText(blocks)).toBe('第一段思考：需要城市名。\n\n第二段："引号" 与 \\ 反斜杠');
  });

  it('reads a plain string (reasoning learned on the chat surface) as one unsigned thinking block', () => {
    expect(decodeThinking('用户想知道天气。')).toEqual([{ type: 'thinking', thinking: '用户想知道天气。', signature: '' }]);
    expect(decodeThinking('{"other":"json"}')).toEqual([{ type: 'thinking', thinking: '{"other":"json"}', signature: '' }]);
  });

  it('gives nothing for empty thinking, whitespace or a broken encoding with no block left', () => {
    expect(decodeThinking('')).toBeUndefined();
    expect(decodeThinking(' \n')).toBeUndefined();
    expect(decodeThinking(encodeThinking([{ type: 'thinking', thinking: ' ', signature: 'x' }]))).toBeUndefined();
    expect(decodeThinking('{"anthropic_thinking":[{"type":"thinking","thinking":5},null,"x"]}')).toBeUndefined();
    // Our prefix but not JSON: not ours after all, so it is text.
    expect(decodeThinking('{"anthropic_thinking": oops')?.[0]?.type).toBe('thinking');
  });

  it('gives the chat surface plain reasoning text for a value this surface stored', () => {
    expect(storedReasoningText(encodeThinking(blocks))).toBe(thinkingText(blocks));
    expect(storedReasoningText('聊天接口的思考。')).toBe('聊天接口的思考。');
  });

  it('fills in a missing signature as empty', () => {
    expect(decodeThinking('{"anthropic_thinking":[{"type":"thinking","thinking":"想一想"}]}')).toEqual([{ type: 'thinking', thinking: '想一想', signature: '' }]);
  });
});
