/**
 * Trust (network side): no single request, response or connection can end the proxy or
 * hold it forever. Hostile peers send what makes Node's HTTP layer throw (a `Trailer` on a
 * body that is not chunked, a status below 100, a protocol switch), never finish a TLS
 * handshake, pipeline requests past an upstream's `Connection: close`, or speak HTTP/1.0.
 * The proxy runs in its own process (the real CLI) wherever a crash is what could go wrong,
 * so a crash shows as an exited process. Real sockets and real TLS, loopback only, every
 * loop bounded in count and time, everything a test starts it stops.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runConversation } from '../support/conversation.js';
import { REASONING_ERROR_BODY, startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, tempDir, upstreamArgs, type Harness } from '../support/harness.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { spawnProxy, type ProxyProcess } from '../support/proxy-process.js';
import { closesWithin, connect, connectThrough, exchange, tlsThrough, type RawResponse } from '../support/raw-http.js';

const KEY = 'sk-trust-net-5d20ab';
/** Message text that must never reach a log. */
const SECRET_TEXT = 'secret-text-7c1f-weather';
const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A chat body whose history lacks reasoning on a tool call: the proxy's rewrite changes it. */
const FORGETFUL_BODY = JSON.stringify({
  model: 'mimo-v2.6-pro',
  stream: false,
  messages: [
    { role: 'user', content: `Weather in Beijing? ${SECRET_TEXT}` },
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_trust_net_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Beijing"}' } }] },
    { role: 'tool', tool_call_id: 'call_trust_net_1', content: '{"sky":"clear"}' },
  ],
});
const SIMPLE_BODY = JSON.stringify({ model: 'mimo-v2.6-pro', stream: false, messages: [{ role: 'user', content: `Hello ${SECRET_TEXT}` }] });

interface Hostile {
  plainPort: number;
  tlsPort: number;
  /** Every request received: head as text, body bytes. */
  requests: Array<{ head: string; body: Buffer }>;
  close(): Promise<void>;
}

/**
 * An upstream that misbehaves on purpose, on plain TCP and on TLS (a certificate for
 * hostile.xiaomimimo.com from `cert`). Answers by path:
 *   /trailer-response  200 with Content-Length and a Trailer header
 *   /status-099        a status Node's writeHead refuses
 *   /switch            101 Switching Protocols to a request that asked for nothing
 *   /chunked           a chunked 200 "ok"
 *   /close             200 "first" with Connection: close, then closes
 *   /retry-101/chat/completions  MiMo's reasoning 400, then (the proxy's retry) a 101
 *   anything else      200 "ok PATH" with Content-Length
 * Requests with Content-Length bodies are parsed, pipelined ones too.
 */
