/**
 * The fake MiMo upstream, talked to directly with Node's https (no proxy):
 * integration tests lean on it to enforce MiMo's rule, so it must enforce it.
 */
import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';
import zlib from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ORPHAN_TOOL_ERROR_BODY, REASONING_ERROR_BODY, startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { makeTestCa } from '../support/pki.js';
import { startTestSite } from '../support/test-site.js';

const KEY = 'sk-test-fake-0001';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json(): any;
  peer: X509Certificate | undefined;
}

function call(
  port: number,
  ca: string,
  options: { method?: string; path?: string; body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; agent?: https.Agent; servername?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        ca,
        servername: options.servername,
        method: options.method ?? (payload === undefined ? 'GET' : 'POST'),
        path: options.path ?? '/v1/chat/completions',
        agent: options.agent ?? false,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const raw = (res.socket as TLSSocket | null)?.getPeerCertificate?.()?.raw;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text), peer: raw ? new X509Certificate(raw) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A tiny SSE accumulator: folds chat.completion.chunk deltas into one message per choice. */
function foldSse(text: string): { messages: any[]; finish: (string | null)[]; usage: any; done: boolean; events: any[] } {
  const messages: any[] = [];
  const finish: (string | null)[] = [];
  const events: any[] = [];
  let usage: any;
  let done = false;
  for (const block of text.split('\n\n')) {
    if (block === '') continue;
    expect(block.startsWith('data: ')).toBe(true);
    const data = block.slice('data: '.length);
    if (data === '[DONE]') {
      done = true;
      continue;
    }
    const chunk = JSON.parse(data);
    events.push(chunk);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      const m = (messages[choice.index] ??= { role: undefined, content: null, reasoning_content: null, tool_calls: null });
      const d = choice.delta;
      if (d.role) m.role = d.role;
      if (typeof d.content === 'string') m.content = (m.content ?? '') + d.content;
      if (typeof d.reasoning_content === 'string') m.reasoning_content = (m.reasoning_content ?? '') + d.reasoning_content;
      for (const t of d.tool_calls ?? []) {
        m.tool_calls ??= [];
        const call = (m.tool_calls[t.index] ??= { id: undefined, type: undefined, function: { name: '', arguments: '' } });
        if (t.id) call.id = t.id;
        if (t.type) call.type = t.type;
        if (t.function?.name) call.function.name += t.function.name;
        if (t.function?.arguments) call.function.arguments += t.function.arguments;
      }
      if (choice.finish_reason) finish[choice.index] = choice.finish_reason;
    }
  }
  return { messages, finish, usage, done, events };
}

function toolResult(message: any): any {
  return { role: 'tool', tool_call_id: message.tool_calls[0].id, content: `{"温度":"18°C","round":${JSON.parse(message.tool_calls[0].function.arguments).round}}` };
}

