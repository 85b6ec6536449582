/**
 * The Anthropic surface end to end: forgetful Anthropic-protocol clients,
 * through the real proxy, against the fake MiMo's /anthropic/v1/messages,
 * which knows the exact thinking it produced for every tool_use id and (with
 * rejectPlaceholders) accepts nothing else.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runAnthropicConversation, sendMessages, type Turn } from '../support/anthropic-conversation.js';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, startRig, stopRig, tempDir, upstreamArgs, type Harness } from '../support/harness.js';
import { ConnectAgent, request } from '../support/proxy-client.js';

const URL_ = 'https://api.xiaomimimo.com/anthropic/v1/messages';

describe('the Anthropic surface', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 3, rejectPlaceholders: true }, ['--no-persist']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options.rejectPlaceholders = true;
    fake.options.sseFramedErrors = false;
  });

  for (const stream of [false, true]) {
    for (const demote of [false, true]) {
      it(`a client that ${demote ? 'demotes thinking to text' : 'drops thinking'} runs 3 rounds ${stream ? 'streamed' : 'not streamed'}: every request 200, the exact thinking comes back`, async () => {
        const before = fake.anthropic.echoes.length;
        const { turns } = await runAnthropicConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: `sk-anth-${stream}-${demote}`, stream, demote });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        const echoes = fake.anthropic.echoes.slice(before);
        expect(echoes).toHaveLength(6);
        for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
        // A demoted copy is restored as thinking, not left as visible text too.
        if (demote) {
          const last = fake.requests.at(-1)!.json as { messages: Turn[] };
          const texts = last.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((b) => b.type === 'text').map((b) => b.text);
          for (const echo of echoes) expect(texts).not.toContain(echo.produced);
        }
      });
    }
  }

  it('leaves a client that keeps its thinking untouched, byte for byte', async () => {
    const { history } = await runAnthropicConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-anth-keeper', stream: false, forgetful: false, maxRounds: 2 });
    const body = JSON.stringify({ model: 'mimo-v2.6-pro', max_tokens: 64, messages: history }, null, 2);
    const before = fake.requests.length;
    const res = await request(URL_, { agent, ca: h.proxy.ca.caPem, headers: { 'x-api-key': 'sk-anth-keeper' }, body });
    expect(res.status).toBe(200);
    expect(fake.requests[before]!.body.toString('utf8')).toBe(body);
  });

  it('keeps two keys apart, and an upstream that rejects placeholders still ends in 200 through the retry', async () => {
    fake.options.rejectPlaceholders = true;
    const alice = await runAnthropicConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-anth-alice', stream: false, maxRounds: 1 });
    const retriesBefore = h.proxy.counters.retries;
    const bob = await sendMessages({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-anth-bob', stream: true }, alice.history);
    // Bob's request could not carry Alice's thinking: the placeholder was refused, the retry flattened it.
    expect(bob.response.status).toBe(200);
    expect(h.proxy.counters.retries - retriesBefore).toBe(1);
    const sent = JSON.stringify(fake.requests.at(-1)!.json);
    const produced = [...fake.anthropic.produced.values()];
    for (const thinking of produced) expect(sent).not.toContain(thinking);
    expect(sent).not.toContain('"tool_result"');
  });

  it('serves the Anthropic surface in direct mode too', async () => {
    const plain = new http.Agent({ keepAlive: true });
    const { turns } = await runAnthropicConversation({ url: `${h.proxy.url}/anthropic/v1/messages`, agent: plain, key: 'sk-anth-direct', stream: true });
    expect(turns.every((t) => t.response.status === 200)).toBe(true);
    expect(fake.requests.at(-1)!.path).toBe('/anthropic/v1/messages');
    plain.destroy();
  });
});

describe('the Anthropic surface across a restart', () => {
  it('continues a conversation with its real thinking after the proxy restarts', async () => {
    const fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    const certsDir = tempDir('anth-restart');
    try {
      let h = await startHarness(upstreamArgs(fake), { certsDir });
      let agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const part = await runAnthropicConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-anth-restart', stream: true, maxRounds: 2 });
      expect(part.turns.map((t) => t.response.status)).toEqual([200, 200]);
      agent.destroy();
      await h.stop();

      h = await startHarness(upstreamArgs(fake), { certsDir });
      agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const before = fake.anthropic.echoes.length;
      const rest = await runAnthropicConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-anth-restart', stream: true, history: part.history });
      expect(rest.turns.every((t) => t.response.status === 200)).toBe(true);
      expect(fake.anthropic.echoes.slice(before).every((e) => e.exact)).toBe(true);
      expect(h.proxy.counters.retries).toBe(0);
      agent.destroy();
      await h.stop();
    } finally {
      await fake.close();
      rmSync(certsDir, { recursive: true, force: true });
    }
  });
});
