/**
 * Compressed traffic through the real proxy (issue "Trust", item "Compressed
 * traffic"): an upstream that compresses its answers although the proxy asks
 * for identity, and clients that compress their request bodies. The client
 * must get the compressed bytes exactly as upstream sent them, and the
 * reasoning must still be learned and put back exactly.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { foldSse, type ChatMessage } from '../support/conversation.js';
import { foldAnthropicSse, type Block, type Turn as AnthropicTurn } from '../support/anthropic-conversation.js';
import type { FakeMimo, FakeMimoOptions } from '../support/fake-mimo.js';
import { startRig, stopRig, type Harness } from '../support/harness.js';
import { CODINGS, encode } from '../support/unit.js';
import type { Coding } from '../../src/reasoning/encoding.js';
import { memoryGrowth } from '../support/net.js';
import { request, type ClientResponse, type ConnectAgent } from '../support/proxy-client.js';

const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';
const MESSAGES = 'https://api.xiaomimimo.com/anthropic/v1/messages';
const MiB = 1024 * 1024;

/** The client's own decoding of an answer (test-side, independent of src/). */
function decode(header: string | undefined, data: Buffer): Buffer {
  let out = data;
  const codings = (header ?? '').split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  for (const coding of codings.reverse()) {
    if (coding === 'gzip') out = zlib.gunzipSync(out);
    else if (coding === 'deflate') out = zlib.inflateSync(out);
    else if (coding === 'br') out = zlib.brotliDecompressSync(out);
    else if (coding === 'zstd') out = zlib.zstdDecompressSync(out);
    else throw new Error(`unknown coding ${coding}`);
  }
  return out;
}

interface Step {
  /** The request body as the client sent it. */
  sent: Buffer;
  response: ClientResponse;
  message: ChatMessage | undefined;
}

/**
 * A forgetful chat client that may compress its request bodies (`requestCoding`) and decodes
 * compressed answers itself; runs tool rounds until a final answer.
 */