describe('the fake MiMo upstream', () => {
  let fake: FakeMimo;

  beforeAll(async () => {
    fake = await startFakeMimo();
  });

  afterAll(async () => {
    await fake.close();
  });

  afterEach(() => {
    fake.options = {};
  });

  const chat = (body: unknown, extra: { headers?: Record<string, string> } = {}) => call(fake.port, fake.ca.certPem, { body, ...extra });

  it('serves a certificate from its own CA, which is not mimo-proxy, with MiMo host names', async () => {
    const res = await call(fake.port, fake.ca.certPem, { path: '/v1/models', servername: 'token-plan-cn.xiaomimimo.com' });
    expect(res.status).toBe(200);
    expect(res.peer?.checkHost('api.xiaomimimo.com')).toBe('api.xiaomimimo.com');
    expect(res.peer?.checkHost('token-plan-sgp.xiaomimimo.com')).toBeDefined();
    expect(res.peer?.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(res.peer?.issuer).not.toContain('mimo-proxy');
    expect(res.peer?.checkIssued(new X509Certificate(fake.ca.certPem))).toBe(true);
  });

  it('lists models, refuses requests without a key, and answers 404 for unknown paths', async () => {
    const models = await call(fake.port, fake.ca.certPem, { path: '/v1/models?x=1', headers: { authorization: '', 'api-key': KEY } });
    expect(models.status).toBe(200);
    expect(models.json().object).toBe('list');
    expect(models.json().data.map((m: any) => m.id)).toContain('mimo-v2.6-pro');
    expect(fake.requests.at(-1)!.path).toBe('/v1/models?x=1');
    expect(fake.requests.at(-1)!.status).toBe(200);

    const anonymous = await call(fake.port, fake.ca.certPem, { path: '/v1/models', headers: { authorization: '' } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.json().error.message).toBeTypeOf('string');

    const missing = await call(fake.port, fake.ca.certPem, { path: '/v2/nothing' });
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toBe('application/json');
  });

  it('answers invalid JSON with a 400 that is not the reasoning error, and records the bytes as sent', async () => {
    const raw = '{"messages": [ 北京';
    const res = await call(fake.port, fake.ca.certPem, { raw });
    expect(res.status).toBe(400);
    expect(res.text).not.toBe(REASONING_ERROR_BODY);
    expect(res.json().error).toBeDefined();
    const seen = fake.requests.at(-1)!;
    expect(seen.body.equals(Buffer.from(raw, 'utf8'))).toBe(true);
    expect(seen.json).toBeUndefined();
    expect(seen.status).toBe(400);
  });

  it('runs a three-round tool conversation with a client that passes reasoning back, and every echo is exact', async () => {
    const echoesBefore = fake.echoes.length;
    const messages: any[] = [{ role: 'user', content: '北京明天天气怎么样？' }];
    const names: string[] = [];
    let final: any;
    for (let round = 0; round < 5 && final === undefined; round++) {
      const res = await chat({ model: 'mimo-v2.6-pro', messages });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/json');
      const body = res.json();
      expect(body.object).toBe('chat.completion');
      expect(body.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0);
      const choice = body.choices[0];
      const message = choice.message;
      expect(message.reasoning_content).toMatch(/[\u4e00-\u9fff]/);
      if (choice.finish_reason === 'stop') {
        expect(message.tool_calls).toBeNull();
        final = message;
        break;
      }
      expect(choice.finish_reason).toBe('tool_calls');
      expect(message.tool_calls).toHaveLength(1);
      expect(message.tool_calls[0].id).toMatch(/^call_[A-Za-z0-9]{12}$/);
      expect(JSON.parse(message.tool_calls[0].function.arguments).round).toBe(round);
      expect(fake.produced.get(message.tool_calls[0].id)).toBe(message.reasoning_content);
      names.push(message.tool_calls[0].function.name);
      messages.push(message, toolResult(message));
    }
    expect(names).toEqual(['get_weather', 'read_file', 'search_web']);
    expect(final.content).toContain('北京');
    const echoes = fake.echoes.slice(echoesBefore);
    expect(echoes).toHaveLength(1 + 2 + 3);
    expect(echoes.every((e) => e.exact)).toBe(true);
    // Each reasoning is unique to its turn.
    expect(new Set(echoes.map((e) => e.produced)).size).toBe(3);
  });

  it('answers a client that drops reasoning_content with exactly MiMo\'s 400, and records the echo', async () => {
    const first = (await chat({ messages: [{ role: 'user', content: '查天气' }] })).json().choices[0].message;
    const { reasoning_content: _dropped, ...forgetful } = first;
    const echoesBefore = fake.echoes.length;
    const res = await chat({ messages: [{ role: 'user', content: '查天气' }, forgetful, toolResult(first)] });
    expect(res.status).toBe(400);
    expect(res.text).toBe(REASONING_ERROR_BODY);
    expect(fake.echoes.slice(echoesBefore)).toEqual([{ toolCallId: first.tool_calls[0].id, received: undefined, produced: first.reasoning_content, exact: false }]);

    const asNull = await chat({ messages: [{ role: 'user', content: '查天气' }, { ...first, reasoning_content: null }, toolResult(first)] });
    expect(asNull.text).toBe(REASONING_ERROR_BODY);
  });

  it('counts an empty reasoning_content as missing unless told otherwise, and skips the rule when thinking is disabled', async () => {
    const first = (await chat({ messages: [{ role: 'user', content: '查天气' }] })).json().choices[0].message;
    const history = (reasoning: unknown) => [{ role: 'user', content: '查天气' }, { ...first, reasoning_content: reasoning }, toolResult(first)];
    expect((await chat({ messages: history('') })).status).toBe(400);
    fake.options.treatEmptyAsMissing = false;
    expect((await chat({ messages: history('') })).status).toBe(200);
    fake.options.treatEmptyAsMissing = true;
    expect((await chat({ messages: history(undefined), thinking: { type: 'disabled' } })).status).toBe(200);
    // Other vendors' switches do not turn MiMo's thinking off.
    expect((await chat({ messages: history(undefined), enable_thinking: false })).status).toBe(400);
  });

  it('accepts a placeholder by default but rejects it when rejectPlaceholders is on', async () => {
    const first = (await chat({ messages: [{ role: 'user', content: '查天气' }] })).json().choices[0].message;
    const history = (reasoning: string) => [{ role: 'user', content: '查天气' }, { ...first, reasoning_content: reasoning }, toolResult(first)];
    expect((await chat({ messages: history('(调用了 get_weather)') })).status).toBe(200);
    fake.options.rejectPlaceholders = true;
    const strict = await chat({ messages: history('(调用了 get_weather)') });
    expect(strict.status).toBe(400);
    expect(strict.text).toBe(REASONING_ERROR_BODY);
    expect(fake.echoes.at(-1)).toMatchObject({ received: '(调用了 get_weather)', exact: false });
    expect((await chat({ messages: history(first.reasoning_content) })).status).toBe(200);
    expect(fake.echoes.at(-1)!.exact).toBe(true);
  });

  it('rejects a tool message whose call no longer exists, as OpenAI-compatible APIs do', async () => {
    const first = (await chat({ messages: [{ role: 'user', content: '查天气' }] })).json().choices[0].message;
    // What the "strip tool_calls" fallback sends: the tool result now points at nothing.
    const stripped = { role: 'assistant', content: '', reasoning_content: first.reasoning_content };
    const res = await chat({ messages: [{ role: 'user', content: '查天气' }, stripped, toolResult(first)] });
    expect(res.status).toBe(400);
    expect(res.text).toBe(ORPHAN_TOOL_ERROR_BODY);
    expect(res.json().error.type).toBe('invalid_request_error');
  });

  it('streams a tool call and a final answer that fold into the same messages as the JSON form', async () => {
    fake.options.reasoningChunks = 20;
    const question = { role: 'user', content: '北京明天天气怎么样？' };
    const res = await chat({ messages: [question], stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    const folded = foldSse(res.text);
    expect(folded.done).toBe(true);
    expect(res.text.endsWith('data: [DONE]\n\n')).toBe(true);
    expect(folded.usage.completion_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(folded.events.at(-1).choices).toEqual([]);
    expect(folded.finish).toEqual(['tool_calls']);
    const message = folded.messages[0];
    expect(message.role).toBe('assistant');
    expect(message.content).toBe('');
    expect(message.tool_calls).toHaveLength(1);
    const call0 = message.tool_calls[0];
    expect(call0.type).toBe('function');
    expect(call0.function.name).toBe('get_weather');
    expect(JSON.parse(call0.function.arguments)).toEqual({ city: '北京', round: 0 });
    expect(fake.produced.get(call0.id)).toBe(message.reasoning_content);

    const reasoningEvents = folded.events.filter((e) => e.choices[0]?.delta.reasoning_content !== undefined);
    expect(reasoningEvents).toHaveLength(20);
    const toolEvents = folded.events.filter((e) => e.choices[0]?.delta.tool_calls !== undefined).map((e) => e.choices[0].delta.tool_calls[0]);
    expect(toolEvents.length).toBeGreaterThanOrEqual(4);
    expect(toolEvents[0]).toMatchObject({ index: 0, id: call0.id, type: 'function', function: { name: 'get_weather', arguments: '' } });
    for (const piece of toolEvents.slice(1)) expect(Object.keys(piece).sort()).toEqual(['function', 'index']);

    // The folded message is good enough to send back: the next round is accepted and the echo exact.
    fake.options.toolRounds = 1;
    fake.options.answerChunks = 50;
    const next = await chat({ messages: [question, message, toolResult(message)], stream: true });
    expect(next.status).toBe(200);
    expect(fake.echoes.at(-1)!.exact).toBe(true);
    const answer = foldSse(next.text);
    expect(answer.finish).toEqual(['stop']);
    expect(answer.messages[0].tool_calls).toBeNull();
    expect(answer.messages[0].content).toContain('北京');
    expect(answer.events.filter((e) => e.choices[0]?.delta.content)).toHaveLength(50);
    expect(answer.usage).toBeUndefined();
  });

  it('frames the reasoning error as an SSE event when asked, keeping status 400', async () => {
    const first = (await chat({ messages: [{ role: 'user', content: '查天气' }] })).json().choices[0].message;
    const messages = [{ role: 'user', content: '查天气' }, { ...first, reasoning_content: undefined }, toolResult(first)];
    fake.options.sseFramedErrors = true;
    const framed = await chat({ messages, stream: true });
    expect(framed.status).toBe(400);
    expect(framed.text).toBe(`data: ${REASONING_ERROR_BODY}\n\n`);
    const plain = await chat({ messages });
    expect(plain.text).toBe(REASONING_ERROR_BODY);
  });

  it('honours n=2 with a distinct tool call and reasoning per choice, streamed or not', async () => {
    const json = (await chat({ messages: [{ role: 'user', content: '查天气' }], n: 2 })).json();
    expect(json.choices.map((c: any) => c.index)).toEqual([0, 1]);
    const [a, b] = json.choices.map((c: any) => c.message);
    expect(a.tool_calls[0].id).not.toBe(b.tool_calls[0].id);
    expect(a.reasoning_content).not.toBe(b.reasoning_content);
    expect(fake.produced.get(b.tool_calls[0].id)).toBe(b.reasoning_content);

    const streamed = foldSse((await chat({ messages: [{ role: 'user', content: '查天气' }], n: 2, stream: true })).text);
    expect(streamed.messages).toHaveLength(2);
    expect(streamed.finish).toEqual(['tool_calls', 'tool_calls']);
    for (const m of streamed.messages) expect(fake.produced.get(m.tool_calls[0].id)).toBe(m.reasoning_content);
    expect(streamed.messages[0].reasoning_content).not.toBe(streamed.messages[1].reasoning_content);
    // Choices interleave rather than arriving one after the other.
    const order = streamed.events.filter((e) => e.choices.length > 0).map((e) => e.choices[0].index);
    expect(order.slice(0, 4)).toEqual([0, 1, 0, 1]);
  });

  it('compresses its answers when told to (streamed flushed per event, JSON whole), whatever accept-encoding says, and records the bytes sent', async () => {
    const raw = (body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: fake.port, ca: fake.ca.certPem, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'accept-encoding': 'identity', ...headers } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.end(body);
      });
    const ask = (stream: boolean): Buffer => Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', stream, messages: [{ role: 'user', content: '天气' }] }));

    fake.options = { compress: 'br' };
    const json = await raw(ask(false));
    expect(json.status).toBe(200);
    expect(json.headers['content-encoding']).toBe('br');
    expect(json.headers['content-length']).toBeUndefined();
    expect(json.body.equals(fake.requests.at(-1)!.response!)).toBe(true);
    expect(JSON.parse(zlib.brotliDecompressSync(json.body).toString('utf8')).choices[0].message.reasoning_content).toBeTypeOf('string');

    fake.options = { compress: 'zstd', contentEncodingHeader: 'ZSTD, identity' };
    const sse = await raw(ask(true));
    expect(sse.headers['content-encoding']).toBe('ZSTD, identity');
    expect(foldSse(zlib.zstdDecompressSync(sse.body).toString('utf8')).done).toBe(true);

    fake.options = { compress: 'gzip', corruptAt: 40 };
    const corrupt = await raw(ask(false));
    expect(corrupt.body.equals(fake.requests.at(-1)!.response!)).toBe(true);
    expect(() => zlib.gunzipSync(corrupt.body)).toThrow();

    fake.options = { status: 200, statusBody: Buffer.from([0xff, 0x00, 0xfe]), statusHeaders: { 'content-encoding': 'x-foo' } };
    const given = await raw(ask(false));
    expect(given.body).toEqual(Buffer.from([0xff, 0x00, 0xfe]));
    expect(given.headers['content-encoding']).toBe('x-foo');
  });

  it('reads compressed request bodies only with acceptEncodedBodies', async () => {
    const json = JSON.stringify({ model: 'mimo-v2.6-pro', messages: [{ role: 'user', content: '天气' }] });
    const send = (body: Buffer, encoding: string): Promise<Reply> => call(fake.port, fake.ca.certPem, { raw: body, headers: { 'content-encoding': encoding } });
    expect((await send(zlib.gzipSync(json), 'gzip')).status).toBe(400);
    fake.options = { acceptEncodedBodies: true };
    for (const [encoding, body] of [['gzip', zlib.gzipSync(json)], ['deflate', zlib.deflateSync(json)], ['br', zlib.brotliCompressSync(json)], ['zstd', zlib.zstdCompressSync(json)], ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(json))]] as const) {
      const res = await send(body, encoding);
      expect(res.status, encoding).toBe(200);
      expect(fake.requests.at(-1)!.body.equals(body)).toBe(true);
    }
    expect((await send(Buffer.from(json), 'x-foo')).status).toBe(400);
  });

  it('reuses one TCP connection and one TLS session for two requests over a keep-alive agent', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const connections = fake.connections;
    const sessions = fake.tlsSessions;
    try {
      for (let i = 0; i < 2; i++) expect((await call(fake.port, fake.ca.certPem, { path: '/v1/models', agent })).status).toBe(200);
      expect(fake.connections - connections).toBe(1);
      expect(fake.tlsSessions - sessions).toBe(1);
    } finally {
      agent.destroy();
    }
    // Without an agent each request is its own connection: the counter does count.
    await call(fake.port, fake.ca.certPem, { path: '/v1/models' });
    expect(fake.connections - connections).toBe(2);
  });
});

