import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AssistantMessage } from '../../src/chat/types.js';
import { canonicalMessage, chatContextForm, chatTurnIdentity, identifiable, toolCallIds } from '../../src/chat/fingerprint.js';
import { canonicalArguments, parseJson } from '../../src/reasoning/json.js';

const call = (id: string, name: string, args: string) => ({ id, type: 'function', function: { name, arguments: args } });
const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

describe('the canonical form of a chat turn', () => {
  it('is the trimmed text and each call as name and canonical arguments', () => {
    expect(canonicalMessage({ content: ' hi ', tool_calls: [call('c', 'f', '{"b":1,"a":[2,{"d":1,"c":2}]}')] })).toBe(
      '{"content":"hi","tool_calls":[{"arguments":"{\\"a\\":[2,{\\"c\\":2,\\"d\\":1}],\\"b\\":1}","name":"f"}]}',
    );
  });

  it('is the same when the client re-serialised the arguments or reordered their keys', () => {
    const streamed: AssistantMessage = { role: 'assistant', content: null, tool_calls: [call('call_1', 'read_file', '{"path": "src/主.ts", "limit": 200, "opts": {"z": 1, "a": [1, 2]}}')] };
    const reserialised: AssistantMessage = { role: 'assistant', content: null, tool_calls: [call('call_1', 'read_file', JSON.stringify({ opts: { a: [1, 2], z: 1 }, limit: 200, path: 'src/主.ts' }))] };
    expect(canonicalMessage(reserialised)).toBe(canonicalMessage(streamed));
  });

  it('ignores whitespace around and inside JSON arguments, but not inside strings', () => {
    const a = canonicalMessage({ tool_calls: [call('x', 'grep', '{"pattern":"a b"}')] });
    expect(canonicalMessage({ tool_calls: [call('x', 'grep', '\n {\n  "pattern" :  "a b"\n}\n ')] })).toBe(a);
    expect(canonicalMessage({ tool_calls: [call('x', 'grep', '{"pattern":"a  b"}')] })).not.toBe(a);
  });

  it('keeps unparseable arguments as their trimmed raw text', () => {
    expect(canonicalArguments('  {"path": "a"  ')).toBe('{"path": "a"');
    expect(canonicalMessage({ tool_calls: [call('x', 'run', ' ls -la ')] })).toBe(canonicalMessage({ tool_calls: [call('x', 'run', 'ls -la')] }));
    // A JSON string value and the same bare text are different arguments.
    expect(canonicalArguments('"ls"')).not.toBe(canonicalArguments('ls'));
  });

  it('treats content null, empty, absent and whitespace the same', () => {
    const calls = [call('x', 'f', '{}')];
    const forms = [null, '', undefined, '  \n', [], [{ type: 'text', text: '' }]].map((content) => canonicalMessage({ role: 'assistant', content, tool_calls: calls }));
    expect(new Set(forms).size).toBe(1);
  });

  it('treats a string, an array of text parts and surrounding whitespace the same when the text is equal', () => {
    const text = canonicalMessage({ content: '我先看一下文件。' });
    expect(canonicalMessage({ content: '\n\n我先看一下文件。 ' })).toBe(text);
    expect(canonicalMessage({ content: [{ type: 'text', text: '我先看' }, { type: 'text', text: '一下文件。' }] })).toBe(text);
    expect(canonicalMessage({ content: [{ type: 'image_url', image_url: { url: 'x' } }, { text: '我先看一下文件。' }] })).toBe(text);
    expect(canonicalMessage({ content: '我先看一下文件' })).not.toBe(text);
  });

  it('differs for different tool names, argument values, call order or text', () => {
    const base = canonicalMessage({ tool_calls: [call('x', 'read_file', '{"p":1}'), call('y', 'grep', '{}')] });
    expect(canonicalMessage({ tool_calls: [call('x', 'write_file', '{"p":1}'), call('y', 'grep', '{}')] })).not.toBe(base);
    expect(canonicalMessage({ tool_calls: [call('x', 'read_file', '{"p":2}'), call('y', 'grep', '{}')] })).not.toBe(base);
    expect(canonicalMessage({ tool_calls: [call('y', 'grep', '{}'), call('x', 'read_file', '{"p":1}')] })).not.toBe(base);
    expect(canonicalMessage({ content: 'x', tool_calls: [call('x', 'read_file', '{"p":1}'), call('y', 'grep', '{}')] })).not.toBe(base);
  });

  it('leaves out tool call ids, types and reasoning', () => {
    const a = canonicalMessage({ tool_calls: [call('call_abc', 'f', '{}')] });
    expect(canonicalMessage({ reasoning_content: '想一想', tool_calls: [{ id: 'toolu_other', type: 'custom', function: { name: 'f', arguments: '{}' } }] })).toBe(a);
  });

  it('never throws on odd shapes', () => {
    const odd: unknown[] = [null, 42, 'text', [], { content: 5 }, { tool_calls: 'x' }, { tool_calls: [null, 1, { function: null }, { function: { name: 3, arguments: { a: 1 } } }] }];
    for (const message of odd) {
      expect(typeof canonicalMessage(message as AssistantMessage)).toBe('string');
      expect(() => chatTurnIdentity(message as AssistantMessage)).not.toThrow();
    }
    // Deeply nested arguments overflow the recursion: they fall back to the raw text.
    const deep = `${'['.repeat(20000)}${']'.repeat(20000)}`;
    expect(canonicalArguments(deep)).toBe(deep);
  });
});