async function converse(agent: ConnectAgent, ca: string, options: { key: string; stream: boolean; requestCoding?: Coding; history?: ChatMessage[]; maxRounds?: number }): Promise<{ steps: Step[]; history: ChatMessage[] }> {
  const history: ChatMessage[] = options.history ? [...options.history] : [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
  const steps: Step[] = [];
  for (let round = 0; round < (options.maxRounds ?? 8); round++) {
    const step = await sendChat(agent, ca, options, history);
    steps.push(step);
    if (!step.message) break;
    history.push({ role: 'assistant', content: step.message.content ?? '', tool_calls: step.message.tool_calls ?? null });
    const calls = step.message.tool_calls ?? [];
    if (calls.length === 0) break;
    for (const call of calls) history.push({ role: 'tool', tool_call_id: call.id, content: `{"result":"晴，25°C","call":"${call.function.name}"}` });
  }
  return { steps, history };
}

async function sendChat(agent: ConnectAgent, ca: string, options: { key: string; stream: boolean; requestCoding?: Coding }, messages: ChatMessage[]): Promise<Step> {
  const json = Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', stream: options.stream, messages }));
  const headers: Record<string, string> = { authorization: `Bearer ${options.key}` };
  if (options.requestCoding) headers['content-encoding'] = options.requestCoding;
  const sent = options.requestCoding ? encode(options.requestCoding, json) : json;
  const response = await request(CHAT, { agent, ca, headers, body: sent });
  if (response.status !== 200) return { sent, response, message: undefined };
  const text = decode(response.headers['content-encoding'], response.body).toString('utf8');
  return { sent, response, message: options.stream ? foldSse(text) : (JSON.parse(text).choices[0].message as ChatMessage) };
}

/** A history from a conversation the proxy never saw: call ids it has no reasoning for, and none in the messages. */
function forgottenHistory(padding = ''): ChatMessage[] {
  return [
    { role: 'user', content: `查天气${padding}` },
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_never_seen_by_the_proxy', type: 'function', function: { name: 'get_weather', arguments: '{"city":"北京"}' } }] },
    { role: 'tool', tool_call_id: 'call_never_seen_by_the_proxy', content: '晴' },
  ];
}

describe('answers compressed although the proxy asked for identity', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;
  const reset: FakeMimoOptions = { toolRounds: 3, rejectPlaceholders: true };

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig(reset, ['--no-persist']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options = { ...reset };
  });

  for (const coding of CODINGS) {
    for (const stream of [true, false]) {
      it(`${coding}, ${stream ? 'streamed' : 'JSON'}: the client gets the upstream's bytes exactly, and the next forgetful turn gets the exact reasoning back`, async () => {
        fake.options = { ...reset, compress: coding };
        const requestsBefore = fake.requests.length;
        const echoesBefore = fake.echoes.length;
        const retriesBefore = h.proxy.counters.retries;
        const { steps } = await converse(agent, h.proxy.ca.caPem, { key: `sk-gz-${coding}-${stream}`, stream });
        expect(steps.map((s) => s.response.status)).toEqual([200, 200, 200, 200]);
        expect(steps.at(-1)!.message!.tool_calls).toBeNull();
        const seen = fake.requests.slice(requestsBefore);
        expect(seen).toHaveLength(4);
        for (const [i, step] of steps.entries()) {
          expect(seen[i]!.headers['accept-encoding']).toBe('identity');
          expect(step.response.headers['content-encoding']).toBe(coding);
          expect(seen[i]!.response).toBeDefined();
          expect(step.response.body.equals(seen[i]!.response!)).toBe(true);
        }
        const echoes = fake.echoes.slice(echoesBefore);
        expect(echoes).toHaveLength(6);
        for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
        expect(h.proxy.counters.retries).toBe(retriesBefore);
      });
    }
  }

  it('reads a Content-Encoding list in mixed case (`GZip, identity`)', async () => {
    fake.options = { ...reset, compress: 'gzip', contentEncodingHeader: 'GZip, identity' };
    const echoesBefore = fake.echoes.length;
    const { steps } = await converse(agent, h.proxy.ca.caPem, { key: 'sk-gz-list', stream: true, maxRounds: 2 });
    expect(steps.map((s) => s.response.status)).toEqual([200, 200]);
    expect(steps[0]!.response.headers['content-encoding']).toBe('GZip, identity');
    const echoes = fake.echoes.slice(echoesBefore);
    expect(echoes).toHaveLength(1);
    expect(echoes[0]!.exact).toBe(true);
  });

  it('learns from a gzip-compressed Anthropic stream and JSON answer', async () => {
    for (const stream of [true, false]) {
      fake.options = { ...reset, compress: 'gzip' };
      const before = fake.anthropic.echoes.length;
      const key = `sk-gz-anth-${stream}`;
      const history: AnthropicTurn[] = [{ role: 'user', content: '北京今天天气怎么样？' }];
      for (let round = 0; round < 2; round++) {
        const body = JSON.stringify({ model: 'mimo-v2.6-pro', max_tokens: 1024, stream, messages: history });
        const res = await request(MESSAGES, { agent, ca: h.proxy.ca.caPem, headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body });
        expect(res.status).toBe(200);
        expect(res.body.equals(fake.requests.at(-1)!.response!)).toBe(true);
        const text = decode(res.headers['content-encoding'], res.body).toString('utf8');
        const content: Block[] = stream ? foldAnthropicSse(text) : JSON.parse(text).content;
        const tool = content.find((b) => b.type === 'tool_use')!;
        // Forgetful: the thinking block is dropped.
        history.push({ role: 'assistant', content: content.filter((b) => b.type !== 'thinking') });
        history.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: tool.id, content: '晴' }] });
      }
      const echoes = fake.anthropic.echoes.slice(before);
      expect(echoes.length).toBeGreaterThanOrEqual(1);
      for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
    }
  });

  it('an unknown coding is forwarded unchanged and not learned from', async () => {
    // The body is plain JSON, but labelled `x-foo`: the proxy must not guess.
    fake.options = { ...reset, rejectPlaceholders: false, status: 200, statusHeaders: { 'content-encoding': 'x-foo' } };
    const learnedBefore = h.proxy.counters.learned;
    const res = await request(CHAT, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-gz-unknown' }, body: '{"model":"m","messages":[]}' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('x-foo');
    expect(res.text).toBe(JSON.stringify({ error: { code: '200', message: 'fake status 200', param: '', type: 'fake_error' } }));
    expect(h.proxy.counters.learned).toBe(learnedBefore);
  });

  for (const stream of [true, false]) {
    it(`a corrupt gzip ${stream ? 'stream' : 'JSON answer'} is forwarded as sent, nothing is learned, and the proxy stays healthy`, async () => {
      fake.options = { ...reset, rejectPlaceholders: false, compress: 'gzip', corruptAt: 40 };
      const learnedBefore = h.proxy.counters.learned;
      const first = await request(CHAT, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-gz-corrupt' }, body: JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: '查天气' }] }) });
      expect(first.status).toBe(200);
      expect(first.body.equals(fake.requests.at(-1)!.response!)).toBe(true);
      expect(() => decode('gzip', first.body)).toThrow();
      expect(h.proxy.counters.learned).toBe(learnedBefore);
      expect(h.logLines.some((l) => l.includes('compressed answer not learned') && l.includes('reason=invalid'))).toBe(true);

      // The call it made is unknown to the proxy: the next forgetful turn gets a placeholder.
      const call = [...fake.produced.keys()].at(-1)!;
      fake.options = { ...reset, rejectPlaceholders: false };
      const placeholdersBefore = h.proxy.counters.placeholders;
      const history: ChatMessage[] = [
        { role: 'user', content: '查天气' },
        { role: 'assistant', content: '', tool_calls: [{ id: call, type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: call, content: '晴' },
      ];
      const next = await sendChat(agent, h.proxy.ca.caPem, { key: 'sk-gz-corrupt', stream: false }, history);
      expect(next.response.status).toBe(200);
      expect(h.proxy.counters.placeholders).toBe(placeholdersBefore + 1);
      const health = (await request(`${h.proxy.url}/health`, { agent: new http.Agent() })).json();
      expect(health.ok).toBe(true);
    });
  }
});

describe('a gzip bomb from upstream', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;
  // 50 MB of zeros, compressed: about 50 KB on the wire.
  const bomb = zlib.gzipSync(Buffer.alloc(50 * 1000 * 1000), { level: 9 });

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({}, ['--no-persist', '--max-body', '4MiB']));
  });
  afterAll(() => stopRig({ fake, h, agent }));

  for (const type of ['application/json', 'text/event-stream']) {
    it(`(${type}) is forwarded byte for byte; decoding stops at its bound and memory stays flat`, async () => {
      fake.options = { status: 200, statusBody: bomb, statusHeaders: { 'content-type': type, 'content-encoding': 'gzip' } };
      const learnedBefore = h.proxy.counters.learned;
      const linesBefore = h.logLines.length;
      const memory = memoryGrowth(50);
      let res: ClientResponse;
      let growth: { rss: number; live: number };
      const started = performance.now();
      try {
        res = await request(CHAT, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-gz-bomb' }, body: '{"model":"m","messages":[]}' });
      } finally {
        growth = memory.stop();
      }
      const ms = performance.now() - started;
      expect(res.status).toBe(200);
      expect(res.body.equals(bomb)).toBe(true);
      expect(h.proxy.counters.learned).toBe(learnedBefore);
      const lines = h.logLines.slice(linesBefore);
      if (type === 'application/json') expect(lines.some((l) => l.includes('compressed answer not learned') && l.includes('reason=too-large'))).toBe(true);
      console.log(`gzip bomb (${type}): rss +${(growth.rss / MiB).toFixed(1)} MiB, live +${(growth.live / MiB).toFixed(1)} MiB, answered in ${ms.toFixed(0)} ms (printed, not asserted)`);
      // The proxy, the fake and the client share this process; 50 MB decoded in full would show here.
      expect(growth.rss).toBeLessThan(40 * MiB);
      expect(growth.live).toBeLessThan(40 * MiB);
    });
  }
});