describe('closing the fake MiMo upstream', () => {
  it('counts a client that hangs up mid-stream as an aborted response', async () => {
    const fake = await startFakeMimo({ chunkDelayMs: 10, answerChunks: 400, toolRounds: 0 });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: fake.port, ca: fake.ca.certPem, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { 'api-key': KEY } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.end(JSON.stringify({ messages: [{ role: 'user', content: '写一篇长文' }], stream: true }));
        setTimeout(() => reject(new Error('no data within 5 s')), 5000).unref();
      });
      const deadline = Date.now() + 3000;
      while (fake.abortedResponses === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(fake.abortedResponses).toBe(1);
    } finally {
      await fake.close();
    }
  });

  it('does not hang on close() while a streaming response is still open', async () => {
    const fake = await startFakeMimo({ chunkDelayMs: 50, answerChunks: 1000, toolRounds: 0 });
    let clientError: Error | undefined;
    const ended = new Promise<void>((resolve) => {
      const req = https.request({ host: '127.0.0.1', port: fake.port, ca: fake.ca.certPem, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { authorization: `Bearer ${KEY}` } }, (res) => {
        res.once('data', () => {
          void fake.close().then(() => resolve());
        });
        res.on('error', (e) => (clientError = e));
        res.resume();
      });
      req.on('error', (e) => (clientError = e));
      req.end(JSON.stringify({ messages: [{ role: 'user', content: '写一篇长文' }], stream: true }));
    });
    const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('hung'), 3000).unref());
    expect(await Promise.race([ended.then(() => 'closed'), timeout])).toBe('closed');
    await new Promise((r) => setTimeout(r, 50));
    // The stream was cut, not finished: the client saw its connection end early.
    expect(clientError).toBeDefined();
    expect(fake.requests).toHaveLength(1);
  });
});

