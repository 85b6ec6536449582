/**
 * Every dialect's SSE tap says when its answer is complete before the body ends (its
 * terminal event: chat's [DONE] or every choice finished, Anthropic's message_stop, the
 * Responses API's response.completed), so the exchange learns then: a client acts on that
 * event at once. Until then it is not settled, and a poisoned stream never is.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createAnthropicSseTap } from '../../src/anthropic/fold.js';
import { createChatSseTap } from '../../src/chat/fold.js';
import type { ResponseTap } from '../../src/reasoning/dialect.js';
import { createResponsesSseTap } from '../../src/responses/fold.js';
import { responseEvents } from '../support/fake-responses.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

const responsesStream = responseEvents('resp_1', 'm', [
  { type: 'reasoning', id: 'rs_1', content: [{ type: 'reasoning_text', text: '先列出文件。' }] },
  { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'shell', arguments: '{"cmd":"ls"}' },
]).join('');

const cases: Array<[string, () => ResponseTap, string, string]> = [
  ['chat', () => createChatSseTap(), fixture('tool-calls-zh.sse'), 'data: [DONE]'],
  ['anthropic', () => createAnthropicSseTap(), fixture('anthropic-tool-use-zh.sse'), 'event: message_stop'],
  ['responses', () => createResponsesSseTap(), responsesStream, 'event: response.completed'],
];

describe('a stream tap settles at its terminal event', () => {
  for (const [name, tap, stream, terminal] of cases) {
    it(`${name}: not before ${terminal}, then settled, and end() gives what it learned`, () => {
      const at = stream.lastIndexOf(terminal);
      expect(at).toBeGreaterThan(0);
      const t = tap();
      t.feed(Buffer.from(stream.slice(0, at), 'utf8'));
      expect(t.settled?.()).toBe(false);
      t.feed(Buffer.from(stream.slice(at), 'utf8'));
      expect(t.settled?.()).toBe(true);
      const learned = t.end();
      expect(learned?.length).toBeGreaterThan(0);
      expect(t.settled?.()).toBe(false); // ended
    });

    it(`${name}: a poisoned stream never settles`, () => {
      const t = tap();
      t.feed(Buffer.from('data: {not json}\n\n', 'utf8'));
      t.feed(Buffer.from(stream, 'utf8'));
      expect(t.settled?.()).toBe(false);
      expect(t.end()).toBeUndefined();
    });
  }
});
