/**
 * The Responses surface against a hostile upstream and hostile clients, with
 * the compiled CLI in its own process (a crash ends it; the test sees that):
 * an HTTPS upstream that answers each request with the next scripted answer,
 * byte for byte (events out of order, duplicated, at wrong output indexes,
 * streams without response.completed or ending in response.failed /
 * response.incomplete, cut mid-event, reasoning 400s in shapes the proxy
 * knows and one it does not). Each answer must reach the client exactly as
 * sent, and only a complete answer may be learned from: the next request of
 * that conversation gets the exact item back, or else a placeholder.
 */
import { readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/harness.js';
import { makeTestCa, type TestCa } from '../support/pki.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { spawnProxy, type ProxyProcess } from '../support/proxy-process.js';

const URL_ = 'https://api.xiaomimimo.com/v1/responses';
type Json = Record<string, any>;

interface Answer {
  status: number;
  contentType: string;
  body: Buffer;
  /** Destroy the connection after the body instead of ending it (a cut stream). */
  cut?: boolean;
}

interface Upstream {
  port: number;
  ca: TestCa;
  queue: Answer[];
  received: Json[];
  close(): Promise<void>;
}

/** An upstream answering each request with the next queued answer (200 with an empty completed response when none). */
async function startUpstream(): Promise<Upstream> {
  const ca = makeTestCa('hostile-responses');
  const leaf = ca.issue(['api.xiaomimimo.com', 'localhost', '127.0.0.1']);
  const sockets = new Set<Socket>();
  const up: Upstream = { port: 0, ca, queue: [], received: [], close: async () => undefined };
  const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      up.received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
      const answer = up.queue.shift() ?? json(200, { id: 'resp_x', object: 'response', status: 'completed', output: [] });
      res.writeHead(answer.status, answer.cut ? { 'content-type': answer.contentType } : { 'content-type': answer.contentType, 'content-length': answer.body.length });
      if (answer.cut) res.write(answer.body, () => res.destroy());
      else res.end(answer.body);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.port = (server.address() as AddressInfo).port;
  up.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    ca.cleanup();
  };
  return up;
}

function json(status: number, value: unknown): Answer {
  return { status, contentType: 'application/json', body: Buffer.from(JSON.stringify(value)) };
}

function sse(events: readonly Json[], tail = ''): Answer {
  const text = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join('') + tail;
  return { status: 200, contentType: 'text/event-stream', body: Buffer.from(text) };
}

/** One output: a reasoning item (no summary: the shape Codex drops) and a function call, unique per tag. */
function output(tag: string): { reasoning: Json; call: Json } {
  return {
    reasoning: { id: `rs_${tag}`, type: 'reasoning', content: [{ type: 'reasoning_text', text: `思考 ${tag}：先读文件。` }] },
    call: { id: `fc_${tag}`, type: 'function_call', call_id: `call_${tag}`, name: 'read_file', arguments: JSON.stringify({ path: `${tag}.ts` }) },
  };
}

/** The events of that output, as OpenAI streams them. */
function events(tag: string): Json[] {
  const { reasoning, call } = output(tag);
  const text = reasoning.content[0].text as string;
  return [
    { type: 'response.created', response: { id: `resp_${tag}`, status: 'in_progress', output: [] } },
    { type: 'response.output_item.added', output_index: 0, item: { ...reasoning, content: [], status: 'in_progress' } },
    { type: 'response.reasoning_text.delta', item_id: reasoning.id, output_index: 0, content_index: 0, delta: text.slice(0, 3) },
    { type: 'response.reasoning_text.delta', item_id: reasoning.id, output_index: 0, content_index: 0, delta: text.slice(3) },
    { type: 'response.reasoning_text.done', item_id: reasoning.id, output_index: 0, content_index: 0, text },
    { type: 'response.output_item.done', output_index: 0, item: { ...reasoning, status: 'completed' } },
    { type: 'response.output_item.added', output_index: 1, item: { ...call, arguments: '', status: 'in_progress' } },
    { type: 'response.function_call_arguments.delta', item_id: call.id, output_index: 1, delta: call.arguments },
    { type: 'response.output_item.done', output_index: 1, item: { ...call, status: 'completed' } },
    { type: 'response.completed', response: { id: `resp_${tag}`, status: 'completed', output: [{ ...reasoning, status: 'completed' }, { ...call, status: 'completed' }] } },
  ];
}

const without = (list: Json[], type: string): Json[] => list.filter((e) => e.type !== type);
const reasoningDeltasAt = (list: Json[], index: number): Json[] => list.map((e) => (e.type === 'response.reasoning_text.delta' ? { ...e, output_index: index } : e));