describe('the test PKI and the unrelated test site', () => {
  it('issues leaves with one SAN per name, chained to a positive-serial CA that is not ours', () => {
    const ca = makeTestCa('unit');
    try {
      const root = new X509Certificate(ca.certPem);
      expect(root.ca).toBe(true);
      expect(root.subject).toContain('Test Public Root CA (unit)');
      expect(root.subject).not.toContain('mimo-proxy');
      const leaf = new X509Certificate(ca.issue(['example.test', '*.example.test', '127.0.0.1', '::1']).certPem);
      expect(leaf.ca).toBe(false);
      expect(leaf.checkIssued(root)).toBe(true);
      expect(leaf.verify(root.publicKey)).toBe(true);
      expect(leaf.checkHost('deep.example.test')).toBe('*.example.test');
      expect(leaf.checkIP('::1')).toBeDefined();
      expect(leaf.checkHost('other.test')).toBeUndefined();
      expect(leaf.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
      expect(Number.parseInt(leaf.serialNumber.slice(0, 2), 16)).toBeLessThan(0x80);
      expect(leaf.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    } finally {
      ca.cleanup();
    }
  });

  it('serves its page with its own certificate, which clients trusting another CA refuse', async () => {
    const site = await startTestSite();
    const other = makeTestCa('other');
    try {
      const res = await call(site.port, site.ca.certPem, { path: '/', servername: 'site.test' });
      expect(res.status).toBe(200);
      expect(res.text).toBe('hello from test-site');
      expect(res.peer?.fingerprint256).toBe(site.certFingerprint256);
      expect(res.peer?.checkHost('site.test')).toBe('site.test');
      expect(site.requests).toBe(1);
      await expect(call(site.port, other.certPem, { path: '/' })).rejects.toThrow();
    } finally {
      other.cleanup();
      await site.close();
    }
  });
});
