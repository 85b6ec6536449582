/**
 * Hardening (issue 5): the proxy under hostile or broken peers, over real
 * sockets and real TLS. Each test names the property it proves; every loop
 * is bounded in count and time; only 127.0.0.1 is used; everything a test
 * starts, it stops.
 */
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs, resolveConfig, withEnvironment } from '../../src/cli/options.js';
import { startFakeMimo, type FakeMimo, type FakeMimoOptions } from '../support/fake-mimo.js';
import { startHarness, startRig, stopRig, tempDir, upstreamArgs, type Harness } from '../support/harness.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { memoryGrowth, rawExchange } from '../support/net.js';
import { runConversation, sendChat, type ChatMessage } from '../support/conversation.js';

const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';
const KEY = 'sk-hardening-4f1c9e';
const MiB = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll until cond() holds or ms pass; returns whether it held. */
async function until(cond: () => boolean, ms: number, every = 20): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(every);
  }
  return true;
}

// Memory is judged by liveBytes() (heap + Buffers right after a full GC): rss alone mostly
// measures garbage not yet collected when 100 MB stream through one process.
function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}


interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the response broke off instead of ending. */
  error: string | undefined;
  ms: number;
}

/** One request through a CONNECT agent; never rejects once a response started: a broken body is reported in `error`. */
function fetchRaw(agent: http.Agent, ca: string, options: { url?: string; method?: string; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<RawReply> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const u = new URL(options.url ?? CHAT);
    const req = https.request(
      {
        host: u.hostname,
        port: 443,
        path: u.pathname + u.search,
        method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
        agent,
        ca,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let settled = false;
        const done = (error: string | undefined): void => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error, ms: Date.now() - started });
        };
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(undefined));
        res.on('error', (err) => done(err.message));
        res.on('close', () => done('closed before the end'));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const chatBody = (stream: boolean, content = '北京今天天气怎么样？'): string =>
  JSON.stringify({ model: 'mimo-v2.6-pro', stream, messages: [{ role: 'user', content }] });

/** `data:` lines of an SSE body that carry an error object (what the proxy sends when upstream breaks mid-stream). */
function errorEvents(body: Buffer): unknown[] {
  return body
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('data: {') && l.includes('"error"'))
    .map((l) => JSON.parse(l.slice(6)));
}

/**
 * A CONNECT tunnel opened by hand (so headers such as Proxy-Authorization can
 * be sent), then TLS to the target through it. Resolves with the CONNECT
 * status and, on 200, the TLS socket.
 */