describe('the Responses surface against a hostile upstream (the CLI in its own process)', () => {
  let up: Upstream;
  let proxy: ProxyProcess;
  let agent: ConnectAgent;
  let certs: string;
  let proxyCa: string;

  beforeAll(async () => {
    up = await startUpstream();
    certs = tempDir('responses-hostile');
    proxy = await spawnProxy(['--certs', certs, '--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${up.port}`, '--upstream-ca', up.ca.certPath]);
    proxyCa = readFileSync(path.join(certs, 'ca.pem'), 'utf8');
    agent = new ConnectAgent({ host: '127.0.0.1', port: proxy.port });
  });
  afterAll(async () => {
    agent?.destroy();
    await proxy?.stop();
    await up?.close();
    rmSync(certs, { recursive: true, force: true });
  });

  const send = (key: string, input: unknown, stream: boolean, extra: Json = {}) =>
    request(URL_, { agent, ca: proxyCa, headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ model: 'mimo-v2.6-pro', stream, input, ...extra }) });
  const question = (tag: string): Json => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: `任务 ${tag}` }] });

  /** The first request answered with `answer`; then the forgetful client's next request: the reasoning items the upstream got. */
  async function scenario(tag: string, answer: Answer): Promise<{ relayed: Buffer; status: number; sentBack: Json[] }> {
    const key = `sk-hostile-${tag}`;
    up.queue.push(answer);
    let relayed: Buffer;
    let status: number;
    try {
      const first = await send(key, [question(tag)], answer.contentType === 'text/event-stream');
      relayed = first.body;
      status = first.status;
    } catch {
      // A cut stream may end the client's response with an error.
      relayed = Buffer.alloc(0);
      status = -1;
    }
    const { call } = output(tag);
    const before = up.received.length;
    const next = await send(key, [question(tag), call, { type: 'function_call_output', call_id: call.call_id, output: 'export {}' }], false);
    expect(next.status).toBe(200);
    expect(proxy.alive(), proxy.log()).toBe(true);
    const input = up.received[before]!.input as Json[];
    return { relayed, status, sentBack: input.filter((item) => item.type === 'reasoning') };
  }

  const placeholder = (sentBack: Json[]): void => {
    expect(sentBack).toHaveLength(1);
    expect(sentBack[0]!.id).toBeUndefined();
    expect(sentBack[0]!.content[0].text).toMatch(/^Reasoning for step 1 was not kept; this step called read_file\.$/);
  };

  it('learns from a well-formed stream (the control), and relays it byte for byte', async () => {
    const answer = sse(events('ok'));
    const { relayed, sentBack } = await scenario('ok', answer);
    expect(relayed.equals(answer.body)).toBe(true);
    expect(sentBack).toEqual([output('ok').reasoning]);
  });

  it('learns the item as its done event gave it when events come out of order, duplicated, or at a wrong output_index', async () => {
    const base = events('odd');
    // The call's events first, then the reasoning's; every done event twice; the reasoning deltas at the call's index.
    const shuffled = reasoningDeltasAt([base[0]!, ...base.slice(6, 9), ...base.slice(1, 6), base[8]!, base[5]!, base[9]!], 1);
    const answer = sse(shuffled);
    const { relayed, sentBack } = await scenario('odd', answer);
    expect(relayed.equals(answer.body)).toBe(true);
    expect(sentBack).toEqual([output('odd').reasoning]);
  });

  for (const [name, list] of [
    ['without response.completed', without(events('nocomplete'), 'response.completed')],
    ['ending in response.failed', [...without(events('failed'), 'response.completed'), { type: 'response.failed', response: { id: 'resp_failed', status: 'failed', error: { code: 'server_error', message: 'boom' } } }]],
    ['ending in response.incomplete', [...without(events('incomplete'), 'response.completed'), { type: 'response.incomplete', response: { id: 'resp_incomplete', status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } }]],
    ['with an error event before response.completed', [...events('errored').slice(0, 9), { type: 'error', code: 'server_error', message: 'overloaded' }, events('errored')[9]!]],
  ] as const) {
    it(`relays a stream ${name} byte for byte and learns nothing from it`, async () => {
      const tag = (list[0] as Json).response.id.slice(5);
      const answer = sse(list as Json[]);
      const { relayed, sentBack } = await scenario(tag, answer);
      expect(relayed.equals(answer.body)).toBe(true);
      placeholder(sentBack);
    });
  }

  it('a stream cut mid-event, at every kind of boundary, learns nothing and leaves the process serving', async () => {
    const cuts: ((body: Buffer) => number)[] = [() => 1, (b) => b.indexOf('\n\n') + 1, (b) => Math.floor(b.length / 2), (b) => b.indexOf('response.completed') + 5, (b) => b.length - 2];
    for (const [i, cutAt] of cuts.entries()) {
      const tag = `cut${i}`;
      const body = sse(events(tag)).body;
      const { sentBack } = await scenario(tag, { status: 200, contentType: 'text/event-stream', body: body.subarray(0, cutAt(body)), cut: true });
      placeholder(sentBack);
    }
  });

  it('learns from a completed JSON response, not from an incomplete or failed one', async () => {
    const { reasoning, call } = output('jsonok');
    expect((await scenario('jsonok', json(200, { id: 'resp_1', object: 'response', status: 'completed', output: [reasoning, call] }))).sentBack).toEqual([reasoning]);
    for (const status of ['incomplete', 'failed', 'in_progress']) {
      const tag = `json${status}`;
      const parts = output(tag);
      placeholder((await scenario(tag, json(200, { id: 'resp_2', object: 'response', status, output: [parts.reasoning, parts.call] }))).sentBack);
    }
  });

  it('retries once on the reasoning 400 as SSE events, and relays a 400 in a shape it does not know as it came', async () => {
    const { call } = output('retry');
    const history = [question('retry'), call, { type: 'function_call_output', call_id: call.call_id, output: 'x' }];
    const rejection = { type: 'error', code: 'invalid_request_error', message: 'The `reasoning_text` in the thinking mode must be passed back to the API.', param: 'input' };
    up.queue.push({ status: 400, contentType: 'text/event-stream', body: Buffer.from(`event: error\ndata: ${JSON.stringify(rejection)}\n\n`) });
    let before = up.received.length;
    const retried = await send('sk-hostile-retry', history, true);
    expect(retried.status).toBe(200);
    expect(up.received.length - before).toBe(2);
    // The retry flattens the call and its output into text: no function_call is left.
    expect((up.received.at(-1)!.input as Json[]).some((item) => item.type === 'function_call')).toBe(false);

    // The same sentence in a shape no known API uses: not the rejection as far as the proxy can tell.
    const unknown = json(400, { detail: [{ loc: ['body', 'input'], msg: 'The `reasoning_text` in the thinking mode must be passed back to the API.' }] });
    up.queue.push(unknown);
    before = up.received.length;
    const relayed = await send('sk-hostile-retry', history, false);
    expect(relayed.status).toBe(400);
    expect(relayed.body.equals(unknown.body)).toBe(true);
    expect(up.received.length - before).toBe(1);
    expect(proxy.alive(), proxy.log()).toBe(true);
  });

  it('forwards hostile inputs as sent (odd items, input of the wrong type, previous_response_id "") and serves on', async () => {
    const inputs: unknown[] = [
      5,
      { type: 'message' },
      [1, 'x', null, [[{ type: 'function_call', name: 'f', arguments: '{}' }]], { call_id: 'c', name: 'f', arguments: '{}' }],
      [{ type: 'reasoning', content: null, summary: null }],
      [{ type: 'function_call_output', call_id: 'nobody', output: '孤儿' }],
      [{ type: 'message', role: 'user', content: '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000 \ud800' }],
    ];
    for (const input of inputs) {
      const before = up.received.length;
      const res = await send('sk-hostile-input', input, false);
      expect(res.status).toBe(200);
      expect(up.received[before]!.input).toEqual(input);
    }
    // Stateful: left alone, even with an empty id and a call that would otherwise get a placeholder.
    const stateful = [{ type: 'function_call', call_id: 'c1', name: 'f', arguments: '{"n":12345678901234567890}' }];
    const before = up.received.length;
    expect((await send('sk-hostile-input', stateful, false, { previous_response_id: '' })).status).toBe(200);
    expect(up.received[before]!.input).toEqual(stateful);
    expect(proxy.alive(), proxy.log()).toBe(true);
  });

  it('puts the exact item back into a 30 MB input (rewritten off the event loop), changing nothing else', async () => {
    const tag = 'huge';
    const { reasoning, call } = output(tag);
    up.queue.push(sse(events(tag)));
    expect((await send('sk-hostile-huge', [question(tag)], true)).status).toBe(200);
    const big = 'x'.repeat(30 * 1024 * 1024);
    const before = up.received.length;
    const res = await send('sk-hostile-huge', [question(tag), call, { type: 'function_call_output', call_id: call.call_id, output: big }], false);
    expect(res.status).toBe(200);
    const input = up.received[before]!.input as Json[];
    expect(input.map((item) => item.type)).toEqual(['message', 'reasoning', 'function_call', 'function_call_output']);
    expect(input[1]).toEqual(reasoning);
    expect(input[3]!.output === big).toBe(true);
    expect(proxy.alive(), proxy.log()).toBe(true);
  });
});
