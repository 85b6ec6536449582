import { describe, expect, it } from 'vitest';
import { flattenToolUse, isEmptyThinking, thinkingBlock, withoutEmptyThinking } from '../../src/anthropic/degrade.js';
import { anthropicTurns } from '../../src/anthropic/rewrite.js';
import { turnPlaceholder } from '../../src/reasoning/degrade.js';
import type { Json } from '../support/unit.js';

const use = (id: unknown, name: string, input: unknown = {}) => ({ type: 'tool_use', id, name, input });
const result = (id: unknown, content: unknown, extra: Json = {}) => ({ type: 'tool_result', tool_use_id: id, content, ...extra });
const text = (value: string) => ({ type: 'text', text: value });

/** The placeholder the turn loop gives the assistant message at `step` (anthropic/rewrite.ts). */
function placeholderFor(message: Json, step: number): Json {
  const turn = anthropicTurns.turn(message, true);
  if (!turn) throw new Error('not a turn');
  return anthropicTurns.withPlaceholder(turn, turnPlaceholder(step, anthropicTurns.toolNames(turn)));
}

describe('Anthropic placeholders', () => {
  it('are an unsigned thinking block first, naming the step and the tools the turn used', () => {
    const turn = { role: 'assistant', content: [text('我先看看。'), use('t1', 'read_file'), use('t2', ' grep '), use('t3', 'grep')] };
    expect(placeholderFor(turn, 3)).toEqual({
      role: 'assistant',
      content: [thinkingBlock('Reasoning for step 3 was not kept; this step called read_file and grep (2 calls).'), ...turn.content],
    });
  });

  it('count unnamed tools, and differ between steps and from a plain turn', () => {
    const turn = { role: 'assistant', content: [use('t1', ''), use('t2', 'ls')] };
    expect(placeholderFor(turn, 1)['content'][0]['thinking']).toBe('Reasoning for step 1 was not kept; this step called ls and an unnamed tool.');
    const plain = { role: 'assistant', content: '北京今天晴。' };
    const texts = new Set([placeholderFor(turn, 1), placeholderFor(turn, 2), placeholderFor(plain, 1), placeholderFor(plain, 2)].map((m) => m['content'][0]['thinking']));
    expect(texts.size).toBe(4);
    for (const value of texts) expect(String(value).trim()).not.toBe('');
  });

  it('replace empty thinking blocks the client left, keep everything else, and leave the input as it was', () => {
    const content = [{ type: 'thinking', thinking: ' ', signature: 'x' }, { type: 'redacted_thinking', data: '' }, text('好。'), use('t1', 'ls')];
    const turn = { role: 'assistant', content, id: 'msg_1' };
    const before = JSON.stringify(turn);
    const out = placeholderFor(turn, 2);
    expect(out['content']).toEqual([thinkingBlock('Reasoning for step 2 was not kept; this step called ls.'), text('好。'), use('t1', 'ls')]);
    expect(Object.keys(out)).toEqual(['role', 'content', 'id']);
    expect(JSON.stringify(turn)).toBe(before);
  });

  it('give a string content turn (plain turns only) its text as a block after the thinking', () => {
    expect(placeholderFor({ role: 'assistant', content: '你好' }, 4)['content']).toEqual([thinkingBlock('Reasoning for step 4 was not kept; this step answered in text.'), text('你好')]);
  });
});

describe('empty thinking', () => {
  it('is a thinking block with only whitespace or a redacted block with no data, nothing else', () => {
    expect([{ type: 'thinking', thinking: '' }, { type: 'thinking', thinking: ' \n', signature: 's' }, { type: 'thinking' }, { type: 'redacted_thinking', data: '' }].every(isEmptyThinking)).toBe(true);
    expect([{ type: 'thinking', thinking: '想', signature: '' }, { type: 'redacted_thinking', data: 'EmwK' }, text(''), null, 'x'].some(isEmptyThinking)).toBe(false);
    expect(withoutEmptyThinking([{ type: 'thinking', thinking: '' }, text('a'), { type: 'thinking', thinking: '想' }])).toEqual([text('a'), { type: 'thinking', thinking: '想' }]);
  });
});