function connectTls(proxyPort: number, target: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; head: string; secure?: tls.TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no CONNECT answer'));
    }, 5000);
    socket.on('error', reject);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${extra}\r\n`);
    const onData = (d: Buffer): void => {
      buffered = Buffer.concat([buffered, d]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      clearTimeout(timer);
      socket.off('data', onData);
      const head = buffered.subarray(0, end).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      if (status !== 200) {
        socket.destroy();
        resolve({ status, head });
        return;
      }
      const rest = buffered.subarray(end + 4);
      if (rest.length > 0) socket.unshift(rest);
      const servername = target.replace(/:\d+$/, '');
      const secure = tls.connect({ socket, servername, ca, ALPNProtocols: ['http/1.1'] }, () => resolve({ status, head, secure }));
      secure.on('error', reject);
    };
    socket.on('data', onData);
  });
}

/** A GET over an already open (TLS) socket. */
function getOver(socket: net.Socket, host: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ createConnection: () => socket, host, path, headers: { host, ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function health(h: Harness): Promise<{ ok: boolean; counters: Record<string, number> }> {
  const agent = new http.Agent();
  try {
    return (await request(`${h.proxy.url}/health`, { agent })).json();
  } finally {
    agent.destroy();
  }
}

describe('proxy authentication (--auth)', () => {
  const USER_PASS = 'alice:pw-7Hq2-secret';
  const basic = (s: string): string => `Basic ${Buffer.from(s).toString('base64')}`;
  let fake: FakeMimo;
  let plain: http.Server;
  let plainRequests: http.IncomingHttpHeaders[];
  let h: Harness;

  beforeAll(async () => {
    fake = await startFakeMimo();
    plainRequests = [];
    plain = http.createServer((req, res) => {
      plainRequests.push(req.headers);
      res.end('plain ok');
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const plainPort = (plain.address() as net.AddressInfo).port;
    h = await startHarness([...upstreamArgs(fake), '--connect-to', `plain.xiaomimimo.com:80:127.0.0.1:${plainPort}`, '--auth', USER_PASS]);
  });
  afterAll(async () => {
    await h.stop();
    await fake.close();
    plain.closeAllConnections();
    await new Promise((r) => plain.close(r));
  });

  const wrong: Array<[string, Record<string, string>]> = [
    ['no credentials', {}],
    ['a wrong password', { 'proxy-authorization': basic('alice:nope') }],
    ['a wrong user', { 'proxy-authorization': basic('mallory:pw-7Hq2-secret') }],
    ['the right pair under another scheme', { 'proxy-authorization': `Bearer ${Buffer.from(USER_PASS).toString('base64')}` }],
    ['malformed base64', { 'proxy-authorization': 'Basic !!!not-base64' }],
    ['the right pair with a suffix', { 'proxy-authorization': basic(`${USER_PASS}x`) }],
  ];

  it('answers CONNECT with 407 and a Basic challenge, and opens nothing, for missing or wrong credentials', async () => {
    const connectsBefore = h.proxy.counters.connects;
    const fakeConnectionsBefore = fake.connections;
    for (const [why, headers] of wrong) {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      const reply = await rawExchange(h.proxy.port, `CONNECT api.xiaomimimo.com:443 HTTP/1.1\r\nHost: api.xiaomimimo.com:443\r\n${extra}\r\n`);
      expect(reply, why).toMatch(/^HTTP\/1\.1 407 /);
      expect(reply, why).toMatch(/\r\nproxy-authenticate: Basic realm="mimo-proxy"\r\n/i);
    }
    expect(h.proxy.counters.connects).toBe(connectsBefore);
    expect(fake.connections).toBe(fakeConnectionsBefore);
  }, 30_000);

  it('answers absolute-form requests with 407 and a Basic challenge, and forwards nothing, for missing or wrong credentials', async () => {
    for (const [why, headers] of wrong) {
      const res = await new Promise<http.IncomingMessage & { text: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: h.proxy.port, path: 'http://plain.xiaomimimo.com/x', agent: false, headers: { host: 'plain.xiaomimimo.com', ...headers } }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(Object.assign(res, { text })));
        });
        req.on('error', reject);
        req.end();
      });
      expect(res.statusCode, why).toBe(407);
      expect(res.headers['proxy-authenticate'], why).toBe('Basic realm="mimo-proxy"');
      expect(JSON.parse(res.text).error.type).toBe('mimo_proxy_error');
    }
    expect(plainRequests).toHaveLength(0);
  }, 30_000);

  it('lets the right credentials through, intercepts, and sends the credentials no further', async () => {
    const requestsBefore = fake.requests.length;
    const { status, secure } = await connectTls(h.proxy.port, 'api.xiaomimimo.com:443', h.proxy.ca.caPem, { 'proxy-authorization': basic(USER_PASS) });
    expect(status).toBe(200);
    try {
      // The certificate is ours: the tunnel was intercepted, not passed through.
      expect(secure!.getPeerCertificate().issuer.O).toBe('mimo-proxy');
      const res = await getOver(secure!, 'api.xiaomimimo.com', '/v1/models', { authorization: `Bearer ${KEY}` });
      expect(res.status).toBe(200);
    } finally {
      secure?.destroy();
    }
    const seen = fake.requests.slice(requestsBefore);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers['proxy-authorization']).toBeUndefined();

    // Lower-case scheme is fine too (RFC 7617: the scheme is case-insensitive).
    const absolute = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: h.proxy.port, path: 'http://plain.xiaomimimo.com/ok', agent: false, headers: { host: 'plain.xiaomimimo.com', 'proxy-authorization': `basic ${Buffer.from(USER_PASS).toString('base64')}` } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(absolute).toEqual({ status: 200, text: 'plain ok' });
    expect(plainRequests).toHaveLength(1);
    expect(plainRequests[0]!['proxy-authorization']).toBeUndefined();
    const logs = h.logLines.join('');
    expect(logs).not.toContain('pw-7Hq2-secret');
    expect(logs).not.toContain(Buffer.from(USER_PASS).toString('base64'));
  }, 30_000);

  it('asks direct mode for the credentials too, and keeps the read-only pages open', async () => {
    const ask = (path: string, headers: Record<string, string>, body?: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: h.proxy.port, path, method: body ? 'POST' : 'GET', agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(body);
      });
    const chat = JSON.stringify({ model: 'mimo-v2.6-pro', messages: [{ role: 'user', content: 'hi' }] });
    const before = fake.requests.length;
    expect(await ask('/v1/chat/completions', { authorization: `Bearer ${KEY}` }, chat)).toBe(407);
    expect(await ask('/v1/models', { authorization: `Bearer ${KEY}`, 'proxy-authorization': basic('alice:nope') })).toBe(407);
    expect(fake.requests.length).toBe(before);
    expect(await ask('/v1/chat/completions', { authorization: `Bearer ${KEY}`, 'proxy-authorization': basic(USER_PASS) }, chat)).toBe(200);
    expect(fake.requests.length).toBe(before + 1);
    expect(fake.requests.at(-1)!.headers['proxy-authorization']).toBeUndefined();
    expect(await ask('/health', {})).toBe(200);
    // On the Anthropic base the 407 comes in Anthropic's error shape, challenge included.
    const plain = new http.Agent();
    const anthropic = await request(`${h.proxy.url}/anthropic/v1/messages`, { agent: plain, headers: { 'x-api-key': KEY }, body: '{}' });
    plain.destroy();
    expect(anthropic.status).toBe(407);
    expect(anthropic.headers['proxy-authenticate']).toBe('Basic realm="mimo-proxy"');
    expect(anthropic.json()).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'proxy authentication required' } });
    expect(fake.requests.length).toBe(before + 1);
  }, 30_000);

  it('refuses to start on a non-loopback address without --auth (OPEN_PROXY), and accepts that address with --auth', async () => {
    const certsDir = tempDir('open-proxy');
    try {
      for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
        const attempt = startHarness(['--host', host], { certsDir });
        await expect(attempt, host).rejects.toMatchObject({ code: 'OPEN_PROXY', name: 'MimoProxyError', hint: expect.stringContaining('--auth') });
      }
      // With --auth the configuration is accepted (not started here: tests never listen off loopback).
      expect(resolveConfig(parseArgs(['--host', '0.0.0.0', '--auth', USER_PASS]).options).host).toBe('0.0.0.0');
    } finally {
      rmSync(certsDir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('a slow reader', () => {
  const PAD = 48 * MiB;
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 0, padBytes: PAD }, ['--no-persist']));
  });
  afterAll(() => stopRig({ fake, h, agent }));

  it('holds the upstream back while the client reads 1 KB per 100 ms, then delivers every byte', async () => {
    const finishedBefore = fake.finishedResponses;
    const streamedBefore = fake.streamedBytes;
    const hash = createHash('sha256');
    let received = 0;
    const result = await new Promise<{ upstreamDuringSlowRead: number; finishedDuringSlowRead: number; end: string }>((resolve, reject) => {
      const req = https.request({ host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } }, (res) => {
        res.pause();
        const take = (chunk: Buffer | null): void => {
          if (!chunk) return;
          hash.update(chunk);
          received += chunk.length;
        };
        let ticks = 0;
        // Slow phase: about 2.5 s of 1 KB reads every 100 ms.
        const slow = setInterval(() => {
          take(res.read(1024) as Buffer | null);
          if (++ticks < 25) return;
          clearInterval(slow);
          const upstreamDuringSlowRead = fake.streamedBytes - streamedBefore;
          const finishedDuringSlowRead = fake.finishedResponses - finishedBefore;
          res.on('data', take);
          res.on('end', () => resolve({ upstreamDuringSlowRead, finishedDuringSlowRead, end: 'end' }));
          res.on('error', reject);
          res.resume();
        }, 100);
      });
      req.on('error', reject);
      req.end(chatBody(true));
    });
    // The proxy did not read the whole stream ahead of the client: upstream is held back by the
    // socket buffers (a few MB of kernel and TLS buffering), far from the 48 MiB it would send.
    expect(result.finishedDuringSlowRead).toBe(0);
    expect(result.upstreamDuringSlowRead).toBeLessThan(PAD / 2);
    const sent = fake.sentStreams.at(-1)!;
    expect(sent.complete).toBe(true);
    expect(received).toBe(sent.bytes);
    expect(received).toBeGreaterThan(PAD);
    expect(hash.digest('hex')).toBe(sent.sha256);
    expect(await until(() => fake.finishedResponses - finishedBefore === 1, 2000)).toBe(true);
  }, 60_000);

  it('lets a fast reader take the same stream in one go', async () => {
    const finishedBefore = fake.finishedResponses;
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true) });
    expect(reply.status).toBe(200);
    expect(reply.error).toBeUndefined();
    expect(reply.body.length).toBe(fake.sentStreams.at(-1)!.bytes);
    expect(sha256(reply.body)).toBe(fake.sentStreams.at(-1)!.sha256);
    expect(await until(() => fake.finishedResponses - finishedBefore === 1, 2000)).toBe(true);
    // Generous: the same 48 MiB that the slow reader held back for seconds.
    expect(reply.ms).toBeLessThan(20_000);
  }, 60_000);
});

describe('upstream faults', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 3 }, ['--no-persist', '--timeout', '500ms']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options = { toolRounds: 3 };
  });

  it('a reset mid-stream ends the client stream with an error event and caches nothing', async () => {
    fake.options = { toolRounds: 3, resetAfterEvents: 8 };
    const learnedBefore = h.proxy.counters.learned;
    const entriesBefore = h.proxy.cache.stats().entries;
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true) });
    expect(reply.status).toBe(200);
    const text = reply.body.toString('utf8');
    // A clean end with one error event the client's SSE parser reports; never a [DONE].
    expect(reply.error).toBeUndefined();
    expect(errorEvents(reply.body)).toHaveLength(1);
    expect(text).not.toContain('[DONE]');
    expect(text).toContain('reasoning_content');
    expect(fake.sentStreams.at(-1)!.complete).toBe(false);
    expect(h.proxy.counters.learned).toBe(learnedBefore);
    expect(h.proxy.cache.stats().entries).toBe(entriesBefore);
    expect((await health(h)).ok).toBe(true);
  }, 30_000);

  it('an upstream that stalls before its headers gets the client a JSON 504 after --timeout', async () => {
    fake.options = { toolRounds: 3, stallAfterEvents: 0 };
    const abortedBefore = fake.abortedResponses;
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true) });
    expect(reply.status).toBe(504);
    expect(JSON.parse(reply.body.toString('utf8')).error.type).toBe('mimo_proxy_error');
    expect(reply.ms).toBeGreaterThanOrEqual(450);
    expect(reply.ms).toBeLessThan(5000);
    // The proxy hung up on the stalled upstream (no socket left waiting on it).
    expect(await until(() => fake.abortedResponses > abortedBefore, 3000)).toBe(true);
  }, 30_000);

  it('an upstream that stalls mid-stream gets the client an error event and an end of stream after --timeout, and caches nothing', async () => {
    fake.options = { toolRounds: 3, stallAfterEvents: 6 };
    const learnedBefore = h.proxy.counters.learned;
    const abortedBefore = fake.abortedResponses;
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true) });
    expect(reply.status).toBe(200);
    expect(reply.ms).toBeLessThan(5000);
    // A clean end carrying one error event the client's SSE parser reports (not a hang, not a silent cut).
    expect(reply.error).toBeUndefined();
    const errors = errorEvents(reply.body) as Array<{ error: { type: string; message: string } }>;
    expect(errors).toHaveLength(1);
    expect(errors[0]!.error.type).toBe('mimo_proxy_error');
    expect(errors[0]!.error.message).toMatch(/timed out/);
    expect(reply.body.toString('utf8')).toContain('reasoning_content');
    expect(h.proxy.counters.learned).toBe(learnedBefore);
    expect(await until(() => fake.abortedResponses > abortedBefore, 3000)).toBe(true);
  }, 30_000);

  const statuses: Array<{ status: number; body: string; headers?: Record<string, string> }> = [
    { status: 500, body: 'Internal Server Error: 服务内部错误\n' },
    { status: 502, body: '<html><body>bad gateway</body></html>' },
    { status: 503, body: '{"error":{"code":"503","message":"服务繁忙，请稍后再试","type":"overloaded"}}' },
    { status: 429, body: '{"error":{"code":"429","message":"Rate limit reached","type":"rate_limit_error"}}', headers: { 'retry-after': '7', 'x-ratelimit-remaining-requests': '0' } },
  ];
  for (const s of statuses) {
    it(`passes a ${s.status} through with its status, headers and body unchanged, streamed or not, and does not retry it`, async () => {
      fake.options = { toolRounds: 3, status: s.status, statusBody: s.body, statusHeaders: s.headers };
      const requestsBefore = fake.requests.length;
      const retriesBefore = h.proxy.counters.retries;
      const learnedBefore = h.proxy.counters.learned;
      // A history with an unknown tool call: the proxy rewrites it, so a retry would be possible.
      const history: ChatMessage[] = [
        { role: 'user', content: '查天气' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_unknownAAAA', type: 'function', function: { name: 'get_weather', arguments: '{"city":"北京"}' } }] },
        { role: 'tool', tool_call_id: 'call_unknownAAAA', content: '晴' },
      ];
      for (const stream of [false, true]) {
        const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: JSON.stringify({ model: 'mimo-v2.6-pro', stream, messages: history }) });
        expect(reply.status).toBe(s.status);
        expect(reply.body.toString('utf8')).toBe(s.body);
        for (const [k, v] of Object.entries(s.headers ?? {})) expect(reply.headers[k]).toBe(v);
      }
      expect(fake.requests.length - requestsBefore).toBe(2);
      expect(h.proxy.counters.retries).toBe(retriesBefore);
      expect(h.proxy.counters.learned).toBe(learnedBefore);
    }, 30_000);
  }

  it('forwards invalid SSE lines byte for byte', async () => {
    fake.options = { toolRounds: 1, invalidSseLines: true };
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true) });
    expect(reply.status).toBe(200);
    expect(reply.error).toBeUndefined();
    const sent = fake.sentStreams.at(-1)!;
    expect(sent.complete).toBe(true);
    expect(reply.body.length).toBe(sent.bytes);
    expect(sha256(reply.body)).toBe(sent.sha256);
    // The junk really was there: a bare CR line end and bytes that are not UTF-8.
    expect(reply.body.includes(Buffer.from([0xff, 0xfe, 0xc3, 0x28]))).toBe(true);
    expect(reply.body.includes('[DONE-ish]\r\r')).toBe(true);
    expect((await health(h)).ok).toBe(true);
  }, 30_000);
});

describe('client faults', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig({ toolRounds: 3 }, ['--no-persist', '--max-body', '64KiB']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options = { toolRounds: 3 };
  });

  /** Sends the headers and `send` of `total` body bytes, waits for `ready`, then hangs up. */
  async function hangUpMidBody(total: number, send: number, ready: () => boolean, waitMs: number): Promise<boolean> {
    const local = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      const req = https.request({ host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent: local, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'content-length': String(total) } });
      req.on('error', () => undefined);
      req.write(`{"model":"mimo-v2.6-pro","messages":[{"role":"user","content":"${'长'.repeat(Math.floor(send / 3))}`);
      const reached = await until(ready, waitMs);
      req.destroy();
      return reached;
    } finally {
      local.destroy();
    }
  }

  it('a client that hangs up mid-body (over --max-body, so already streaming upstream) aborts the upstream request and the proxy stays healthy', async () => {
    const abortsBefore = h.proxy.counters.clientAborts;
    const upstreamAbortedBefore = fake.abortedRequests;
    const skippedBefore = h.proxy.counters.skippedBodies;
    // Past the cap the proxy forwards as it reads: wait until it has, then hang up.
    expect(await hangUpMidBody(4 * MiB, 512 * 1024, () => h.proxy.counters.skippedBodies > skippedBefore, 5000)).toBe(true);
    expect(await until(() => fake.abortedRequests > upstreamAbortedBefore, 5000)).toBe(true);
    expect(await until(() => h.proxy.counters.clientAborts > abortsBefore, 2000)).toBe(true);
    const after = await sendChat({ url: CHAT, agent, ca: h.proxy.ca.caPem, key: KEY, stream: true }, [{ role: 'user', content: '还在吗？' }]);
    expect(after.response.status).toBe(200);
  }, 30_000);

  it('a client that hangs up mid-body (under --max-body, still buffered) sends nothing upstream and the proxy stays healthy', async () => {
    const requestsBefore = fake.requests.length;
    const abortsBefore = h.proxy.counters.clientAborts;
    // Give the proxy a moment to have read the half body, then hang up.
    await hangUpMidBody(60 * 1024, 30 * 1024, () => false, 200);
    expect(await until(() => h.proxy.counters.clientAborts > abortsBefore, 3000)).toBe(true);
    // Nothing reached the fake as a request (a half body must never be sent as if whole).
    await sleep(200);
    expect(fake.requests.length).toBe(requestsBefore);
    const after = await sendChat({ url: CHAT, agent, ca: h.proxy.ca.caPem, key: KEY, stream: false }, [{ role: 'user', content: '还在吗？' }]);
    expect(after.response.status).toBe(200);
  }, 30_000);

  it('a client that hangs up mid-stream aborts the upstream response and nothing is learned', async () => {
    fake.options = { toolRounds: 3, chunkDelayMs: 20, reasoningChunks: 200 };
    const abortedBefore = fake.abortedResponses;
    const learnedBefore = h.proxy.counters.learned;
    const local = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no data')), 5000);
        const req = https.request({ host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent: local, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } }, (res) => {
          res.once('data', () => {
            clearTimeout(timer);
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.end(chatBody(true));
      });
    } finally {
      local.destroy();
    }
    expect(await until(() => fake.abortedResponses > abortedBefore, 3000)).toBe(true);
    expect(fake.sentStreams.at(-1)!.complete).toBe(false);
    expect(h.proxy.counters.learned).toBe(learnedBefore);
    expect((await health(h)).ok).toBe(true);
  }, 30_000);

  it('1,000 CONNECT / TLS / request / hang-up cycles leak no sockets or timers, and the proxy still answers', async () => {
    const LANES = 10;
    const CYCLES = 1000;
    const ca = h.proxy.ca.caPem;
    const target = 'api.xiaomimimo.com:443';

    /** One cycle; `kind` picks where the client hangs up. */
    async function cycle(kind: number): Promise<void> {
      const socket = net.connect(h.proxy.port, '127.0.0.1');
      socket.on('error', () => undefined);
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', () => resolve());
          socket.once('error', reject);
        });
        socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
        if (kind === 0) return; // gone before the answer
        const head = await new Promise<Buffer>((resolve, reject) => {
          let buf = Buffer.alloc(0);
          const onData = (d: Buffer): void => {
            buf = Buffer.concat([buf, d]);
            if (buf.includes('\r\n\r\n')) {
              socket.off('data', onData);
              resolve(buf);
            }
          };
          socket.on('data', onData);
          socket.once('close', () => reject(new Error('closed before CONNECT answer')));
        });
        expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
        if (kind === 1) return; // gone after the 200, before any TLS
        const secure = tls.connect({ socket, servername: 'api.xiaomimimo.com', ca, ALPNProtocols: ['http/1.1'] });
        secure.on('error', () => undefined);
        try {
          if (kind === 2) {
            // gone mid-handshake: the ClientHello is out, the answer is not awaited
            await new Promise((r) => setImmediate(r));
            return;
          }
          await new Promise<void>((resolve, reject) => {
            secure.once('secureConnect', () => resolve());
            secure.once('error', reject);
          });
          if (kind === 3) return; // gone right after the handshake
          const res = await getOver(secure, 'api.xiaomimimo.com', '/v1/models', { authorization: `Bearer ${KEY}` });
          expect(res.status).toBe(200);
        } finally {
          secure.destroy();
        }
      } finally {
        socket.destroy();
      }
    }

    const counts = (): Map<string, number> => {
      const m = new Map<string, number>();
      for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
      return m;
    };
    // Warm up with the same parallelism, so pools (the proxy's upstream keep-alive sockets) are at their size.
    await Promise.all(Array.from({ length: LANES }, () => cycle(4)));
    await sleep(300);
    const before = counts();
    const started = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: LANES }, async () => {
        while (next < CYCLES && Date.now() - started < 90_000) await cycle(next++ % 5);
      }),
    );
    expect(next).toBe(CYCLES);
    // Sockets close asynchronously: give the proxy a bounded moment to settle.
    const settled = await until(() => {
      const now = counts();
      return [...now].every(([type, n]) => n <= (before.get(type) ?? 0) + 3);
    }, 5000, 100);
    const after = counts();
    expect(settled, `before ${JSON.stringify([...before])} after ${JSON.stringify([...after])}`).toBe(true);
    const res = await request('https://api.xiaomimimo.com/v1/models', { agent, ca, headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
    expect((await health(h)).ok).toBe(true);
  }, 120_000);
});