async function startHostile(cert: { certPem: string; keyPem: string }): Promise<Hostile> {
  const sockets = new Set<net.Socket>();
  const requests: Hostile['requests'] = [];
  let chats = 0;
  const serve = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let done = false;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let i = 0; i < 16 && !done; i++) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.subarray(0, end).toString('latin1');
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        requests.push({ head, body: Buffer.from(buf.subarray(end + 4, end + 4 + length)) });
        buf = buf.subarray(end + 4 + length);
        const target = /^\S+ (\S+)/.exec(head)?.[1] ?? '/';
        if (target === '/trailer-response') socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTrailer: x-checksum\r\n\r\nok');
        else if (target === '/status-099') socket.write('HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok');
        else if (target === '/switch') {
          socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
          done = true;
        } else if (target === '/retry-101/chat/completions' && chats++ % 2 === 0) {
          socket.write(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(REASONING_ERROR_BODY)}\r\n\r\n${REASONING_ERROR_BODY}`);
        } else if (target === '/retry-101/chat/completions') {
          socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
          done = true;
        } else if (target === '/chunked') socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
        else if (target === '/close') {
          socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nfirst');
          done = true;
        } else {
          const body = `ok ${target}`;
          socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
        }
      }
    });
  };
  const plain = net.createServer(serve);
  const secure = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, serve);
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
  return {
    plainPort: (plain.address() as net.AddressInfo).port,
    tlsPort: (secure.address() as net.AddressInfo).port,
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([new Promise((r) => plain.close(r)), new Promise((r) => secure.close(r))]);
    },
  };
}

function isJsonError(response: RawResponse | undefined, status: number): boolean {
  if (!response || response.status !== status) return false;
  try {
    return JSON.parse(response.body.toString('utf8')).error.type === 'mimo_proxy_error';
  } catch {
    return false;
  }
}

/** Log lines at WARN or ERROR. */
function problemLines(log: string): string[] {
  return log.split('\n').filter((line) => / (WARN|ERROR) /.test(line));
}

describe('with the proxy in its own process, one hostile peer ends only its own exchange', () => {
  let fake: FakeMimo;
  let hostile: Hostile;
  let proxy: ProxyProcess;
  let dir: string;
  let ca: string;

  beforeAll(async () => {
    fake = await startFakeMimo();
    hostile = await startHostile(fake.ca.issue(['hostile.xiaomimimo.com']));
    dir = tempDir('trust-net');
    proxy = await spawnProxy([
      '--certs', path.join(dir, 'certs'),
      ...upstreamArgs(fake),
      '--connect-to', `hostile.xiaomimimo.com:443:127.0.0.1:${hostile.tlsPort}`,
      '--connect-to', `api.xiaomimimo.com:80:127.0.0.1:${hostile.plainPort}`,
      '--log-level', 'debug',
    ]);
    ca = readFileSync(path.join(dir, 'certs', 'ca.pem'), 'utf8');
  });

  afterAll(async () => {
    await proxy?.stop();
    await hostile?.close();
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The process still runs and answers /health. */
  async function stillServing(): Promise<void> {
    expect(proxy.alive(), `the proxy exited; log:\n${proxy.log().slice(-3000)}`).toBe(true);
    const health = await exchange(await connect(proxy.port), 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(health.responses[0]?.status).toBe(200);
  }

  const plainGet = (target: string, extra = ''): string => `GET http://127.0.0.1:${hostile.plainPort}${target} HTTP/1.1\r\nHost: 127.0.0.1:${hostile.plainPort}\r\n${extra}\r\n`;
  const tlsGet = (host: string, target: string, extra = ''): string => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${KEY}\r\n${extra}\r\n`;

  // The requests below each made Node throw outside any handler (ERR_HTTP_TRAILER_INVALID) and
  // the process exit. A Trailer header is hop-by-hop: it is dropped, and the request goes on.

  it('answers a direct-mode request that carries a Trailer header on a Content-Length body', async () => {
    const before = fake.requests.length;
    const r = await exchange(
      await connect(proxy.port),
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(SIMPLE_BODY)}\r\nTrailer: x-checksum\r\n\r\n${SIMPLE_BODY}`,
    );
    expect(r.responses[0]?.status).toBe(200);
    expect(fake.requests.slice(before).map((q) => q.headers.trailer)).toEqual([undefined]);
    await stillServing();
  });

  it('answers a plain-HTTP pass-through request that carries a Trailer header', async () => {
    const r = await exchange(await connect(proxy.port), `POST http://127.0.0.1:${hostile.plainPort}/echo HTTP/1.1\r\nHost: 127.0.0.1:${hostile.plainPort}\r\nContent-Length: 5\r\nTrailer: x-checksum\r\n\r\nhello`);
    expect(r.responses[0]?.status).toBe(200);
    expect(r.responses[0]?.body.toString()).toBe('ok /echo');
    const seen = hostile.requests.at(-1)!;
    expect(seen.head).not.toMatch(/\r\ntrailer:/i);
    expect(seen.body.toString()).toBe('hello');
    await stillServing();
  });

  it('answers a request on an intercepted CONNECT that carries a Trailer header', async () => {
    const secure = await tlsThrough(proxy.port, 'api.xiaomimimo.com', ca);
    const r = await exchange(secure, tlsGet('api.xiaomimimo.com', '/v1/models', 'Trailer: x-checksum\r\n'));
    expect(r.responses[0]?.status).toBe(200);
    expect(JSON.parse(r.responses[0]!.body.toString()).object).toBe('list');
    await stillServing();
  });

  it('answers a chunked chat request with trailers that the reasoning rewrite turns into a Content-Length body', async () => {
    const before = fake.requests.length;
    const secure = await tlsThrough(proxy.port, 'api.xiaomimimo.com', ca);
    const half = Math.floor(FORGETFUL_BODY.length / 2);
    const chunk = (text: string): string => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
    const r = await exchange(secure, [
      `POST /v1/chat/completions HTTP/1.1\r\nHost: api.xiaomimimo.com\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n`,
      chunk(FORGETFUL_BODY.slice(0, half)),
      chunk(FORGETFUL_BODY.slice(half)),
      '0\r\nx-checksum: 12345\r\n\r\n',
    ]);
    expect(r.responses[0]?.status).toBe(200);
    const seen = fake.requests.slice(before);
    expect(seen).toHaveLength(1);
    // Rewritten (reasoning put back), sent with its new length, without the trailer announcement.
    expect(typeof seen[0]!.json.messages[1].reasoning_content).toBe('string');
    expect(seen[0]!.headers['content-length']).toBe(String(seen[0]!.body.length));
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
    expect(seen[0]!.headers.trailer).toBeUndefined();
    await stillServing();
  });

  it('relays an upstream answer that has both Content-Length and a Trailer header, on plain HTTP and on an intercepted host', async () => {
    const plain = await exchange(await connect(proxy.port), plainGet('/trailer-response'));
    const secure = await tlsThrough(proxy.port, 'hostile.xiaomimimo.com', ca);
    const intercepted = await exchange(secure, tlsGet('hostile.xiaomimimo.com', '/trailer-response'));
    for (const r of [plain, intercepted]) {
      expect(r.responses[0]?.status).toBe(200);
      expect(r.responses[0]?.body.toString()).toBe('ok');
      expect(r.responses[0]?.headers.trailer).toBeUndefined();
    }
    await stillServing();
  });

  it('ends an upstream answer it cannot relay (status 099, a 101 nobody asked for) with a JSON 502 and one log line', async () => {
    const cases: Array<() => Promise<import('node:stream').Duplex>> = [
      () => connect(proxy.port),
      () => tlsThrough(proxy.port, 'hostile.xiaomimimo.com', ca),
    ];
    for (const open of cases) {
      for (const target of ['/status-099', '/switch']) {
        const logBefore = proxy.log().length;
        const socket = await open();
        const bytes = socket instanceof tls.TLSSocket ? tlsGet('hostile.xiaomimimo.com', target) : plainGet(target);
        const r = await exchange(socket, bytes);
        expect(isJsonError(r.responses[0], 502), `${target}: ${r.data.toString('latin1').slice(0, 200)}`).toBe(true);
        expect(r.data.toString('latin1')).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
        // The log line may reach us after the answer: wait for it (bounded), then count.
        for (let i = 0; i < 100 && problemLines(proxy.log().slice(logBefore)).length === 0; i++) await sleep(50);
        expect(problemLines(proxy.log().slice(logBefore)), target).toHaveLength(1);
      }
    }
    await stillServing();
  });

  it('answers a request whose Host header the library cannot parse with a JSON 502', async () => {
    // The library runs url.parse() on a Host that starts with http://, which throws on this one.
    const secure = await tlsThrough(proxy.port, 'api.xiaomimimo.com', ca);
    const r = await exchange(secure, `GET /v1/models HTTP/1.1\r\nHost: http://[::1\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
    expect(isJsonError(r.responses[0], 502), r.data.toString('latin1').slice(0, 200)).toBe(true);
    await stillServing();
  });

  it('ends a reasoning retry that upstream answers with a 101 with a JSON 502, instead of waiting forever', async () => {
    const before = hostile.requests.length;
    const secure = await tlsThrough(proxy.port, 'hostile.xiaomimimo.com', ca);
    const r = await exchange(
      secure,
      `POST /retry-101/chat/completions HTTP/1.1\r\nHost: hostile.xiaomimimo.com\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(FORGETFUL_BODY)}\r\n\r\n${FORGETFUL_BODY}`,
      { ms: 10_000 },
    );
    // Both attempts went upstream: the first got the reasoning 400, the retry the 101.
    expect(hostile.requests.slice(before).map((q) => q.head.split(' ')[1])).toEqual(['/retry-101/chat/completions', '/retry-101/chat/completions']);
    expect(isJsonError(r.responses[0], 502), r.data.toString('latin1').slice(0, 200)).toBe(true);
    await stillServing();
  });

  it('keeps a streamed conversation going to its end through a burst of such hostile requests', async () => {
    fake.options.chunkDelayMs = 4;
    const agent = new ConnectAgent({ host: '127.0.0.1', port: proxy.port });
    try {
      let conversationDone = false;
      const conversation = runConversation({ url: CHAT, agent, ca, key: KEY, stream: true }).finally(() => (conversationDone = true));
      const kinds: Array<[string, () => Promise<{ status: number | undefined }>]> = [
        ['direct trailer', async () => {
          const r = await exchange(await connect(proxy.port), `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: ${Buffer.byteLength(SIMPLE_BODY)}\r\nTrailer: x\r\n\r\n${SIMPLE_BODY}`);
          return { status: r.responses[0]?.status };
        }],
        ['plain trailer', async () => ({ status: (await exchange(await connect(proxy.port), plainGet('/x', 'Trailer: x\r\n'))).responses[0]?.status })],
        ['intercepted trailer', async () => ({ status: (await exchange(await tlsThrough(proxy.port, 'api.xiaomimimo.com', ca), tlsGet('api.xiaomimimo.com', '/v1/models', 'Trailer: x\r\n'))).responses[0]?.status })],
        ['upstream trailer', async () => ({ status: (await exchange(await connect(proxy.port), plainGet('/trailer-response'))).responses[0]?.status })],
        ['upstream status 099', async () => ({ status: (await exchange(await connect(proxy.port), plainGet('/status-099'))).responses[0]?.status })],
        ['upstream 101', async () => ({ status: (await exchange(await tlsThrough(proxy.port, 'hostile.xiaomimimo.com', ca), tlsGet('hostile.xiaomimimo.com', '/switch'))).responses[0]?.status })],
        ['websocket upgrade', async () => ({ status: (await exchange(await connect(proxy.port), plainGet('/ws', 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'))).responses[0]?.status })],
        ['HTTP/1.0', async () => ({ status: (await exchange(await connect(proxy.port), `GET http://127.0.0.1:${hostile.plainPort}/chunked HTTP/1.0\r\n\r\n`)).responses[0]?.status })],
      ];
      const expected: Record<string, number> = { 'upstream status 099': 502, 'upstream 101': 502, 'websocket upgrade': 501 };
      let rounds = 0;
      const started = Date.now();
      do {
        rounds++;
        const results = await Promise.all(kinds.map(async ([name, run]) => [name, (await run()).status] as const));
        for (const [name, status] of results) expect(status, name).toBe(expected[name] ?? 200);
      } while (!conversationDone && rounds < 20 && Date.now() - started < 15_000);
      const { turns } = await conversation;
      expect(turns.length).toBeGreaterThan(1);
      expect(turns.every((t) => t.response.status === 200)).toBe(true);
      expect(turns.at(-1)!.message?.tool_calls ?? null).toBeNull();
    } finally {
      agent.destroy();
      fake.options.chunkDelayMs = 0;
    }
    await stillServing();
  }, 60_000);

  it('answers Upgrade requests with a JSON 501 on every route that would relay them, instead of silence', async () => {
    const ws = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    const requestsBefore = hostile.requests.length;
    const intercepted = await exchange(await tlsThrough(proxy.port, 'api.xiaomimimo.com', ca), tlsGet('api.xiaomimimo.com', '/v1/realtime', ws));
    const absolute = await exchange(await connect(proxy.port), plainGet('/ws', ws));
    const direct = await exchange(await connect(proxy.port), `GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\n${ws}\r\n`);
    for (const [route, r] of [['intercepted', intercepted], ['plain HTTP', absolute], ['direct mode', direct]] as const) {
      expect(isJsonError(r.responses[0], 501), `${route}: ${r.data.toString('latin1').slice(0, 200)}`).toBe(true);
      expect(JSON.parse(r.responses[0]!.body.toString()).error.message).toMatch(/does not relay protocol upgrades/);
    }
    expect(hostile.requests.length).toBe(requestsBefore);
    // h2c is an offer a server may ignore: the request is answered in HTTP/1.1, without the offer.
    const h2c = await exchange(await connect(proxy.port), plainGet('/h2c', 'Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n'));
    expect(h2c.responses[0]?.status).toBe(200);
    expect(hostile.requests.at(-1)!.head).not.toMatch(/\r\n(upgrade|http2-settings):/i);
    await stillServing();
  });

  it('answers an HTTP/1.0 client in HTTP/1.0 terms: no chunked framing, the body ends when the connection does', async () => {
    // Upstream sends chunked; plain HTTP.
    const plain = await exchange(await connect(proxy.port), `GET http://127.0.0.1:${hostile.plainPort}/chunked HTTP/1.0\r\nHost: 127.0.0.1:${hostile.plainPort}\r\n\r\n`);
    expect(plain.responses[0]?.status).toBe(200);
    expect(plain.responses[0]?.headers['transfer-encoding']).toBeUndefined();
    expect(plain.responses[0]?.framing).toBe('close');
    expect(plain.responses[0]?.body.toString()).toBe('ok');
    // Direct mode, streamed: the proxy taps the stream, which made the library announce chunked.
    const body = JSON.stringify({ model: 'mimo-v2.6-pro', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const direct = await exchange(await connect(proxy.port), `POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, { ms: 10_000 });
    expect(direct.responses[0]?.status).toBe(200);
    expect(direct.responses[0]?.headers['transfer-encoding']).toBeUndefined();
    expect(direct.responses[0]?.body.toString()).toMatch(/data: \[DONE\]\s*$/);
    await stillServing();
  });

  it('accepts a TLS client that offers only the http/1.0 ALPN protocol, and streams its chat completion without chunked framing', async () => {
    const secure = await tlsThrough(proxy.port, 'api.xiaomimimo.com', ca, ['http/1.0']);
    expect(secure.alpnProtocol).toBe('http/1.0');
    const body = JSON.stringify({ model: 'mimo-v2.6-pro', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    // No Host header: HTTP/1.0 allows that; the CONNECT target names the host.
    const r = await exchange(secure, `POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`, { ms: 10_000 });
    expect(r.responses[0]?.status).toBe(200);
    expect(r.responses[0]?.framing).toBe('close');
    expect(r.responses[0]?.body.toString()).toMatch(/^data: \{/);
    expect(r.responses[0]?.body.toString()).toMatch(/data: \[DONE\]\s*$/);
    await stillServing();
  });

  it('answers each of two pipelined requests although upstream closes its connection after the first', async () => {
    const before = hostile.requests.length;
    const plain = await exchange(await connect(proxy.port), [plainGet('/close') + plainGet('/second')], { count: 2 });
    const secure = await tlsThrough(proxy.port, 'hostile.xiaomimimo.com', ca);
    const intercepted = await exchange(secure, [tlsGet('hostile.xiaomimimo.com', '/close') + tlsGet('hostile.xiaomimimo.com', '/second')], { count: 2 });
    for (const r of [plain, intercepted]) {
      expect(r.responses.map((x) => [x.status, x.body.toString()])).toEqual([
        [200, 'first'],
        [200, 'ok /second'],
      ]);
    }
    expect(hostile.requests.length - before).toBe(4);
    await stillServing();
  });

  it('forwards a plain-HTTP request to an intercepted host unchanged: the body reaches upstream byte for byte', async () => {
    const before = hostile.requests.length;
    const r = await exchange(
      await connect(proxy.port),
      `POST http://api.xiaomimimo.com/v1/chat/completions HTTP/1.1\r\nHost: api.xiaomimimo.com\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(FORGETFUL_BODY)}\r\n\r\n${FORGETFUL_BODY}`,
    );
    expect(r.responses[0]?.status).toBe(200);
    const seen = hostile.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.body.equals(Buffer.from(FORGETFUL_BODY))).toBe(true);
    expect(seen[0]!.head).toMatch(/^POST \/v1\/chat\/completions HTTP\/1\.1\r\n/);
    await stillServing();
  });

  it('logged none of this with an API key or message text', () => {
    const log = proxy.log();
    expect(log.length).toBeGreaterThan(0);
    expect(log).not.toContain(KEY);
    expect(log).not.toContain(SECRET_TEXT);
    expect(log).not.toContain('北京');
  });
});

