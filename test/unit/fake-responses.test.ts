/**
 * The fake MiMo's Responses route, talked to directly (no proxy): the
 * Responses integration tests and the Codex test lean on it to enforce the
 * passback rule and to know the exact reasoning item of every call, so it must.
 */
import https from 'node:https';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { DEEPSEEK_RESPONSES_REJECTION, MIMO_RESPONSES_REJECTION } from '../support/fake-responses.js';
import { runResponsesConversation, sendResponses } from '../support/responses-conversation.js';

describe('the fake MiMo serving /v1/responses', () => {
  let fake: FakeMimo;
  let agent: https.Agent;
  const url = (): string => `${fake.url}/v1/responses`;

  beforeAll(async () => {
    fake = await startFakeMimo({ toolRounds: 3 });
    agent = new https.Agent({ keepAlive: true });
  });
  afterAll(async () => {
    agent.destroy();
    await fake.close();
  });
  afterEach(() => {
    fake.options = { toolRounds: 3 };
  });

  for (const stream of [false, true]) {
    it(`refuses a forgetful client on its second request ${stream ? 'streamed' : 'not streamed'}, in the Responses error shape`, async () => {
      const { turns } = await runResponsesConversation({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream });
      expect(turns.map((t) => t.response.status)).toEqual([200, 400]);
      expect(turns[1]!.response.json()).toEqual({ error: { message: DEEPSEEK_RESPONSES_REJECTION, type: 'invalid_request_error', param: 'input', code: 'invalid_request_error' } });
    });
  }

  it('serves a client that keeps its items to the end, and records each echo as exact', async () => {
    const before = fake.responses.echoes.length;
    const { turns } = await runResponsesConversation({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream: true, forgetful: false });
    expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
    expect(fake.responses.echoes.slice(before).map((e) => e.exact)).toEqual(Array(6).fill(true));
  });

  it('with rejectPlaceholders, refuses an item that is not the one it produced (an added field, another text); MiMo wording, SSE-framed', async () => {
    fake.options.rejectPlaceholders = true;
    const { history } = await runResponsesConversation({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream: false, forgetful: false, maxRounds: 1 });
    const reasoning = history.findIndex((item) => item.type === 'reasoning');
    const added = history.map((item, i) => (i === reasoning ? { ...item, status: 'completed', extra: 1 } : item));
    expect((await sendResponses({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream: false }, added)).response.status).toBe(400);
    fake.options.responses = { rejection: 'mimo' };
    fake.options.sseFramedErrors = true;
    const other = history.map((item, i) => (i === reasoning ? { ...item, content: [{ type: 'reasoning_text', text: 'Reasoning for step 1 was not kept.' }] } : item));
    const refused = await sendResponses({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream: true }, other);
    expect(refused.response.status).toBe(400);
    expect(refused.response.text).toContain('event: response.failed');
    expect(refused.response.text).toContain(MIMO_RESPONSES_REJECTION);
  });

  it('refuses a function_call_output without its call, previous_response_id and the tools MiMo does not serve', async () => {
    const orphan = await sendResponses({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream: false }, [{ type: 'function_call_output', call_id: 'call_none', output: 'x' }]);
    expect(orphan.response.status).toBe(400);
    expect(orphan.response.json().error.message).toContain('call_none');
    for (const extra of [{ previous_response_id: 'resp_1' }, { tools: [{ type: 'web_search' }] }, { tools: [{ type: 'custom', name: 'apply_patch' }] }]) {
      const res = await sendResponses({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream: false, extra }, 'hi');
      expect(res.response.status).toBe(400);
      expect(res.response.json().error.code).toBe('responses_feature_not_supported');
    }
  });

  it('makes reasoning items in the shape asked for: no summary, an empty one, a summary text; encrypted content', async () => {
    const shapes = [
      [{ summary: 'absent' }, ['id', 'type', 'content', 'status']],
      [{ summary: 'empty' }, ['id', 'type', 'summary', 'content', 'status']],
      [{ summary: 'text', encrypted: true }, ['id', 'type', 'summary', 'content', 'encrypted_content', 'status']],
    ] as const;
    for (const [shape, keys] of shapes) {
      fake.options.responses = { ...shape };
      for (const stream of [false, true]) {
        const { output } = await sendResponses({ url: url(), agent, ca: fake.ca.certPem, key: 'sk-direct', stream }, 'hi');
        expect(Object.keys(output!.find((item) => item.type === 'reasoning')!), JSON.stringify(shape)).toEqual(keys);
      }
    }
  });
});