describe('hostile input', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;
  const reset: FakeMimoOptions = { toolRounds: 1, digestBodies: true };

  beforeAll(async () => {
    ({ fake, h, agent } = await startRig(reset, ['--no-persist', '--max-body', '1MiB']));
  });
  afterAll(() => stopRig({ fake, h, agent }));
  afterEach(() => {
    fake.options = { ...reset };
  });

  it('forwards a 100 MB chat body past --max-body unmodified, with bounded memory', async () => {
    const CHUNK = MiB;
    const CHUNKS = 100;
    const head = Buffer.from('{"model":"mimo-v2.6-pro","messages":[{"role":"user","content":"');
    const tail = Buffer.from('"}]}');
    // One random block, base64 (valid in a JSON string), varied per chunk so no two chunks are alike.
    const block = Buffer.from(randomBytes((CHUNK * 3) / 4).toString('base64'));
    const total = head.length + CHUNK * CHUNKS + tail.length;
    const hash = createHash('sha256');
    const skippedBefore = h.proxy.counters.skippedBodies;
    // The upstream reads slower than the client writes: only backpressure keeps the proxy from holding the difference.
    fake.options = { ...reset, slowBodyMs: 5 };

    const memory = memoryGrowth(100);
    let growth: { rss: number; live: number };
    let reply: { status: number; text: string };
    try {
      reply = await new Promise((resolve, reject) => {
        const req = https.request({ host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'content-length': String(total) } }, (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', reject);
        });
        req.on('error', reject);
        const write = async (): Promise<void> => {
          const send = (b: Buffer): Promise<void> => {
            hash.update(b);
            return req.write(b) ? Promise.resolve() : new Promise((r) => req.once('drain', r));
          };
          await send(head);
          for (let i = 0; i < CHUNKS; i++) {
            const chunk = Buffer.from(block);
            chunk.write(String(i).padStart(8, '0'), 0, 'latin1');
            await send(chunk);
          }
          hash.update(tail);
          req.end(tail);
        };
        write().catch(reject);
      });
    } finally {
      growth = memory.stop();
    }
    expect(reply.status).toBe(200);
    const seen = fake.requests.at(-1)!;
    expect(seen.bytes).toBe(total);
    expect(seen.sha256).toBe(hash.digest('hex'));
    expect(seen.headers['content-length']).toBe(String(total));
    expect(h.proxy.counters.skippedBodies).toBe(skippedBefore + 1);
    // Client, proxy and fake share this process; 100 MB went through it, a few MB at a time.
    // (Without request-side backpressure the live peak is about the whole body.)
    expect(growth.live).toBeLessThan(24 * MiB);
    expect(growth.rss).toBeLessThan(100 * MiB);
  }, 120_000);

  it('forwards deeply nested JSON and bytes that are not UTF-8 exactly as sent', async () => {
    const depth = 100_000;
    const nested = '['.repeat(depth) + ']'.repeat(depth);
    const bodies: Array<[string, Buffer]> = [
      ['a bare nested array', Buffer.from(nested)],
      ['nested content', Buffer.from(`{"model":"mimo-v2.6-pro","messages":[{"role":"user","content":${nested}}]}`)],
      // A tool call lacking reasoning would get a placeholder, but a body this deep cannot be re-serialised: it goes as sent.
      ['nested content beside a tool call lacking reasoning', Buffer.from(`{"model":"mimo-v2.6-pro","messages":[{"role":"user","content":${nested}},{"role":"assistant","content":"","tool_calls":[{"id":"call_deep","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_deep","content":"好"}]}`)],
      ['invalid UTF-8 in a rewritable body', Buffer.concat([
        Buffer.from('{"model":"mimo-v2.6-pro","messages":[{"role":"user","content":"'),
        Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xe5, 0x8c]),
        Buffer.from('"},{"role":"assistant","content":"","tool_calls":[{"id":"call_x","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_x","content":"ok"}]}'),
      ])],
    ];
    for (const [why, body] of bodies) {
      const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body });
      expect(reply.status, why).toBe(200);
      const seen = fake.requests.at(-1)!;
      expect(seen.bytes, why).toBe(body.length);
      expect(seen.sha256, why).toBe(sha256(body));
    }

    // Nested tool-call arguments (a string, so the body itself is shallow): the placeholder is added, nothing else changes.
    fake.options = { toolRounds: 1 };
    const messages: ChatMessage[] = [
      { role: 'user', content: '查' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_deep', type: 'function', function: { name: 'f', arguments: nested } }] },
      { role: 'tool', tool_call_id: 'call_deep', content: '好' },
    ];
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: JSON.stringify({ model: 'mimo-v2.6-pro', messages }) });
    expect(reply.status).toBe(200);
    const received = fake.requests.at(-1)!.json as { messages: ChatMessage[] };
    expect(typeof received.messages[1]!.reasoning_content).toBe('string');
    expect(received.messages[1]!.reasoning_content!.length).toBeGreaterThan(0);
    expect(received.messages[1]!.tool_calls![0]!.function.arguments === nested).toBe(true);
    const { reasoning_content: _added, ...rest } = received.messages[1]!;
    expect([received.messages[0], rest, received.messages[2]]).toEqual(messages);
    expect((await health(h)).ok).toBe(true);
  }, 60_000);

  it('forwards a 20 MB single SSE line untouched and learns nothing from it', async () => {
    fake.options = { toolRounds: 1, hugeLineBytes: 20 * MiB };
    const learnedBefore = h.proxy.counters.learned;
    const entriesBefore = h.proxy.cache.stats().entries;
    const reply = await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true) });
    expect(reply.status).toBe(200);
    expect(reply.error).toBeUndefined();
    const sent = fake.sentStreams.at(-1)!;
    expect(sent.complete).toBe(true);
    expect(sent.bytes).toBeGreaterThan(20 * MiB);
    expect(reply.body.length).toBe(sent.bytes);
    expect(sha256(reply.body)).toBe(sent.sha256);
    // The tap gave up on the oversized line instead of holding it: nothing learned from this answer.
    expect(h.proxy.counters.learned).toBe(learnedBefore);
    expect(h.proxy.cache.stats().entries).toBe(entriesBefore);
    expect((await health(h)).ok).toBe(true);
  }, 60_000);

  it('refuses CR/LF, paths and userinfo in --connect-to, from flags and from the environment', () => {
    const bad = [
      'api.xiaomimimo.com:443:127.0.0.1\r\nX-Evil: 1:443',
      'api.xiaomimimo.com:443:127.0.0.1:443\r\n',
      'api.xiaomimimo.com:443:evil.test/path:443',
      'api.xiaomimimo.com:443:user@127.0.0.1:443',
      'api.xiaomimimo.com\r\nHost: evil.test:443:127.0.0.1:443',
      'api.xiaomimimo.com:443:127.0.0.1%0d%0a:443',
      'api.xiaomimimo.com:443:[::1\r\n]:443',
    ];
    for (const spec of bad) {
      expect(() => resolveConfig(parseArgs(['--connect-to', spec]).options), JSON.stringify(spec)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    }
    // The environment splits on whitespace: a CRLF smuggles a second, malformed rule, which is refused.
    expect(() => resolveConfig(withEnvironment({}, { MIMO_PROXY_CONNECT_TO: 'api.xiaomimimo.com:443:127.0.0.1:1\r\nX-Evil:1' }))).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
  });

  it('answers CONNECT targets carrying a path, userinfo, CR/LF or a scheme with 400 over a real socket, opening nothing', async () => {
    const tunnelledBefore = h.proxy.counters.tunnelled;
    const interceptedBefore = h.proxy.counters.intercepted;
    const connectionsBefore = fake.connections;
    const targets = [
      'api.xiaomimimo.com:443/v1/models',
      'user:pw@api.xiaomimimo.com:443',
      'api.xiaomimimo.com:443%0d%0aX-Evil:%201',
      'api.xiaomimimo.com%0d%0a:443',
      'api.xiaomimimo.com:443#frag',
      'api.xiaomimimo.com:443?x=1',
      'http://api.xiaomimimo.com:443',
      '127.0.0.1:443@api.xiaomimimo.com:443',
      'api.xiaomimimo.com:0443x',
    ];
    for (const target of targets) {
      const reply = await rawExchange(h.proxy.port, `CONNECT ${target} HTTP/1.1\r\nHost: api.xiaomimimo.com:443\r\n\r\n`);
      expect(reply, target).toMatch(/^HTTP\/1\.1 400 /);
    }
    // Raw CR or LF inside the request line or a header: the HTTP parser refuses it before any hook.
    const raw = [
      'CONNECT api.xiaomimimo.com:443\rX-Evil: 1 HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT api.xiaomimimo.com:443 HTTP/1.1\r\nHost: api.xiaomimimo.com:443\rX-Evil: 1\r\n\r\n',
      'CONNECT api.xiaomimimo.com:443\n HTTP/1.1\r\n\r\n',
    ];
    for (const bytes of raw) {
      const reply = await rawExchange(h.proxy.port, bytes);
      expect(reply, JSON.stringify(bytes)).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect(h.proxy.counters.tunnelled).toBe(tunnelledBefore);
    expect(h.proxy.counters.intercepted).toBe(interceptedBefore);
    expect(fake.connections).toBe(connectionsBefore);
    expect((await health(h)).ok).toBe(true);
  }, 30_000);
});