/**
 * For a peer that keeps its side of the connection open: waits for the proxy's end of stream,
 * then writes a byte every 100 ms; a connection the proxy has let go of answers with a reset,
 * which closes the socket. True once that happened within `ms`.
 */
async function releasedByProxy(socket: net.Socket, ms: number): Promise<boolean> {
  let ended = false;
  let gone = socket.destroyed;
  socket.once('end', () => (ended = true));
  socket.once('close', () => (gone = true));
  socket.resume();
  const deadline = Date.now() + ms;
  while (!gone && Date.now() < deadline) {
    if (ended && socket.writable) socket.write('x');
    await sleep(100);
  }
  return gone;
}

describe('connections that never get anywhere are closed', () => {
  const LIMITS = { handshakeMs: 800, headersMs: 1500, requestMs: 3000, keepAliveMs: 1500, checkEveryMs: 200 };
  let fake: FakeMimo;
  let h: Harness;

  beforeAll(async () => {
    fake = await startFakeMimo();
    h = await startHarness([...upstreamArgs(fake), '--no-persist'], { limits: LIMITS });
  });
  afterAll(async () => {
    await h?.stop();
    await fake?.close();
  });

  it('closes intercepted sockets that stall before, during or right after the TLS handshake, and idle plain ones, and serves on', async () => {
    const ca = h.proxy.ca.caPem;
    const sockets: Array<[string, net.Socket | tls.TLSSocket]> = [];
    try {
      sockets.push(['CONNECT, then no ClientHello', await connectThrough(h.proxy.port, 'api.xiaomimimo.com:443')]);
      const stalled = await connectThrough(h.proxy.port, 'api.xiaomimimo.com:443');
      // The start of a TLS record announcing 512 bytes of handshake, then nothing.
      stalled.write(Buffer.from('1603010200010001fc0303', 'hex'));
      sockets.push(['CONNECT, half a ClientHello', stalled]);
      sockets.push(['TLS done, no request', await tlsThrough(h.proxy.port, 'api.xiaomimimo.com', ca)]);
      const answered = await tlsThrough(h.proxy.port, 'api.xiaomimimo.com', ca);
      answered.write(`GET /v1/models HTTP/1.1\r\nHost: api.xiaomimimo.com\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
      sockets.push(['one request answered, then idle', answered]);
      const partial = await connect(h.proxy.port);
      partial.write('GET /health HTTP/1.1\r\nHost: 127.');
      sockets.push(['plain, half a request', partial]);
      const silent = await connect(h.proxy.port);
      sockets.push(['plain, nothing sent', silent]);
      for (const [, socket] of sockets) socket.on('error', () => undefined);

      // A peer that keeps its own side open after the proxy's answer: the proxy must still let go.
      const halfOpen = net.connect({ port: h.proxy.port, host: '127.0.0.1', allowHalfOpen: true });
      halfOpen.on('error', () => undefined);
      halfOpen.write('GET /health HTTP/1.1\r\nHost: 127.');

      const closed = await Promise.all(sockets.map(([, socket]) => closesWithin(socket, 15_000)));
      expect(Object.fromEntries(sockets.map(([name], i) => [name, closed[i]]))).toEqual(Object.fromEntries(sockets.map(([name]) => [name, true])));
      sockets.push(['plain, half a request, its side kept open', halfOpen]);
      expect(await releasedByProxy(halfOpen, 15_000)).toBe(true);
    } finally {
      for (const [, socket] of sockets) socket.destroy();
    }
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      const res = await request('https://api.xiaomimimo.com/v1/models', { agent, ca, headers: { authorization: `Bearer ${KEY}` } });
      expect(res.status).toBe(200);
    } finally {
      agent.destroy();
    }
    expect(h.logLines.join('')).toMatch(/client TLS handshake timed out/);
  }, 30_000);
});

describe('under a file-descriptor limit, with the CLI in its own process', () => {
  const FILE_LIMIT = 256;
  const HOSTILE = 300;
  let fake: FakeMimo;
  let proxy: ProxyProcess;
  let dir: string;

  beforeAll(async () => {
    fake = await startFakeMimo();
    dir = tempDir('trust-fd');
    proxy = await spawnProxy(['--certs', path.join(dir, 'certs'), ...upstreamArgs(fake), '--log-level', 'debug'], { fileLimit: FILE_LIMIT });
  });
  afterAll(async () => {
    await proxy?.stop();
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('closes more silent CONNECT sockets than the limit allows once the handshake time is up, and then serves /health and a new client', async () => {
    const ca = readFileSync(path.join(dir, 'certs', 'ca.pem'), 'utf8');
    const hostile: net.Socket[] = [];
    let closed = 0;
    try {
      for (let i = 0; i < HOSTILE; i++) {
        const socket = net.connect(proxy.port, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.once('close', () => closed++);
        socket.resume();
        socket.once('connect', () => socket.write('CONNECT api.xiaomimimo.com:443 HTTP/1.1\r\nHost: api.xiaomimimo.com:443\r\n\r\n'));
        hostile.push(socket);
        if (i % 50 === 49) await sleep(50);
      }
      // The proxy really is at its limit: every descriptor it may open is open (Linux shows them).
      const fds = `/proc/${proxy.child.pid}/fd`;
      if (existsSync(fds)) {
        let peak = 0;
        for (let i = 0; i < 50 && peak < FILE_LIMIT - 4; i++, await sleep(100)) peak = Math.max(peak, readdirSync(fds).length);
        expect(peak).toBeGreaterThanOrEqual(FILE_LIMIT - 4);
      }
      // TLS_HANDSHAKE_TIMEOUT_MS is 10 s; give it room on a loaded machine.
      const deadline = Date.now() + 40_000;
      while (closed < HOSTILE && Date.now() < deadline) await sleep(100);
      expect(closed).toBe(HOSTILE);
    } finally {
      for (const socket of hostile) socket.destroy();
    }
    expect(proxy.alive(), proxy.log().slice(-2000)).toBe(true);
    expect(proxy.log()).toMatch(/client TLS handshake timed out/);

    const health = await exchange(await connect(proxy.port), 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    expect(health.responses[0]?.status).toBe(200);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: proxy.port });
    try {
      const { turns } = await runConversation({ url: CHAT, agent, ca, key: KEY, stream: true });
      expect(turns.length).toBeGreaterThan(1);
      expect(turns.every((t) => t.response.status === 200)).toBe(true);
    } finally {
      agent.destroy();
    }
  }, 90_000);
});
