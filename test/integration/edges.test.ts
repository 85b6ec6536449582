/**
 * Edge cases over real sockets, each with an upstream that misbehaves in one
 * precise way (a raw TLS server with a certificate from a test CA).
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, upstreamArgs } from '../support/harness.js';
import { makeTestCa, type TestCa } from '../support/pki.js';
import { ConnectAgent, request } from '../support/proxy-client.js';

const KEY = 'sk-edge-0001';

/** A chat history whose tool-call message lacks reasoning: the proxy rewrites it and arms the retry. */
const forgetfulBody = (stream = false): string =>
  JSON.stringify({
    model: 'mimo-v2.6-pro',
    stream,
    messages: [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'call_edge', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_edge', content: 'sunny' },
    ],
  });

interface RawUpstream {
  port: number;
  close(): Promise<void>;
}

/** A TLS server for api.xiaomimimo.com that answers every request with `answer(socket)`. */
async function rawUpstream(ca: TestCa, answer: (socket: tls.TLSSocket) => void): Promise<RawUpstream> {
  const leaf = ca.issue(['api.xiaomimimo.com']);
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = '';
    socket.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes('\r\n\r\n')) {
        seen = '';
        answer(socket);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('an upstream that fails inside a 400 body', () => {
  let ca: TestCa;
  beforeAll(() => {
    ca = makeTestCa('edge-upstream');
  });
  afterAll(() => ca.cleanup());

  for (const how of ['resets', 'stalls'] as const) {
    it(`${how} after the headers: the client gets a JSON error and the proxy keeps serving`, async () => {
      const upstream = await rawUpstream(ca, (socket) => {
        socket.write('HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"error":');
        if (how === 'resets') setTimeout(() => socket.destroy(), 30);
      });
      const h = await startHarness(['--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${upstream.port}`, '--upstream-ca', ca.certPath, '--timeout', '500ms', '--no-persist']);
      const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
      try {
        const res = await request('https://api.xiaomimimo.com/v1/chat/completions', { agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}` }, body: forgetfulBody() });
        expect(res.status).toBe(how === 'resets' ? 502 : 504);
        expect(res.json().error.type).toBe('mimo_proxy_error');
        await new Promise((r) => setTimeout(r, 100));
        const health = await request(`${h.proxy.url}/health`, { agent: new http.Agent() });
        expect(health.json().ok).toBe(true);
      } finally {
        agent.destroy();
        await h.stop();
        await upstream.close();
      }
    });
  }
});

describe('Expect: 100-continue', () => {
  let fake: FakeMimo;
  beforeAll(async () => {
    fake = await startFakeMimo({ toolRounds: 3 });
  });
  afterAll(() => fake.close());

  it('a rewritten body goes upstream whole, under its own length', async () => {
    const h = await startHarness([...upstreamArgs(fake), '--no-persist']);
    try {
      const body = forgetfulBody();
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port: h.proxy.port, path: '/v1/chat/completions', method: 'POST', agent: false, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('continue', () => req.end(body));
        req.on('error', reject);
      });
      expect(status).toBe(200);
      const seen = fake.requests.at(-1)!;
      expect(seen.headers.expect).toBeUndefined();
      expect(Number(seen.headers['content-length'])).toBe(seen.body.length);
      const sent = JSON.parse(seen.body.toString('utf8'));
      expect(sent.messages[1].reasoning_content).toMatch(/not kept/);
    } finally {
      await h.stop();
    }
  });
});

describe('a stream cut mid-answer on the Anthropic surface', () => {
  it('ends with an `event: error` that Anthropic clients read', async () => {
    const ca = makeTestCa('edge-anthropic');
    const upstream = await rawUpstream(ca, (socket) => {
      const start = JSON.stringify({ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', content: [], model: 'mimo-v2.6-pro' } });
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n`);
      const event = `event: message_start\ndata: ${start}\n\n`;
      socket.write(`${Buffer.byteLength(event).toString(16)}\r\n${event}\r\n`);
      setTimeout(() => socket.destroy(), 30);
    });
    const h = await startHarness(['--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${upstream.port}`, '--upstream-ca', ca.certPath, '--no-persist']);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      const res = await request('https://api.xiaomimimo.com/anthropic/v1/messages', {
        agent,
        ca: h.proxy.ca.caPem,
        headers: { 'x-api-key': KEY },
        body: JSON.stringify({ model: 'mimo-v2.6-pro', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      expect(res.text).toMatch(/event: message_start\n/);
      const last = res.text.trim().split('\n\n').at(-1)!;
      expect(last).toMatch(/^event: error\ndata: /);
      expect(JSON.parse(last.split('\ndata: ')[1]!).error.type).toBe('api_error');
    } finally {
      agent.destroy();
      await h.stop();
      await upstream.close();
      ca.cleanup();
    }
  });
});

describe('plain-HTTP proxy requests to other hosts', () => {
  it('reach an IPv6 literal host, and a client that hangs up stops the upstream request', async (ctx) => {
    let upstreamClosedEarly = 0;
    const server = http.createServer((req, res) => {
      if (req.url === '/slow') {
        res.writeHead(200);
        res.write('first');
        res.on('close', () => {
          if (!res.writableFinished) upstreamClosedEarly++;
        });
        return;
      }
      res.end(`v6 ${req.url}`);
    });
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(0, '::1', () => resolve(true));
    });
    if (!listening) {
      ctx.skip();
      return;
    }
    const port = (server.address() as net.AddressInfo).port;
    const h = await startHarness(['--no-persist']);
    try {
      const viaProxy = await new Promise<string>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: h.proxy.port, path: `http://[::1]:${port}/hello`, headers: { host: `[::1]:${port}` } }, (r) => {
          let text = '';
          r.on('data', (d: Buffer) => (text += d.toString()));
          r.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      expect(viaProxy).toBe('v6 /hello');

      await new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: h.proxy.port, path: `http://[::1]:${port}/slow`, headers: { host: `[::1]:${port}` } }, (r) => {
          r.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.on('close', () => undefined);
        setTimeout(() => reject(new Error('no first byte')), 3000);
        req.end();
      });
      const deadline = Date.now() + 3000;
      while (upstreamClosedEarly === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(upstreamClosedEarly).toBe(1);
    } finally {
      await h.stop();
      server.closeAllConnections();
      server.close();
    }
  });
});
