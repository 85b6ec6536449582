/**
 * The reasoning plugin end to end: forgetful clients, through the real proxy,
 * against the fake MiMo that enforces the rule and knows exactly which
 * reasoning it produced for every tool call.
 */
import http from 'node:http';
import https from 'node:https';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, startRig, stopRig, tempDir, upstreamArgs, type Harness } from '../support/harness.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { foldSse, runConversation, sendChat, type ChatMessage } from '../support/conversation.js';
import { rmSync } from 'node:fs';

const URL_ = 'https://api.xiaomimimo.com/v1/chat/completions';

describe('the reasoning plugin', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 3 }, ['--no-persist']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options.rejectPlaceholders = false;
    fake.options.sseFramedErrors = false;
  });

  for (const stream of [false, true]) {
    it(`a forgetful client runs 3 rounds of tool use ${stream ? 'streamed' : 'not streamed'}, every request 200, every reasoning returned exactly`, async () => {
      const echoesBefore = fake.echoes.length;
      const { turns } = await runConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: `sk-forgetful-${stream}`, stream });
      expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
      expect(turns.at(-1)!.message!.tool_calls).toBeNull();
      const echoes = fake.echoes.slice(echoesBefore);
      // Round k sends back k assistant tool-call messages: 1 + 2 + 3.
      expect(echoes).toHaveLength(6);
      for (const echo of echoes) {
        expect(echo.produced).toBeDefined();
        expect(echo.received).toBe(echo.produced);
        expect(echo.exact).toBe(true);
      }
    });
  }

  it('learns a streamed answer when its last event passes, before the body ends: a client that sends its next request on [DONE] gets the exact reasoning back', async () => {
    fake.options.endDelayMs = 3000;
    const key = 'sk-eager-client';
    const history: ChatMessage[] = [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
    const echoesBefore = fake.echoes.length;
    const streamAgent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      // Round 1, read only up to its [DONE] event: the upstream keeps the body open 3 s more.
      const { text, res } = await new Promise<{ text: string; res: http.IncomingMessage }>((resolve, reject) => {
        const req = https.request(URL_, { method: 'POST', agent: streamAgent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            if (text.includes('data: [DONE]')) resolve({ text, res });
          });
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(JSON.stringify({ model: 'mimo-v2.6-pro', stream: true, messages: history }));
      });
      const message = foldSse(text);
      expect(message.tool_calls?.length).toBeGreaterThan(0);
      history.push({ role: 'assistant', content: message.content ?? '', tool_calls: message.tool_calls ?? null });
      for (const call of message.tool_calls ?? []) history.push({ role: 'tool', tool_call_id: call.id, content: '{"result":"晴"}' });
      // Round 2 at once, on another connection, while round 1's body is still open.
      const retriesBefore = fake.requests.length;
      const turn = await sendChat({ url: URL_, agent, ca: h.proxy.ca.caPem, key, stream: false }, history);
      expect(res.complete).toBe(false);
      expect(turn.response.status).toBe(200);
      expect(fake.requests.length - retriesBefore).toBe(1); // no 400, no retry
      const echoes = fake.echoes.slice(echoesBefore);
      expect(echoes.length).toBeGreaterThan(0);
      for (const echo of echoes) expect(echo.exact).toBe(true);
    } finally {
      fake.options.endDelayMs = undefined;
      streamAgent.destroy();
    }
  });

  it('leaves a client that sends its own reasoning untouched, byte for byte', async () => {
    const { history } = await runConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-keeper', stream: false, forgetful: false, maxRounds: 2 });
    const before = fake.requests.length;
    const body = JSON.stringify({ model: 'mimo-v2.6-pro', messages: history }, null, 1);
    const res = await request(URL_, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-keeper' }, body });
    expect(res.status).toBe(200);
    expect(fake.requests[before]!.body.toString('utf8')).toBe(body);
  });

  it('never gives one API key the reasoning learned under another', async () => {
    const a = await runConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-alice', stream: false, maxRounds: 1 });
    const echoesBefore = fake.echoes.length;
    // Bob replays Alice's history (same tool-call ids) without reasoning.
    const history: ChatMessage[] = [...a.history, { role: 'tool', tool_call_id: a.history[1]!.tool_calls![0]!.id, content: 'x' }].slice(0, 3);
    const turn = await sendChat({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-bob', stream: false }, history);
    expect(turn.response.status).toBe(200);
    const echo = fake.echoes.slice(echoesBefore)[0]!;
    expect(echo.produced).toBeDefined();
    expect(echo.received).not.toBe(echo.produced);
    expect(echo.received).toBeTruthy();
    expect(JSON.stringify(fake.requests.at(-1)!.json)).not.toContain(echo.produced!);
  });

  for (const framed of [false, true]) {
    it(`an upstream that rejects placeholders still ends in 200 through the retry${framed ? ' (SSE-framed 400)' : ''}`, async () => {
      // A conversation the proxy has never seen: history made directly against the fake.
      const direct = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const first = await sendChat({ url: URL_, agent: direct, ca: h.proxy.ca.caPem, key: 'sk-unknown-origin', stream: false }, [{ role: 'user', content: '查天气' }]);
      expect(first.response.status).toBe(200);
      const call = first.message!.tool_calls![0]!;
      const history: ChatMessage[] = [
        { role: 'user', content: '查天气' },
        // Different key scope: the proxy has no reasoning for it under this key.
        { role: 'assistant', content: '', tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '晴' },
      ];
      fake.options.rejectPlaceholders = true;
      fake.options.sseFramedErrors = framed;
      const retriesBefore = h.proxy.counters.retries;
      const turn = await sendChat({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-other-key', stream: framed }, history);
      expect(turn.response.status).toBe(200);
      expect(h.proxy.counters.retries - retriesBefore).toBe(1);
      const last = fake.requests.at(-1)!.json as { messages: ChatMessage[] };
      expect(last.messages.some((m) => m.role === 'tool')).toBe(false);
      expect(JSON.stringify(last.messages)).not.toContain('[Called');
      direct.destroy();
    });
  }
});

describe('persistence', () => {
  it('after a proxy restart a conversation continues with its real reasoning, not a placeholder', async () => {
    const fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    const certsDir = tempDir('restart');
    try {
      let h = await startHarness(upstreamArgs(fake), { certsDir });
      let agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const opts = { url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-restart', stream: true };
      const part = await runConversation({ ...opts, maxRounds: 2 });
      expect(part.turns.map((t) => t.response.status)).toEqual([200, 200]);
      agent.destroy();
      await h.stop();

      h = await startHarness(upstreamArgs(fake), { certsDir });
      agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const echoesBefore = fake.echoes.length;
      const rest = await runConversation({ ...opts, agent, history: part.history });
      expect(rest.turns.every((t) => t.response.status === 200)).toBe(true);
      const echoes = fake.echoes.slice(echoesBefore);
      expect(echoes.length).toBeGreaterThanOrEqual(2);
      expect(echoes.every((e) => e.exact)).toBe(true);
      expect(h.proxy.counters.retries).toBe(0);
      expect(h.proxy.counters.placeholders).toBe(0);
      agent.destroy();
      await h.stop();
    } finally {
      await fake.close();
      rmSync(certsDir, { recursive: true, force: true });
    }
  });

  it('counts hits, injects and learned entries on /health', async () => {
    const fake = await startFakeMimo({ toolRounds: 2 });
    const h = await startHarness([...upstreamArgs(fake), '--no-persist']);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      await runConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-count', stream: false });
      const health = (await request(`${h.proxy.url}/health`, { agent: new http.Agent() })).json();
      expect(health.counters.injected).toBe(3);
      expect(health.counters.rewrittenRequests).toBe(2);
      expect(health.cache.hits).toBeGreaterThanOrEqual(3);
      expect(health.cache.entries).toBeGreaterThan(0);
      const rewriteLines = h.logLines.filter((l) => l.includes('rewrote request surface=chat'));
      expect(rewriteLines).toHaveLength(2);
      expect(h.logLines.join('')).not.toMatch(/sk-count|北京|晴/);
    } finally {
      agent.destroy();
      await h.stop();
      await fake.close();
    }
  });
});
