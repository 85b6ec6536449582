import { describe, expect, it } from 'vitest';
import { retryPolicy } from '../../src/reasoning.js';
import { rewriteChatRequest } from '../../src/rewrite.js';
import { messageKeys } from '../../src/fingerprint.js';

const call = (id: string) => ({ id, type: 'function', function: { name: 'read_file', arguments: '{"path":"a.ts"}' } });
const history = (id: string) => ({
  model: 'mimo-v2.6-pro',
  messages: [
    { role: 'user', content: 'read a.ts' },
    { role: 'assistant', content: '', tool_calls: [call(id)] },
    { role: 'tool', tool_call_id: id, content: 'export {}' },
    { role: 'assistant', content: 'done' },
    { role: 'user', content: 'again' },
  ],
});

describe('the retry ladder', () => {
  it('goes from placeholder to flatten, looking reasoning up by ids only', () => {
    expect(retryPolicy('placeholder')).toEqual({ degrade: 'flatten', plainTurns: false, fingerprintFallback: false });
  });

  it('after flatten also gives plain turns a placeholder', () => {
    expect(retryPolicy('flatten')).toEqual({ degrade: 'flatten', plainTurns: true, fingerprintFallback: false });
  });

  it('turns a placeholder first attempt into a flattened retry with no tool message left', () => {
    const body = Buffer.from(JSON.stringify(history('call_1')));
    const first = rewriteChatRequest(body, () => undefined, { degrade: 'placeholder' });
    expect(first.kind === 'rewritten' && first.changes.placeholders).toBe(1);
    const retry = rewriteChatRequest(body, () => undefined, retryPolicy('placeholder'));
    expect(retry.kind).toBe('rewritten');
    const sent = JSON.parse((retry as { body: Buffer }).body.toString()) as { messages: Array<{ role: string }> };
    expect(sent.messages.some((m) => m.role === 'tool')).toBe(false);
  });

  it('does not trust a fingerprint hit on the retry when the message has its own ids', () => {
    const other = { role: 'assistant', content: '', tool_calls: [call('call_other_turn')] };
    const remembered = new Map(messageKeys(other).map((k) => [k, 'reasoning of another turn'] as const));
    const lookup = (keys: readonly string[]): string | undefined => keys.map((k) => remembered.get(k)).find((v) => v !== undefined);
    const body = Buffer.from(JSON.stringify(history('call_1')));
    const first = rewriteChatRequest(body, lookup, { degrade: 'placeholder' });
    expect(first.kind === 'rewritten' && first.changes.injected).toBe(1);
    const retry = rewriteChatRequest(body, lookup, retryPolicy('placeholder'));
    expect((retry as { body: Buffer }).body.toString()).not.toContain('reasoning of another turn');
  });
});
