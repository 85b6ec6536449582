/**
 * The intercepting proxy over real sockets and real TLS: clients that go
 * through CONNECT, our CA, the fake MiMo upstream behind --connect-to, and an
 * unrelated HTTPS site that must be tunnelled untouched.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { promisify } from 'node:util';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, upstreamArgs, type Harness } from '../support/harness.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { startTestSite } from '../support/test-site.js';
import { freePort, rawExchange } from '../support/net.js';

const run = promisify(execFile);
const KEY = 'sk-test-proxy-0001';

describe('the intercepting proxy', () => {
  let fake: FakeMimo;
  let site: Awaited<ReturnType<typeof startTestSite>>;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    fake = await startFakeMimo();
    site = await startTestSite();
    h = await startHarness([...upstreamArgs(fake), '--connect-to', `site.test:443:127.0.0.1:${site.port}`]);
    agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
  });

  afterAll(async () => {
    agent.destroy();
    await h.stop();
    await fake.close();
    await site.close();
  });

  it('intercepts a MiMo host with a certificate from our CA and forwards the request unchanged', async () => {
    const before = fake.requests.length;
    const res = await request('https://api.xiaomimimo.com/v1/models?x=1', { agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}`, 'x-custom': 'kept' } });
    expect(res.status).toBe(200);
    expect(res.json().data.length).toBeGreaterThan(0);
    const seen = fake.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.path).toBe('/v1/models?x=1');
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[0]!.headers['x-custom']).toBe('kept');
    expect(seen[0]!.headers.host).toBe('api.xiaomimimo.com');
    expect(res.peerCertificate?.issuer?.O).toBe('mimo-proxy');
    expect(res.peerCertificate?.subjectaltname).toContain('DNS:api.xiaomimimo.com');
  });

  it('forwards a request body byte for byte when there is nothing to change', async () => {
    const body = JSON.stringify({ model: 'mimo-v2.6-pro', messages: [{ role: 'user', content: '你好' }], thinking: { type: 'disabled' } }, null, 3);
    const before = fake.requests.length;
    const res = await request('https://api.xiaomimimo.com/v1/chat/completions', { agent, ca: h.proxy.ca.caPem, headers: { 'api-key': KEY }, body });
    expect(res.status).toBe(200);
    const seen = fake.requests.slice(before);
    expect(seen[0]!.body.toString('utf8')).toBe(body);
    expect(seen[0]!.headers['api-key']).toBe(KEY);
  });

  it('reuses one CONNECT, one TLS session and one upstream connection for keep-alive requests', async () => {
    const local = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    const connectionsBefore = fake.connections;
    try {
      for (let i = 0; i < 3; i++) {
        const res = await request('https://token-plan-cn.xiaomimimo.com/v1/models', { agent: local, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}` } });
        expect(res.status).toBe(200);
      }
      expect(local.connects).toBe(1);
      expect(fake.connections - connectionsBefore).toBeLessThanOrEqual(1);
    } finally {
      local.destroy();
    }
  });

  it('tunnels any other host byte for byte: the client sees the real certificate', async () => {
    const res = await request('https://site.test/', { agent, ca: site.ca.certPem });
    expect(res.status).toBe(200);
    expect(res.text).toBe('hello from test-site');
    const der = (res.peerCertificate as { raw?: Buffer } | undefined)?.raw;
    expect(der).toBeDefined();
    expect(new X509Certificate(der!).fingerprint256).toBe(site.certFingerprint256);
    // A client that trusts only our CA cannot talk to it: the proxy never decrypts it.
    const strict = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    await expect(request('https://site.test/', { agent: strict, ca: h.proxy.ca.caPem })).rejects.toThrow();
    strict.destroy();
  });

  it('forwards plain-HTTP proxy requests to other hosts untouched', async () => {
    let seen: { url?: string; headers?: http.IncomingHttpHeaders; body?: string } = {};
    const plainServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen = { url: req.url, headers: req.headers, body };
        res.writeHead(201, { 'x-upstream': 'plain' });
        res.end('plain ok');
      });
    });
    await new Promise<void>((r) => plainServer.listen(0, '127.0.0.1', r));
    const { port } = plainServer.address() as net.AddressInfo;
    try {
      const res = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: h.proxy.port, method: 'PUT', path: `http://127.0.0.1:${port}/a/b?c=d`, headers: { host: `127.0.0.1:${port}`, 'x-keep': '1' } }, (r) => {
          let text = '';
          r.on('data', (d: Buffer) => (text += d.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, text }));
        });
        req.on('error', reject);
        req.end('payload');
      });
      expect(res.status).toBe(201);
      expect(res.headers['x-upstream']).toBe('plain');
      expect(res.text).toBe('plain ok');
      expect(seen.url).toBe('/a/b?c=d');
      expect(seen.headers?.['x-keep']).toBe('1');
      expect(seen.body).toBe('payload');
    } finally {
      plainServer.close();
    }
  });

  it('serves /health, a status page (HTML and JSON) and /ca.pem itself', async () => {
    const plain = new http.Agent();
    const base = h.proxy.url;
    const health = await request(`${base}/health`, { agent: plain });
    expect(health.status).toBe(200);
    expect(health.json().ok).toBe(true);
    const json = await request(`${base}/`, { agent: plain, headers: { accept: 'application/json' } });
    const report = json.json();
    expect(report.domains).toEqual(['xiaomimimo.com']);
    expect(report.ca.fingerprint256).toBe(h.proxy.ca.fingerprint256);
    expect(report.counters.interceptedRequests).toBeGreaterThan(0);
    const html = await request(`${base}/`, { agent: plain, headers: { accept: 'text/html' } });
    expect(html.headers['content-type']).toContain('text/html');
    expect(html.text).toContain(h.proxy.ca.fingerprint256);
    const pem = await request(`${base}/ca.pem`, { agent: plain });
    expect(pem.text).toBe(h.proxy.ca.caPem);
    const missing = await request(`${base}/nope`, { agent: plain });
    expect(missing.status).toBe(404);
    expect(missing.json().error.type).toBe('mimo_proxy_error');
    plain.destroy();
  });

  it('direct mode sends /v1 and bare API paths to --upstream with auth untouched', async () => {
    const plain = new http.Agent({ keepAlive: true });
    const before = fake.requests.length;
    const models = await request(`${h.proxy.url}/models`, { agent: plain, headers: { authorization: `Bearer ${KEY}` } });
    expect(models.status).toBe(200);
    const chat = await request(`${h.proxy.url}/v1/chat/completions`, {
      agent: plain,
      headers: { 'api-key': KEY },
      body: JSON.stringify({ model: 'mimo-v2.6-pro', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(chat.status).toBe(200);
    expect(chat.json().choices[0].message.role).toBe('assistant');
    const seen = fake.requests.slice(before);
    expect(seen.map((r) => r.path)).toEqual(['/v1/models', '/v1/chat/completions']);
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[1]!.headers['api-key']).toBe(KEY);
    expect(seen[1]!.headers.host).toBe('api.xiaomimimo.com');
    plain.destroy();
  });

  it('works with curl -x and --cacert, as the README says', async () => {
    const { stdout } = await run('curl', ['-sS', '-x', h.proxy.url, '--cacert', h.proxy.ca.caCertPath, '-H', `Authorization: Bearer ${KEY}`, 'https://api.xiaomimimo.com/v1/models']);
    expect(JSON.parse(stdout).object).toBe('list');
    const tunnelled = await run('curl', ['-sS', '-x', h.proxy.url, '--cacert', site.ca.certPath, 'https://site.test/']);
    expect(tunnelled.stdout).toBe('hello from test-site');
  });

  it('answers a malformed CONNECT target with 400 and keeps serving', async () => {
    for (const target of ['no-port', 'user@api.xiaomimimo.com:443', 'api.xiaomimimo.com:99999', '[zz]:443']) {
      const reply = await rawExchange(h.proxy.port, `CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(reply, target).toMatch(/^HTTP\/1\.1 400/);
    }
    const res = await request('https://api.xiaomimimo.com/v1/models', { agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
  });

  it('answers a CONNECT to a refusing port with a JSON 502', async () => {
    const port = await freePort();
    const reply = await rawExchange(h.proxy.port, `CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 502/);
    const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
    expect(JSON.parse(body).error.type).toBe('mimo_proxy_error');
  });

  it('tunnels to an IPv6 literal target', async (ctx) => {
    const server = net.createServer((s) => s.end('v6 ok'));
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(0, '::1', () => resolve(true));
    });
    if (!listening) {
      ctx.skip();
      return;
    }
    try {
      const { port } = server.address() as net.AddressInfo;
      const reply = await rawExchange(h.proxy.port, `CONNECT [::1]:${port} HTTP/1.1\r\nHost: [::1]:${port}\r\n\r\n`);
      expect(reply).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\nv6 ok$/);
    } finally {
      server.close();
    }
  });

  it('survives a client that speaks garbage instead of TLS', async () => {
    const reply = await rawExchange(h.proxy.port, `CONNECT api.xiaomimimo.com:443 HTTP/1.1\r\nHost: api.xiaomimimo.com:443\r\n\r\nGET / HTTP/1.1\r\nthis is not tls\r\n\r\n`);
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    const res = await request('https://api.xiaomimimo.com/v1/models', { agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
  });
});

describe('upstream failures become JSON errors', () => {
  it('a refused upstream gives 502, an unverifiable one 502, a silent one 504, and the proxy keeps serving', async () => {
    const closed = await freePort();
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentPort = (silent.address() as net.AddressInfo).port;
    const fake = await startFakeMimo();
    const h = await startHarness([
      '--connect-to', `refused.xiaomimimo.com:443:127.0.0.1:${closed}`,
      '--connect-to', `silent.xiaomimimo.com:443:127.0.0.1:${silentPort}`,
      '--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${fake.port}`,
      '--timeout', '800ms',
    ]);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      const refused = await request('https://refused.xiaomimimo.com/v1/models', { agent, ca: h.proxy.ca.caPem });
      expect(refused.status).toBe(502);
      expect(refused.json().error.type).toBe('mimo_proxy_error');
      expect(refused.json().error.message).toMatch(/refused/);

      // The fake's CA is not trusted (no --upstream-ca): verification must fail, never be skipped.
      const unverified = await request('https://api.xiaomimimo.com/v1/models', { agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}` } });
      expect(unverified.status).toBe(502);
      expect(unverified.json().error.message).toMatch(/TLS/);
      expect(fake.requests).toHaveLength(0);

      const timedOut = await request('https://silent.xiaomimimo.com/v1/models', { agent, ca: h.proxy.ca.caPem });
      expect(timedOut.status).toBe(504);
      expect(timedOut.json().error.type).toBe('mimo_proxy_error');

      const health = await request(`${h.proxy.url}/health`, { agent: new http.Agent() });
      expect(health.json().ok).toBe(true);
      expect(h.logLines.join('')).not.toContain(KEY);
    } finally {
      agent.destroy();
      await h.stop();
      await fake.close();
      silent.close();
    }
  });

  it('a client that hangs up mid-stream aborts the upstream request', async () => {
    const fake = await startFakeMimo({ chunkDelayMs: 20, answerChunks: 400, toolRounds: 0 });
    const h = await startHarness(upstreamArgs(fake));
    const agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
    try {
      await new Promise<void>((resolve, reject) => {
        const req = https.request(
          { host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } },
          (res) => {
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          },
        );
        req.on('error', () => undefined);
        req.end(JSON.stringify({ model: 'mimo-v2.6-pro', stream: true, messages: [{ role: 'user', content: 'long answer please' }] }));
        setTimeout(() => reject(new Error('no data')), 5000);
      });
      const deadline = Date.now() + 3000;
      while (h.proxy.counters.clientAborts === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(h.proxy.counters.clientAborts).toBe(1);
      while (fake.abortedResponses === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(fake.abortedResponses).toBe(1);
    } finally {
      agent.destroy();
      await h.stop();
      await fake.close();
    }
  });
});

describe("errors the proxy answers itself come in the shape of the API the client addressed", () => {
  const messages = JSON.stringify({ model: 'mimo-v2.6-pro', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
  const chat = JSON.stringify({ model: 'mimo-v2.6-pro', messages: [{ role: 'user', content: 'hi' }] });
  let silent: net.Server;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    const closed = await freePort();
    silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    // Direct mode goes to --upstream, api.xiaomimimo.com: refused, like the intercepted requests there.
    h = await startHarness([
      '--connect-to', `api.xiaomimimo.com:443:127.0.0.1:${closed}`,
      '--connect-to', `silent.xiaomimimo.com:443:127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
      '--timeout', '500ms',
      '--no-persist',
    ]);
    agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
  });

  afterAll(async () => {
    agent.destroy();
    await h.stop();
    silent.close();
  });

  const anthropicShape = (res: { json(): any }, type: string): void => {
    expect(res.json()).toEqual({ type: 'error', error: { type, message: expect.any(String) } });
  };

  it('intercepted: Anthropic errors under /anthropic, OpenAI errors elsewhere, for refused and silent upstreams', async () => {
    const refused = await request('https://api.xiaomimimo.com/anthropic/v1/messages', { agent, ca: h.proxy.ca.caPem, headers: { 'x-api-key': KEY }, body: messages });
    expect(refused.status).toBe(502);
    anthropicShape(refused, 'api_error');
    expect(refused.json().error.message).toMatch(/refused/);

    const timedOut = await request('https://silent.xiaomimimo.com/anthropic/v1/messages', { agent, ca: h.proxy.ca.caPem, headers: { 'x-api-key': KEY }, body: messages });
    expect(timedOut.status).toBe(504);
    anthropicShape(timedOut, 'timeout_error');

    for (const host of ['api', 'silent']) {
      const openai = await request(`https://${host}.xiaomimimo.com/v1/chat/completions`, { agent, ca: h.proxy.ca.caPem, headers: { authorization: `Bearer ${KEY}` }, body: chat });
      expect(openai.status, host).toBe(host === 'api' ? 502 : 504);
      expect(openai.json(), host).toEqual({ error: { message: expect.any(String), type: 'mimo_proxy_error' } });
    }
  });

  it('direct mode: Anthropic errors under /anthropic (refused upstream, unknown path, upgrade), OpenAI errors elsewhere', async () => {
    const plain = new http.Agent();
    try {
      const refused = await request(`${h.proxy.url}/anthropic/v1/messages`, { agent: plain, headers: { 'x-api-key': KEY }, body: messages });
      expect(refused.status).toBe(502);
      anthropicShape(refused, 'api_error');

      const unknown = await request(`${h.proxy.url}/anthropic/v1/models`, { agent: plain });
      expect(unknown.status).toBe(404);
      anthropicShape(unknown, 'not_found_error');

      const upgrade = await request(`${h.proxy.url}/anthropic/v1/messages`, { agent: plain, headers: { upgrade: 'websocket', connection: 'Upgrade' } });
      expect(upgrade.status).toBe(501);
      anthropicShape(upgrade, 'api_error');

      const openai = await request(`${h.proxy.url}/v1/chat/completions`, { agent: plain, headers: { authorization: `Bearer ${KEY}` }, body: chat });
      expect(openai.status).toBe(502);
      expect(openai.json()).toEqual({ error: { message: expect.any(String), type: 'mimo_proxy_error' } });
    } finally {
      plain.destroy();
    }
  });

  it('the @anthropic-ai/sdk client reads the error type and message in direct mode', async () => {
    const client = new Anthropic({ apiKey: KEY, baseURL: `${h.proxy.url}/anthropic`, maxRetries: 0 });
    const err = await client.messages.create({ model: 'mimo-v2.6-pro', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const apiError = err as InstanceType<typeof Anthropic.APIError>;
    expect(apiError.status).toBe(502);
    expect(apiError.type).toBe('api_error');
    expect(apiError.apiMessage).toMatch(/could not connect to upstream api\.xiaomimimo\.com:443: connection refused/);
  });
});