describe('the identity of a chat turn', () => {
  it('is the sha256 hex of the canonical form, with the call ids in order without repeats or empty ones', () => {
    const message = { content: null, tool_calls: [call('call_1', 'a', '{}'), call('call_2', 'b', '{}'), call('call_1', 'c', '{}'), call('', 'd', '{}'), { function: { name: 'e' } }] };
    expect(chatTurnIdentity(message)).toEqual({ turn: sha256(canonicalMessage(message)), ids: ['call_1', 'call_2'] });
    expect(toolCallIds(message)).toEqual(['call_1', 'call_2']);
    expect(chatTurnIdentity(message)?.turn).toMatch(/^[0-9a-f]{64}$/);
  });

  it('has no ids for a plain turn', () => {
    expect(chatTurnIdentity({ role: 'assistant', content: '好的' })).toEqual({ turn: sha256(canonicalMessage({ content: '好的' })), ids: [] });
  });

  it('keeps the same turn digest when the client rewrites the ids, but not the same ids', () => {
    const issued = chatTurnIdentity({ tool_calls: [call('call_abc', 'f', '{"a":1}')] });
    const rewritten = chatTurnIdentity({ tool_calls: [call('toolu_1', 'f', '{ "a": 1 }')] });
    expect(rewritten?.turn).toBe(issued?.turn);
    expect(rewritten?.ids).not.toEqual(issued?.ids);
  });

  it('is undefined for a turn with neither tool calls nor text', () => {
    for (const none of [{ role: 'assistant', content: '  ' }, { role: 'assistant', content: null, tool_calls: [] }, { reasoning_content: '只有思考' }, null, 'x']) {
      expect(identifiable(none as AssistantMessage), JSON.stringify(none)).toBe(false);
      expect(chatTurnIdentity(none as AssistantMessage), JSON.stringify(none)).toBeUndefined();
    }
    expect(identifiable({ tool_calls: [call('', '', '')] })).toBe(true);
  });
});

describe('the context form of a chat message', () => {
  it('leaves system and developer messages out', () => {
    expect(chatContextForm({ role: 'system', content: 'You are a coding agent.' })).toBeUndefined();
    expect(chatContextForm({ role: 'developer', content: 'Be brief.' })).toBeUndefined();
  });

  it('gives an assistant turn with calls by its calls alone: never its text, reasoning or ids', () => {
    const sent = { role: 'assistant', content: '我先看一下。', reasoning_content: '想一想', tool_calls: [call('call_1', 'read_file', '{"path":"a","n":1}')] };
    const later = { role: 'assistant', content: '', tool_calls: [call('toolu_9', 'read_file', '{ "n": 1, "path": "a" }')] };
    expect(chatContextForm(later)).toBe(chatContextForm(sent));
    expect(chatContextForm({ ...later, tool_calls: [call('toolu_9', 'read_file', '{"path":"b","n":1}')] })).not.toBe(chatContextForm(sent));
  });

  it('gives a plain assistant turn by its trimmed text', () => {
    expect(chatContextForm({ role: 'assistant', content: ' 好的\n', reasoning_content: 'x' })).toBe(chatContextForm({ role: 'assistant', content: [{ type: 'text', text: '好的' }] }));
    expect(chatContextForm({ role: 'assistant', content: '好的' })).not.toBe(chatContextForm({ role: 'user', content: '好的' }));
  });

  it('gives user and tool messages by their text, not by the tool call id', () => {
    expect(chatContextForm({ role: 'tool', tool_call_id: 'call_1', content: ' ok ' })).toBe(chatContextForm({ role: 'tool', tool_call_id: 'toolu_1', content: [{ type: 'text', text: 'ok' }] }));
    expect(chatContextForm({ role: 'tool', tool_call_id: 'call_1', content: 'ok' })).not.toBe(chatContextForm({ role: 'tool', tool_call_id: 'call_1', content: 'not ok' }));
    expect(chatContextForm({ role: 'user', content: [{ type: 'image_url', image_url: { url: 'a.png' } }] })).not.toBe(
      chatContextForm({ role: 'user', content: [{ type: 'image_url', image_url: { url: 'b.png' } }] }),
    );
  });

  it('reads a request parsed keeping number text the same as one parsed plainly', () => {
    const text = '{"role":"user","content":[{"type":"x","n":12345678901234567890,"f":1.50,"z":-0}]}';
    expect(chatContextForm(parseJson(text))).toBe(chatContextForm(JSON.parse(text)));
  });

  it('never throws on odd shapes', () => {
    for (const odd of [null, 42, 'text', [], { content: 5 }, { role: 7, content: { a: 1 } }]) expect(typeof chatContextForm(odd)).toBe('string');
  });
});
