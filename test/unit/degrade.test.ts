import { describe, expect, it } from 'vitest';
import { flattenToolExchange } from '../../src/chat/degrade.js';
import { toolCallNames } from '../../src/chat/types.js';
import { plainPlaceholder, resultText, toolCallPlaceholder } from '../../src/reasoning/degrade.js';

const call = (id: string, name: string, args = '{}') => ({ id, type: 'function', function: { name, arguments: args } });

describe('placeholders', () => {
  it('name the step and the tools it called', () => {
    const text = toolCallPlaceholder(3, toolCallNames({ tool_calls: [call('a', 'read_file'), call('b', 'grep')] }));
    expect(text).toBe('Reasoning for step 3 was not kept; this step called read_file and grep.');
  });

  it('count repeated tools, cap the list and mention unnamed calls', () => {
    const calls = [call('a', 'grep'), call('b', 'grep'), call('c', 't1'), call('d', 't2'), call('e', 't3'), call('f', 't4'), call('g', 't5'), call('h', '')];
    const text = toolCallPlaceholder(7, toolCallNames({ tool_calls: calls }));
    expect(text).toBe('Reasoning for step 7 was not kept; this step called grep (2 calls), t1, t2, t3, 2 more tools and an unnamed tool.');
    expect(toolCallPlaceholder(1, toolCallNames({ tool_calls: [null] }))).toContain('called an unnamed tool');
  });

  it('differ between steps, even for the same tools and for plain turns', () => {
    const message = { tool_calls: [call('a', 'read_file')] };
    const texts = new Set([toolCallPlaceholder(1, toolCallNames(message)), toolCallPlaceholder(2, toolCallNames(message)), plainPlaceholder(1), plainPlaceholder(2)]);
    expect(texts.size).toBe(4);
    for (const text of texts) expect(text.trim().length).toBeGreaterThan(0);
  });
});

describe('flattening a tool exchange', () => {
  it('takes only the results of its own calls up to the next assistant message', () => {
    const messages = [
      { role: 'assistant', content: '看看。', tool_calls: [call('c1', 'ls', '{"path":"."}')] },
      { role: 'tool', tool_call_id: 'c1', content: 'a.ts' },
      { role: 'tool', tool_call_id: 'other', content: 'not ours' },
      { role: 'assistant', content: null, tool_calls: [call('c1', 'ls')] },
      { role: 'tool', tool_call_id: 'c1', content: 'reused id, later turn' },
    ];
    const { replacement, consumed } = flattenToolExchange(messages, 0, 1, false);
    expect(consumed).toEqual([1]);
    expect(replacement).toEqual([
      { role: 'assistant', content: '看看。' },
      { role: 'user', content: 'Step 1 used tools; here are the calls and their results, as text:\n\nThe tool ls was called with arguments {"path":"."}.\nResult:\na.ts' },
    ]);
  });

  it('drops the empty reasoning key from the kept text and never writes call markers', () => {
    const messages = [{ role: 'assistant', content: '好。', reasoning_content: '', tool_calls: [call('c1', 'ls')] }];
    const { replacement } = flattenToolExchange(messages, 0, 4, false);
    expect(replacement[0]).toEqual({ role: 'assistant', content: '好。' });
    expect(JSON.stringify(replacement)).not.toMatch(/\[Called|\[Tool call/);
  });
});

describe('tool result text', () => {
  it('reads strings, text parts and names other parts', () => {
    expect(resultText('plain')).toBe('plain');
    expect(resultText([{ type: 'text', text: '第一' }, 'second', { type: 'image_url', image_url: {} }])).toBe('第一\nsecond\n(a part of type image_url, not shown)');
    expect(resultText(null)).toBe('(empty)');
    expect(resultText([])).toBe('(empty)');
    expect(resultText({ a: 1 })).toBe('{"a":1}');
  });
});
