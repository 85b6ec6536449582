import { describe, expect, it } from 'vitest';
import type { AssistantMessage } from '../../src/chat/types.js';
import { canonicalArguments, canonicalMessage, fingerprintKey, messageKeys, toolCallKey } from '../../src/fingerprint.js';

const call = (id: string, name: string, args: string) => ({ id, type: 'function', function: { name, arguments: args } });

describe('fingerprints', () => {
  it('are the sha256 hex of the canonical form behind an fp: prefix', () => {
    expect(fingerprintKey({ content: 'hi' })).toMatch(/^fp:[0-9a-f]{64}$/);
    expect(canonicalMessage({ content: ' hi ', tool_calls: [call('c', 'f', '{"b":1,"a":[2,{"d":1,"c":2}]}')] })).toBe(
      '{"content":"hi","tool_calls":[{"arguments":"{\\"a\\":[2,{\\"c\\":2,\\"d\\":1}],\\"b\\":1}","name":"f"}]}',
    );
  });

  it('match when the client re-serialised the arguments or reordered their keys', () => {
    const streamed: AssistantMessage = { role: 'assistant', content: null, tool_calls: [call('call_1', 'read_file', '{"path": "src/主.ts", "limit": 200, "opts": {"z": 1, "a": [1, 2]}}')] };
    const reserialised: AssistantMessage = { role: 'assistant', content: null, tool_calls: [call('call_1', 'read_file', JSON.stringify({ opts: { a: [1, 2], z: 1 }, limit: 200, path: 'src/主.ts' }))] };
    expect(fingerprintKey(reserialised)).toBe(fingerprintKey(streamed));
  });

  it('ignore whitespace around and inside JSON arguments, but not inside strings', () => {
    const a = fingerprintKey({ tool_calls: [call('x', 'grep', '{"pattern":"a b"}')] });
    expect(fingerprintKey({ tool_calls: [call('x', 'grep', '\n {\n  "pattern" :  "a b"\n}\n ')] })).toBe(a);
    expect(fingerprintKey({ tool_calls: [call('x', 'grep', '{"pattern":"a  b"}')] })).not.toBe(a);
  });

  it('keep unparseable arguments as their trimmed raw text', () => {
    expect(canonicalArguments('  {"path": "a"  ')).toBe('{"path": "a"');
    expect(fingerprintKey({ tool_calls: [call('x', 'run', ' ls -la ')] })).toBe(fingerprintKey({ tool_calls: [call('x', 'run', 'ls -la')] }));
    // A JSON string value and the same bare text are different arguments.
    expect(canonicalArguments('"ls"')).not.toBe(canonicalArguments('ls'));
  });

  it('treat content null, empty, absent and whitespace the same', () => {
    const calls = [call('x', 'f', '{}')];
    const keys = [null, '', undefined, '  \n', [], [{ type: 'text', text: '' }]].map((content) => fingerprintKey({ role: 'assistant', content, tool_calls: calls }));
    expect(new Set(keys).size).toBe(1);
  });

  it('treat a string, an array of text parts and surrounding whitespace the same when the text is equal', () => {
    const text = fingerprintKey({ content: '我先看一下文件。' });
    expect(fingerprintKey({ content: '\n\n我先看一下文件。 ' })).toBe(text);
    expect(fingerprintKey({ content: [{ type: 'text', text: '我先看' }, { type: 'text', text: '一下文件。' }] })).toBe(text);
    expect(fingerprintKey({ content: [{ type: 'image_url', image_url: { url: 'x' } }, { text: '我先看一下文件。' }] })).toBe(text);
    expect(fingerprintKey({ content: '我先看一下文件' })).not.toBe(text);
  });

  it('differ for different tool names, argument values or call order', () => {
    const base = fingerprintKey({ tool_calls: [call('x', 'read_file', '{"p":1}'), call('y', 'grep', '{}')] });
    expect(fingerprintKey({ tool_calls: [call('x', 'write_file', '{"p":1}'), call('y', 'grep', '{}')] })).not.toBe(base);
    expect(fingerprintKey({ tool_calls: [call('x', 'read_file', '{"p":2}'), call('y', 'grep', '{}')] })).not.toBe(base);
    expect(fingerprintKey({ tool_calls: [call('y', 'grep', '{}'), call('x', 'read_file', '{"p":1}')] })).not.toBe(base);
    expect(fingerprintKey({ content: 'x', tool_calls: [call('x', 'read_file', '{"p":1}'), call('y', 'grep', '{}')] })).not.toBe(base);
  });

  it('leave out tool call ids and types', () => {
    const a = fingerprintKey({ tool_calls: [call('call_abc', 'f', '{}')] });
    expect(fingerprintKey({ tool_calls: [{ id: 'toolu_other', type: 'custom', function: { name: 'f', arguments: '{}' } }] })).toBe(a);
  });

  it('never throw on odd shapes', () => {
    const odd: unknown[] = [null, 42, 'text', [], { content: 5 }, { tool_calls: 'x' }, { tool_calls: [null, 1, { function: null }, { function: { name: 3, arguments: { a: 1 } } }] }];
    for (const message of odd) expect(fingerprintKey(message as AssistantMessage)).toMatch(/^fp:/);
    // Deeply nested arguments overflow the recursion: they fall back to the raw text.
    const deep = `${'['.repeat(20000)}${']'.repeat(20000)}`;
    expect(fingerprintKey({ tool_calls: [call('x', 'f', deep)] })).toMatch(/^fp:/);
  });
});

describe('message keys', () => {
  it('list every tool call id key in order, then the fingerprint key', () => {
    const message = { content: null, tool_calls: [call('call_1', 'a', '{}'), call('call_2', 'b', '{}'), call('call_1', 'c', '{}'), { function: { name: 'd' } }] };
    expect(messageKeys(message)).toEqual([toolCallKey('call_1'), toolCallKey('call_2'), fingerprintKey(message)]);
    expect(toolCallKey('call_1')).toBe('id:call_1');
  });

  it('are the fingerprint alone for a plain turn', () => {
    expect(messageKeys({ role: 'assistant', content: '好的' })).toEqual([fingerprintKey({ content: '好的' })]);
  });
});