describe('logs', () => {
  it('never contain API keys, message text or reasoning, even at debug, through streams, errors, retries and aborts', async () => {
    const fake = await startFakeMimo({ toolRounds: 2 });
    const h = await startHarness([...upstreamArgs(fake), '--no-persist', '--timeout', '500ms']);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    const keys = ['sk-logcheck-streamed-91ab', 'sk-logcheck-plain-27cd', 'sk-logcheck-other-55ef'];
    const userText = 'Zanzibar-cormorant 紫禁城的天气';
    try {
      const history: ChatMessage[] = [{ role: 'user', content: userText }];
      const streamed = await runConversation({ url: CHAT, agent, ca: h.proxy.ca.caPem, key: keys[0]!, stream: true, history });
      const plain = await runConversation({ url: CHAT, agent, ca: h.proxy.ca.caPem, key: keys[1]!, stream: false, history });
      expect([...streamed.turns, ...plain.turns].every((t) => t.response.status === 200)).toBe(true);

      // An upstream error, passed through.
      fake.options.status = 503;
      expect((await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true, userText), headers: { authorization: `Bearer ${keys[2]}` } })).status).toBe(503);
      delete fake.options.status;

      // A reset mid-stream and a timeout: the proxy logs an upstream failure.
      fake.options.resetAfterEvents = 5;
      await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true, userText), headers: { authorization: `Bearer ${keys[2]}` } });
      delete fake.options.resetAfterEvents;
      fake.options.stallAfterEvents = 0;
      expect((await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(true, userText), headers: { authorization: `Bearer ${keys[2]}` } })).status).toBe(504);
      delete fake.options.stallAfterEvents;

      // A retry: a history the proxy never saw under this key, with a strict upstream.
      fake.options.rejectPlaceholders = true;
      const retriesBefore = h.proxy.counters.retries;
      const foreign = await sendChat({ url: CHAT, agent, ca: h.proxy.ca.caPem, key: keys[2]!, stream: true }, streamed.history.slice(0, 3));
      expect(foreign.response.status).toBe(200);
      expect(h.proxy.counters.retries).toBe(retriesBefore + 1);

      // A body that is not JSON (cut short) and a client that hangs up mid-stream: debug-level events.
      expect((await fetchRaw(agent, h.proxy.ca.caPem, { body: chatBody(false, userText).slice(0, 60) })).status).toBe(400);
      fake.options.chunkDelayMs = 20;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no data')), 5000);
        const req = https.request({ host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${keys[2]}`, 'content-type': 'application/json' } }, (res) => {
          res.once('data', () => {
            clearTimeout(timer);
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.end(chatBody(true, userText));
      });
      expect(await until(() => h.logLines.some((l) => l.includes('request ended by the client')), 3000)).toBe(true);

      const logs = h.logLines.join('');
      expect(logs).toMatch(/ DEBUG [^\n]*not rewritten/);
      expect(logs).toMatch(/upstream request failed/);
      expect(logs).toMatch(/retrying/);
      for (const key of keys) {
        expect(logs).not.toContain(key);
        expect(logs).not.toContain(key.slice(3, 15));
      }
      expect(logs).not.toMatch(/Bearer/i);
      // Message words, Chinese and English, from the user, the tools, the answers and the reasoning.
      for (const word of ['Zanzibar', 'cormorant', '紫禁城', '北京', '天气', '晴', '25°C', 'Beijing', 'sunny', '笔记', '第1步', '查询', 'get_weather', 'read_file']) {
        expect(logs, word).not.toContain(word);
      }
      for (const reasoning of fake.produced.values()) expect(logs).not.toContain(reasoning.slice(0, 12));
      // Nothing that is not ASCII at all: all message text here is Chinese or contains it.
      expect(/[^\x00-\x7f]/.test(logs)).toBe(false);
    } finally {
      agent.destroy();
      await h.stop();
      await fake.close();
    }
  }, 60_000);
});