describe('flattening an Anthropic tool exchange', () => {
  it('turns only its own results, up to the next assistant turn, into text blocks in place', () => {
    const messages = [
      { role: 'user', content: '配置在哪？' },
      { role: 'assistant', content: [text('看看。'), use('t1', 'ls', { path: '.', all: true })] },
      { role: 'user', content: [result('t1', 'a.ts'), result('other', 'not ours'), text('继续')] },
      { role: 'assistant', content: [use('t1', 'ls')] },
      { role: 'user', content: [result('t1', 'reused id, later turn')] },
    ];
    const flat = flattenToolUse(messages, 1, 1, false);
    expect(flat.assistant).toEqual([text('看看。')]);
    expect([...flat.users.keys()]).toEqual([2]);
    expect(flat.users.get(2)).toEqual([text('The tool ls was called with input {"all":true,"path":"."}.\nResult:\na.ts'), result('other', 'not ours'), text('继续')]);
    expect(flat.trailing).toBeUndefined();
  });

  it('leaves no tool_result without its tool_use, across several user turns and malformed ids', () => {
    const messages = [
      { role: 'assistant', content: [use('t1', 'read_file'), use(5, 'grep'), use('', 'ls')] },
      { role: 'user', content: [result('t1', '第一')] },
      { role: 'user', content: [result(5, ['x', { type: 'text', text: 'y' }]), result('', '')] },
    ];
    const flat = flattenToolUse(messages, 0, 1, false);
    const after = messages.map((message, i) => (flat.users.has(i) ? { ...message, content: flat.users.get(i) } : i === 0 ? { ...message, content: flat.assistant } : message));
    expect(JSON.stringify(after)).not.toContain('tool_result');
    expect(JSON.stringify(after)).not.toContain('tool_use');
    expect((flat.users.get(2)?.[0] as Json | undefined)?.['text']).toBe('The tool grep was called with input {}.\nResult:\nx\ny');
  });

  it('keeps a neutral line for a turn with no text of its own, and never writes the calls there', () => {
    const messages = [{ role: 'assistant', content: [{ type: 'thinking', thinking: '' }, use('t1', 'list_dir')] }, { role: 'user', content: [result('t1', 'ok')] }];
    const flat = flattenToolUse(messages, 0, 6, false);
    expect(flat.assistant).toEqual([text('(Step 6 used tools; the calls and their results follow as text.)')]);
    expect(JSON.stringify(flat.assistant)).not.toMatch(/\[Called|\[Tool call|list_dir/);
  });

  it('states a call nobody answered first in the next user turn, its string content kept as a text block', () => {
    const messages = [{ role: 'assistant', content: [use('t1', 'ls', '{ "path" : "." }')] }, { role: 'user', content: '然后呢？' }];
    const flat = flattenToolUse(messages, 0, 1, false);
    expect(flat.users.get(1)).toEqual([text('The tool ls was called with input {"path":"."}.\nNo result was recorded.'), text('然后呢？')]);
    expect(flat.trailing).toBeUndefined();
  });

  it('states a call nobody answered in a user turn of its own when no user turn follows', () => {
    const messages = [{ role: 'user', content: 'go' }, { role: 'assistant', content: [text('好。'), use('t1', 'ls')] }, { role: 'assistant', content: [text('later')] }];
    const flat = flattenToolUse(messages, 1, 1, false);
    expect(flat.users.size).toBe(0);
    expect(flat.trailing).toEqual({ role: 'user', content: [text('The tool ls was called with input {}.\nNo result was recorded.')] });
  });

  it('flags a result the tool reported as an error, and names what it does not inline', () => {
    const messages = [
      { role: 'assistant', content: [use('t1', 'run', { cmd: 'make' })] },
      { role: 'user', content: [result('t1', [text('exit 2'), { type: 'image', source: {} }], { is_error: true })] },
    ];
    const flat = flattenToolUse(messages, 0, 1, false);
    expect(flat.users.get(1)).toEqual([text('The tool run was called with input {"cmd":"make"}.\nResult (the tool reported an error):\nexit 2\n(a part of type image, not shown)')]);
  });

  it('with plainTurns gives the flattened turn a placeholder thinking block naming its tools', () => {
    const messages = [{ role: 'assistant', content: [text('好。'), use('t1', 'ls'), use('t2', 'grep')] }, { role: 'user', content: [result('t1', 'a'), result('t2', 'b')] }];
    const flat = flattenToolUse(messages, 0, 2, true);
    expect(flat.assistant).toEqual([thinkingBlock('Reasoning for step 2 was not kept; the results of ls and grep follow as text.'), text('好。')]);
  });

  it('leaves its input as it was', () => {
    const messages = [{ role: 'assistant', content: [use('t1', 'ls')] }, { role: 'user', content: [result('t1', 'a')] }, { role: 'user', content: 'x' }];
    const before = JSON.stringify(messages);
    flattenToolUse(messages, 0, 1, true);
    expect(JSON.stringify(messages)).toBe(before);
  });
});