describe('request bodies the client compressed', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;
  const reset: FakeMimoOptions = { toolRounds: 3, rejectPlaceholders: true, acceptEncodedBodies: true };

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig(reset, ['--no-persist', '--max-body', '64KiB']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options = { ...reset };
  });

  for (const coding of CODINGS) {
    it(`${coding}: a forgetful client gets 200 every turn and the exact reasoning is put back; unchanged bodies go as sent, rewritten ones as identity`, async () => {
      const requestsBefore = fake.requests.length;
      const echoesBefore = fake.echoes.length;
      const { steps } = await converse(agent, h.proxy.ca.caPem, { key: `sk-req-${coding}`, stream: true, requestCoding: coding });
      expect(steps.map((s) => s.response.status)).toEqual([200, 200, 200, 200]);
      const echoes = fake.echoes.slice(echoesBefore);
      expect(echoes).toHaveLength(6);
      for (const echo of echoes) expect(echo.exact, JSON.stringify(echo)).toBe(true);
      const seen = fake.requests.slice(requestsBefore);
      expect(seen).toHaveLength(4);
      // The first turn needs nothing put back: the client's compressed bytes and headers, untouched.
      expect(seen[0]!.body.equals(steps[0]!.sent)).toBe(true);
      expect(seen[0]!.headers['content-encoding']).toBe(coding);
      expect(seen[0]!.headers['content-length']).toBe(String(steps[0]!.sent.length));
      // Later turns were rewritten: plain JSON, no Content-Encoding, the right length.
      for (const record of seen.slice(1)) {
        expect(record.headers['content-encoding']).toBeUndefined();
        expect(record.headers['content-length']).toBe(String(record.body.length));
        expect(JSON.parse(record.body.toString('utf8')).messages.length).toBeGreaterThan(1);
      }
    });
  }

  it('a retry after a compressed request goes upstream as identity', async () => {
    // A call the fake made under another key: the proxy has no reasoning for it under this one,
    // so it sends a placeholder, which the fake refuses; the retry flattens the exchange.
    const origin = await sendChat(agent, h.proxy.ca.caPem, { key: 'sk-req-retry-origin', stream: false }, [{ role: 'user', content: '查天气' }]);
    const call = origin.message!.tool_calls![0]!;
    const history: ChatMessage[] = [{ role: 'user', content: '查天气' }, { role: 'assistant', content: '', tool_calls: [call] }, { role: 'tool', tool_call_id: call.id, content: '晴' }];
    const retriesBefore = h.proxy.counters.retries;
    const requestsBefore = fake.requests.length;
    const step = await sendChat(agent, h.proxy.ca.caPem, { key: 'sk-req-retry', stream: false, requestCoding: 'gzip' }, history);
    expect(step.response.status).toBe(200);
    expect(h.proxy.counters.retries).toBe(retriesBefore + 1);
    const [first, retry] = fake.requests.slice(requestsBefore);
    expect(first!.status).toBe(400);
    expect(first!.headers['content-encoding']).toBeUndefined();
    expect(retry!.status).toBe(200);
    expect(retry!.headers['content-encoding']).toBeUndefined();
    expect(retry!.headers['content-length']).toBe(String(retry!.body.length));
    expect(retry!.json).toBeDefined();
  });

  it('a corrupt gzip body arrives upstream byte for byte', async () => {
    const sent = encode('gzip', Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', messages: forgottenHistory() })));
    sent[Math.floor(sent.length / 2)]! ^= 0xff;
    const skippedBefore = h.proxy.counters.skippedBodies;
    const res = await request(CHAT, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-req-corrupt', 'content-encoding': 'gzip' }, body: sent });
    expect(res.status).toBe(400);
    const seen = fake.requests.at(-1)!;
    expect(seen.body.equals(sent)).toBe(true);
    expect(seen.headers['content-encoding']).toBe('gzip');
    expect(seen.headers['content-length']).toBe(String(sent.length));
    expect(h.proxy.counters.skippedBodies).toBe(skippedBefore + 1);
    const health = (await request(`${h.proxy.url}/health`, { agent: new http.Agent() })).json();
    expect(health.ok).toBe(true);
  });

  it('a body larger than --max-body once decoded is forwarded unchanged', async () => {
    // About 300 KB of JSON that gzip makes a few KB: under --max-body on the wire, over it decoded.
    const json = Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', messages: forgottenHistory('天气'.repeat(50_000)) }));
    const sent = encode('gzip', json);
    expect(sent.length).toBeLessThan(64 * 1024);
    expect(json.length).toBeGreaterThan(64 * 1024);
    const linesBefore = h.logLines.length;
    const res = await request(CHAT, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-req-large', 'content-encoding': 'gzip' }, body: sent });
    // Nothing was put back, so the fake refuses it.
    expect(res.status).toBe(400);
    const seen = fake.requests.at(-1)!;
    expect(seen.body.equals(sent)).toBe(true);
    expect(seen.headers['content-encoding']).toBe('gzip');
    expect(h.logLines.slice(linesBefore).some((l) => l.includes('compressed request body over --max-body once decoded'))).toBe(true);
  });

  it('a body with an unknown coding is not parsed, even when it looks like JSON', async () => {
    const sent = Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', messages: forgottenHistory() }));
    fake.options = { ...reset, rejectPlaceholders: false, acceptEncodedBodies: false };
    const res = await request(CHAT, { agent, ca: h.proxy.ca.caPem, headers: { authorization: 'Bearer sk-req-unknown', 'content-encoding': 'x-foo' }, body: sent });
    expect(res.status).toBe(400);
    const seen = fake.requests.at(-1)!;
    expect(seen.body.equals(sent)).toBe(true);
    expect(seen.headers['content-encoding']).toBe('x-foo');
  });
});
