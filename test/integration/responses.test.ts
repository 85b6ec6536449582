/**
 * The Responses API surface end to end: forgetful Responses clients (they
 * drop reasoning items and keep function_call items, as Codex does with a
 * reasoning item that has no summary), through the real proxy, against the
 * fake MiMo's /v1/responses, which knows the exact reasoning item it produced
 * for every call_id and (with rejectPlaceholders) accepts nothing else.
 */
import { rmSync } from 'node:fs';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo } from '../support/fake-mimo.js';
import { startHarness, startRig, stopRig, tempDir, upstreamArgs, type Rig } from '../support/harness.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { runResponsesConversation, sendResponses, type Item } from '../support/responses-conversation.js';

const URL_ = 'https://api.xiaomimimo.com/v1/responses';

describe('the Responses surface', () => {
  let rig: Rig;
  const sent = (): Item => rig.fake.requests.at(-1)!.json as Item;

  beforeAll(async () => {
    rig = await startRig({ toolRounds: 3, rejectPlaceholders: true }, ['--no-persist']);
  });
  afterAll(() => stopRig(rig));
  afterEach(() => {
    rig.fake.options.rejectPlaceholders = true;
    rig.fake.options.sseFramedErrors = false;
    rig.fake.options.responses = {};
    rig.fake.options.compress = undefined;
  });

  const shapes = [
    { summary: 'absent', encrypted: false },
    { summary: 'empty', encrypted: false },
    { summary: 'text', encrypted: true },
  ] as const;
  for (const stream of [false, true]) {
    for (const shape of shapes) {
      it(`a forgetful client runs 3 rounds ${stream ? 'streamed' : 'not streamed'} (reasoning items with summary ${shape.summary}${shape.encrypted ? ', encrypted_content' : ''}): every request 200, the exact items come back`, async () => {
        const { fake, h, agent } = rig;
        fake.options.responses = { ...shape };
        const before = fake.responses.echoes.length;
        const injected = h.proxy.counters.injected;
        const { turns } = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: `sk-resp-${stream}-${shape.summary}`, stream });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        const echoes = fake.responses.echoes.slice(before);
        expect(echoes).toHaveLength(6); // 1 + 2 + 3 function calls sent back
        for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
        expect(h.proxy.counters.injected - injected).toBe(6);
        // Put back as the upstream produced it: no status, and summary / encrypted_content only when it sent them.
        const reasoning = (sent().input as Item[]).filter((item) => item.type === 'reasoning');
        expect(reasoning).toHaveLength(3);
        for (const item of reasoning) {
          expect(item.status).toBeUndefined();
          expect('summary' in item).toBe(shape.summary !== 'absent');
          expect('encrypted_content' in item).toBe(shape.encrypted);
          const produced = [...fake.responses.produced.values()].find((p) => p.id === item.id);
          expect(item).toEqual(produced);
        }
      });
    }
  }

  it('leaves a client that keeps its reasoning items untouched, byte for byte', async () => {
    const { fake, h, agent } = rig;
    fake.options.responses = { summary: 'empty' };
    const { history } = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-keeper', stream: true, forgetful: false, maxRounds: 2 });
    expect(history.filter((item) => item.type === 'reasoning')).toHaveLength(2);
    const body = JSON.stringify({ model: 'mimo-v2.6-pro', input: history, stream: false }, null, 2);
    const before = fake.requests.length;
    const rewritten = h.proxy.counters.rewrittenRequests;
    const res = await request(URL_, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-resp-keeper' }, body });
    expect(res.status).toBe(200);
    expect(fake.requests[before]!.body.toString('utf8')).toBe(body);
    expect(h.proxy.counters.rewrittenRequests).toBe(rewritten);
  });

  it('degrades a conversation it never saw: a placeholder item the upstream accepts, or, when refused, one retry that flattens', async () => {
    const { fake, h, agent } = rig;
    const alice = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-alice', stream: false, maxRounds: 2 });
    expect(alice.turns.map((t) => t.response.status)).toEqual([200, 200]);
    const produced = [...fake.responses.produced.values()].map((item) => JSON.stringify(item.content));

    // Another key: Alice's reasoning is not Bob's to get. A lenient upstream takes the placeholder.
    fake.options.rejectPlaceholders = false;
    const lenient = await sendResponses({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-bob', stream: false }, alice.history);
    expect(lenient.response.status).toBe(200);
    const placed = (sent().input as Item[]).filter((item) => item.type === 'reasoning');
    expect(placed).toEqual([
      { type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: expect.stringMatching(/^Reasoning for step 1 was not kept; this step called shell\.$/) }] },
      { type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: expect.stringMatching(/^Reasoning for step 2 was not kept; this step called read_file\.$/) }] },
    ]);

    // A strict upstream refuses the placeholder (DeepSeek's wording); the retry flattens, the client sees one 200.
    fake.options.rejectPlaceholders = true;
    const retries = h.proxy.counters.retries;
    const requests = fake.requests.length;
    const strict = await sendResponses({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-carol', stream: true }, alice.history);
    expect(strict.response.status).toBe(200);
    expect(h.proxy.counters.retries - retries).toBe(1);
    expect(fake.requests.slice(requests).map((r) => r.status)).toEqual([400, 200]);
    const flat = sent().input as Item[];
    expect(flat.filter((item) => ['reasoning', 'function_call', 'function_call_output'].includes(item.type))).toEqual([]);
    const text = JSON.stringify(flat);
    expect(text).toContain('The tool shell was called with arguments');
    expect(text).toContain('ok: shell 读到 3 个文件');
    for (const content of produced) expect(text).not.toContain(content);
  });

  it('retries on the rejection framed as SSE events (error, response.failed) in MiMo wording too', async () => {
    const { fake, h, agent } = rig;
    const dave = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-dave', stream: true, maxRounds: 2 });
    fake.options.sseFramedErrors = true;
    fake.options.responses = { rejection: 'mimo' };
    const retries = h.proxy.counters.retries;
    const other = await sendResponses({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-erin', stream: true }, dave.history);
    expect(other.response.status).toBe(200);
    expect(h.proxy.counters.retries - retries).toBe(1);
  });

  it('mixed input: messages, two calls of one output, and a call from an output it never saw: each run gets its own', async () => {
    const { fake, h, agent } = rig;
    fake.options.responses = { callsPerOutput: 2 };
    const { turns, history } = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-mixed', stream: true, maxRounds: 2 });
    expect(turns.map((t) => t.response.status)).toEqual([200, 200]);
    // A call from another output (another client, before the proxy ran), with a user message around it.
    const foreign: Item[] = [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: '再看一下 README。' }] },
      { type: 'function_call', call_id: 'call_foreign_1', name: 'read_file', arguments: '{"path":"README.md"}' },
      { type: 'function_call_output', call_id: 'call_foreign_1', output: '# demo' },
    ];
    fake.options.rejectPlaceholders = false;
    const before = fake.responses.echoes.length;
    const res = await sendResponses({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-mixed', stream: false }, [...history, ...foreign]);
    expect(res.response.status).toBe(200);
    const echoes = fake.responses.echoes.slice(before);
    // 2 + 2 calls of the conversation's two outputs, each with the exact item; the foreign call with a placeholder.
    expect(echoes.map((e) => e.exact)).toEqual([true, true, true, true, false]);
    expect(echoes[4]!.received).toEqual([{ type: 'reasoning', summary: [], content: [{ type: 'reasoning_text', text: 'Reasoning for step 3 was not kept; this step called read_file.' }] }]);
    const input = sent().input as Item[];
    // The messages and outputs stay where they were; a reasoning item goes in before each run.
    expect(input.map((item) => item.type)).toEqual([
      'message', 'reasoning', 'function_call', 'function_call', 'function_call_output', 'function_call_output',
      'reasoning', 'function_call', 'function_call', 'function_call_output', 'function_call_output',
      'message', 'reasoning', 'function_call', 'function_call_output',
    ]);
  });

  it('passes previous_response_id requests and tools the upstream refuses through untouched', async () => {
    const { fake, h, agent } = rig;
    const bodies = [
      JSON.stringify({ model: 'mimo-v2.6-pro', previous_response_id: 'resp_abc', input: [{ type: 'function_call_output', call_id: 'call_x', output: 'ok' }] }),
      JSON.stringify({ model: 'mimo-v2.6-pro', input: 'hi', tools: [{ type: 'web_search' }, { type: 'custom', name: 'apply_patch' }] }),
    ];
    for (const body of bodies) {
      const before = fake.requests.length;
      const res = await request(URL_, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-resp-pass' }, body });
      expect(res.status).toBe(400);
      expect(res.json().error.code).toBe('responses_feature_not_supported');
      expect(fake.requests[before]!.body.toString('utf8')).toBe(body);
    }
  });

  it('forwards hostile input as sent and serves on: items of every wrong type, a huge call, numbers kept exactly', async () => {
    const { fake, h, agent } = rig;
    const hostile = [
      { input: [null, 5, 'x', [], { type: 7 }, { type: 'function_call' }, { type: 'function_call_output' }, { type: 'reasoning', content: 'not a list' }] },
      { input: { type: 'message' } },
      { input: [{ type: 'function_call', call_id: 12, name: { evil: true }, arguments: { big: 12345678901234567890 } }, { type: 'item_reference', id: 'x' }] },
    ];
    for (const extra of hostile) {
      const body = `{"model":"mimo-v2.6-pro","n":1e400,${JSON.stringify(extra).slice(1)}`;
      const before = fake.requests.length;
      const res = await request(URL_, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-resp-hostile' }, body });
      expect(res.status).toBeGreaterThanOrEqual(200);
      const arrived = fake.requests[before]!.body.toString('utf8');
      // Rewritten or not, the exact numbers arrive as sent.
      expect(arrived).toContain('1e400');
      if (body.includes('12345678901234567890')) expect(arrived).toContain('12345678901234567890');
    }
    const health = await request(`${h.proxy.url}/health`, { agent: new http.Agent() });
    expect(health.status).toBe(200);
  });

  for (const coding of ['gzip', 'br'] as const) {
    it(`learns from ${coding} answers the upstream compresses anyway, streamed and not`, async () => {
      const { fake, h, agent } = rig;
      fake.options.compress = coding;
      for (const stream of [true, false]) {
        const before = fake.responses.echoes.length;
        const { turns } = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: `sk-resp-${coding}-${stream}`, stream });
        expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
        expect(fake.requests.at(-1)!.response!.length).toBeGreaterThan(0);
        expect(fake.responses.echoes.slice(before).map((e) => e.exact)).toEqual(Array(6).fill(true));
      }
    });
  }

  it('puts back the exact items in a body over 1 MiB (rewritten off the event loop)', async () => {
    const { fake, h, agent } = rig;
    const big = [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: `请看这份日志：${'日志行 '.repeat(200_000)}` }] }];
    const before = fake.responses.echoes.length;
    const { turns } = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-big', stream: true, history: big });
    expect(fake.requests.at(-1)!.body.length).toBeGreaterThan(1024 * 1024);
    expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
    expect(fake.responses.echoes.slice(before).map((e) => e.exact)).toEqual(Array(6).fill(true));
  });

  it('serves the Responses surface in direct mode too', async () => {
    const { fake, h } = rig;
    const plain = new http.Agent({ keepAlive: true });
    const before = fake.responses.echoes.length;
    const { turns } = await runResponsesConversation({ url: `${h.proxy.url}/v1/responses`, agent: plain, key: 'sk-resp-direct', stream: true });
    expect(turns.map((t) => t.response.status)).toEqual([200, 200, 200, 200]);
    expect(fake.responses.echoes.slice(before).every((e) => e.exact)).toBe(true);
    expect(fake.requests.at(-1)!.path).toBe('/v1/responses');
    plain.destroy();
  });
});

