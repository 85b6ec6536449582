import { describe, expect, it } from 'vitest';
import { chatEntry, memory } from '../support/unit.js';
import { retryPolicy } from '../../src/reasoning/exchange.js';
import { rewriteChatRequest } from '../../src/chat/rewrite.js';

const call = (id: string) => ({ id, type: 'function', function: { name: 'read_file', arguments: '{"path":"a.ts"}' } });
const history = (id: string, ask = 'read a.ts') => ({
  model: 'mimo-v2.6-pro',
  messages: [
    { role: 'user', content: ask },
    { role: 'assistant', content: '', tool_calls: [call(id)] },
    { role: 'tool', tool_call_id: id, content: 'export {}' },
    { role: 'assistant', content: 'done' },
    { role: 'user', content: 'again' },
  ],
});

describe('the retry ladder', () => {
  it('goes from placeholder to flatten', () => {
    expect(retryPolicy('placeholder')).toEqual({ degrade: 'flatten', plainTurns: false });
  });

  it('after flatten also gives plain turns a placeholder', () => {
    expect(retryPolicy('flatten')).toEqual({ degrade: 'flatten', plainTurns: true });
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

  it("never puts back another conversation's reasoning for an identical call, on the first attempt or the retry", () => {
    const other = history('call_other_turn', 'read a.ts, then summarise it');
    const cache = memory([chatEntry(other.messages, 1, 'reasoning of another turn')]);
    const body = Buffer.from(JSON.stringify(history('call_1')));
    for (const policy of [{ degrade: 'placeholder' } as const, retryPolicy('placeholder'), retryPolicy('flatten')]) {
      const outcome = rewriteChatRequest(body, cache.lookup, policy);
      expect(outcome.kind === 'rewritten' && outcome.changes.injected, JSON.stringify(policy)).toBe(0);
      expect((outcome as { body: Buffer }).body.toString()).not.toContain('reasoning of another turn');
    }
  });

  it('puts back the same reasoning on the retry as on the first attempt, keeping that tool exchange', () => {
    const sent = history('call_1');
    const cache = memory([chatEntry(sent.messages, 1, 'reasoning of this turn')]);
    const body = Buffer.from(JSON.stringify(sent));
    const first = rewriteChatRequest(body, cache.lookup, { degrade: 'placeholder' });
    expect(first.kind === 'rewritten' && first.changes.injected).toBe(1);
    const retry = rewriteChatRequest(body, cache.lookup, retryPolicy('placeholder'));
    expect(retry.kind === 'rewritten' && retry.changes).toEqual({ injected: 1, placeholders: 0, flattened: 0, missing: 0 });
    const messages = JSON.parse((retry as { body: Buffer }).body.toString()).messages as Array<Record<string, unknown>>;
    expect(messages[1]?.['reasoning_content']).toBe('reasoning of this turn');
    expect(messages[2]?.['role']).toBe('tool');
  });
});