describe('the Responses surface across a restart', () => {
  it('continues a conversation with its exact reasoning items after the proxy restarts', async () => {
    const fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    const certsDir = tempDir('resp-restart');
    try {
      let h = await startHarness(upstreamArgs(fake), { certsDir });
      let agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const part = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-restart', stream: true, maxRounds: 2 });
      expect(part.turns.map((t) => t.response.status)).toEqual([200, 200]);
      agent.destroy();
      await h.stop();

      h = await startHarness(upstreamArgs(fake), { certsDir });
      agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      const before = fake.responses.echoes.length;
      const rest = await runResponsesConversation({ url: URL_, agent, ca: h.proxy.ca.caPem, key: 'sk-resp-restart', stream: false, history: part.history });
      expect(rest.turns.map((t) => t.response.status)).toEqual([200, 200]);
      expect(fake.responses.echoes.slice(before).map((e) => e.exact)).toEqual(Array(5).fill(true));
      expect(h.proxy.counters.retries).toBe(0);
      agent.destroy();
      await h.stop();
    } finally {
      await fake.close();
      rmSync(certsDir, { recursive: true, force: true });
    }
  });
});

describe('the Responses surface when the upstream stalls mid-stream', () => {
  it('ends the stream with a response.failed event that carries the reason (what Codex reports), and serves on', async () => {
    const rig = await startRig({ toolRounds: 3, stallAfterEvents: 4 }, ['--no-persist', '--timeout', '1s']);
    try {
      const res = await sendResponses({ url: URL_, agent: rig.agent, ca: rig.h.proxy.ca.caPem, key: 'sk-resp-stall', stream: true }, 'hi').catch((err: Error) => err);
      expect(res).toBeInstanceOf(Error);
      expect((res as Error).message).toMatch(/^stream error: .*"type":"response.failed".*timed out/);
      rig.fake.options.stallAfterEvents = undefined;
      const next = await sendResponses({ url: URL_, agent: rig.agent, ca: rig.h.proxy.ca.caPem, key: 'sk-resp-stall', stream: true }, 'hi');
      expect(next.response.status).toBe(200);
    } finally {
      await stopRig(rig);
    }
  });
});
