/**
 * The team gateway end to end: real proxies (in process, real sockets and
 * TLS) sharing one real redis-server, in front of the strict fake MiMo, which
 * refuses a placeholder and knows exactly which reasoning it produced for
 * every call. A forgetful conversation whose turns alternate between two
 * proxies must get the exact reasoning back on every turn, on both surfaces;
 * and no Redis fault (down at start, stopped mid-run, paused with SIGSTOP,
 * restarted, wrong password, TLS failure) may fail a request or hold it past
 * the store's bound.
 */
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ReasoningCache } from '../../src/cache/cache.js';
import { CALL_TIMEOUT_MS, RedisStore } from '../../src/cache/redis.js';
import { chatContextForm, chatTurnIdentity } from '../../src/chat/fingerprint.js';
import { createLogger } from '../../src/log.js';
import { ContextWindows, learnKeys } from '../../src/reasoning/match.js';
import { credentialScope } from '../../src/reasoning/scope.js';
import { sendMessages, type Turn as AnthropicTurn } from '../support/anthropic-conversation.js';
import { sendChat, type ChatMessage } from '../support/conversation.js';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, tempDir, upstreamArgs, type Harness } from '../support/harness.js';
import { freePort } from '../support/net.js';
import { makeTestCa, type TestCa } from '../support/pki.js';
import { parsePrometheus, valueOf } from '../support/prometheus.js';
import { ConnectAgent, request } from '../support/proxy-client.js';
import { spawnProxy } from '../support/proxy-process.js';
import { hasRedisServer, startRedisServer, type RedisServer } from '../support/redis-server.js';

const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';
const MESSAGES = 'https://api.xiaomimimo.com/anthropic/v1/messages';

interface Instance {
  h: Harness;
  agent: ConnectAgent;
}

async function startInstance(fake: FakeMimo, args: string[]): Promise<Instance> {
  const h = await startHarness([...upstreamArgs(fake), ...args]);
  return { h, agent: new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port }) };
}

async function stopInstance(instance: Instance | undefined): Promise<void> {
  instance?.agent.destroy();
  await instance?.h.stop();
}

/** Bounded wait for a state another process brings about (a reconnect). */
async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const storeState = (i: Instance): string => String(i.h.proxy.status().store.state);

/**
 * A forgetful chat client (drops reasoning_content) whose round k goes to instances[k % n].
 * Returns each round's status and time.
 */
async function alternatingChat(instances: Instance[], key: string, stream: boolean, history?: ChatMessage[]): Promise<{ statuses: number[]; ms: number[]; history: ChatMessage[] }> {
  const messages: ChatMessage[] = history ? [...history] : [{ role: 'user', content: '北京今天天气怎么样？请一步一步查。' }];
  const statuses: number[] = [];
  const ms: number[] = [];
  for (let round = 0; round < 8; round++) {
    const at = instances[round % instances.length]!;
    const started = performance.now();
    const turn = await sendChat({ url: CHAT, agent: at.agent, ca: at.h.proxy.ca.caPem, key, stream }, messages);
    ms.push(performance.now() - started);
    statuses.push(turn.response.status);
    if (!turn.message) break;
    messages.push({ role: 'assistant', content: turn.message.content ?? '', tool_calls: turn.message.tool_calls ?? null });
    const calls = turn.message.tool_calls ?? [];
    if (calls.length === 0) break;
    for (const call of calls) messages.push({ role: 'tool', tool_call_id: call.id, content: `{"result":"晴，25°C","call":"${call.function.name}"}` });
  }
  return { statuses, ms, history: messages };
}

/** The same for the Anthropic surface: thinking blocks dropped. */
async function alternatingMessages(instances: Instance[], key: string, stream: boolean): Promise<number[]> {
  const history: AnthropicTurn[] = [{ role: 'user', content: '北京今天天气怎么样？' }];
  const statuses: number[] = [];
  for (let round = 0; round < 8; round++) {
    const at = instances[round % instances.length]!;
    const turn = await sendMessages({ url: MESSAGES, agent: at.agent, ca: at.h.proxy.ca.caPem, key, stream }, history);
    statuses.push(turn.response.status);
    if (!turn.content) break;
    history.push({ role: 'assistant', content: turn.content.filter((b) => b.type !== 'thinking') });
    const uses = turn.content.filter((b) => b.type === 'tool_use');
    if (uses.length === 0) break;
    history.push({ role: 'user', content: uses.map((u) => ({ type: 'tool_result', tool_use_id: u.id, content: '晴，25°C' })) });
  }
  return statuses;
}

describe.skipIf(!hasRedisServer)('two proxies sharing one Redis', () => {
  let redis: RedisServer;
  let fake: FakeMimo;
  let a: Instance;
  let b: Instance;

  beforeAll(async () => {
    redis = await startRedisServer();
    fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true });
    a = await startInstance(fake, ['--store', redis.url]);
    b = await startInstance(fake, ['--store', redis.url]);
  });
  afterAll(async () => {
    await stopInstance(a);
    await stopInstance(b);
    await fake?.close();
    await redis?.dispose();
  });

  for (const stream of [true, false]) {
    it(`a forgetful chat conversation alternating between them gets the exact reasoning on every turn (${stream ? 'streamed' : 'not streamed'})`, async () => {
      const echoes = fake.echoes.length;
      const retries = a.h.proxy.counters.retries + b.h.proxy.counters.retries;
      const { statuses } = await alternatingChat([a, b], `sk-team-${stream}`, stream);
      expect(statuses).toEqual([200, 200, 200, 200]);
      const sent = fake.echoes.slice(echoes);
      expect(sent).toHaveLength(6);
      for (const echo of sent) expect(echo.exact, JSON.stringify(echo)).toBe(true);
      // Nothing was degraded or retried: each instance read what the other learned.
      expect(a.h.proxy.counters.retries + b.h.proxy.counters.retries).toBe(retries);
      expect(a.h.proxy.counters.placeholders + b.h.proxy.counters.placeholders).toBe(0);
    });
  }

  it('does the same on the Anthropic surface, and each instance counts reads answered by the store', async () => {
    const echoes = fake.anthropic.echoes.length;
    const statuses = await alternatingMessages([a, b], 'sk-team-anthropic', true);
    expect(statuses).toEqual([200, 200, 200, 200]);
    const sent = fake.anthropic.echoes.slice(echoes);
    expect(sent.length).toBeGreaterThanOrEqual(3);
    for (const echo of sent) expect(echo.exact, JSON.stringify(echo)).toBe(true);
    expect(a.h.proxy.cache.stats().storeHits).toBeGreaterThan(0);
    expect(b.h.proxy.cache.stats().storeHits).toBeGreaterThan(0);
    expect(a.h.proxy.status().store).toMatchObject({ kind: 'redis', state: 'connected' });
  });

  it('never puts back a text another instance has since found conflicted: the more specific key wins, a conflicted one degrades', async () => {
    // "Another instance" is a cache on its own Redis connection, learning as a proxy learns.
    const otherStore = new RedisStore({ url: new URL(redis.url), log: createLogger('silent') });
    await otherStore.ready();
    const other = new ReasoningCache({ limits: { maxEntries: 1000, maxBytes: 1 << 24, ttlMs: 60_000 }, shared: otherStore });
    const scope = credentialScope({ authorization: 'Bearer sk-twins' });
    // Two conversations whose turn and context are the same; only the call ids MiMo issued differ.
    const turn = (id: string): ChatMessage[] => [
      { role: 'user', content: '同一个问题' },
      { role: 'assistant', content: '', tool_calls: [{ id, type: 'function', function: { name: 'read_file', arguments: '{"path":"a.ts"}' } }] },
      { role: 'tool', tool_call_id: id, content: 'x' },
    ];
    const learn = async (id: string, reasoning: string): Promise<void> => {
      const messages = turn(id);
      const identity = chatTurnIdentity(messages[1] as never)!;
      other.remember(scope, learnKeys({ identity, reasoning, context: new ContextWindows(messages, chatContextForm).before(1), upstreamIds: true }), reasoning);
      await new Promise((resolve) => setTimeout(resolve, 50));
    };
    const sent = async (id: string): Promise<unknown> => {
      const before = fake.requests.length;
      const res = await sendChat({ url: CHAT, agent: a.agent, ca: a.h.proxy.ca.caPem, key: 'sk-twins', stream: false }, turn(id));
      expect(res.response.status).toBe(200);
      return fake.requests[before]!.json.messages[1].reasoning_content;
    };
    try {
      fake.options.rejectPlaceholders = false;
      await learn('call_twin_1', 'reasoning of conversation one');
      expect(await sent('call_twin_1')).toBe('reasoning of conversation one');
      // Now a proxy learns the second conversation: the shared context key becomes conflicted.
      await learn('call_twin_2', 'reasoning of conversation two');
      expect(await sent('call_twin_2')).toBe('reasoning of conversation two');
      // A client that renumbered the ids is left with the context key alone: conflicted, so a placeholder.
      const renumbered = await sent('call_twin_renumbered');
      expect(renumbered).not.toBe('reasoning of conversation one');
      expect(renumbered).not.toBe('reasoning of conversation two');
    } finally {
      fake.options.rejectPlaceholders = true;
      await other.close();
    }
  });

  it('keeps API keys and message text out of Redis: only prefixed hashes as keys', () => {
    const keys = redis.cli(['KEYS', '*']).split('\n');
    expect(keys.length).toBeGreaterThan(4);
    for (const key of keys) expect(key).toMatch(/^mimo-proxy:v1:[0-9a-f]{64}$/);
    for (const key of keys.slice(0, 5)) expect(redis.cli(['GET', key])).not.toMatch(/sk-team/);
  });
});

describe.skipIf(!hasRedisServer)('Redis faults', () => {
  let fake: FakeMimo;
  const started: Instance[] = [];
  const servers: RedisServer[] = [];
  let testCa: TestCa | undefined;

  beforeAll(async () => {
    fake = await startFakeMimo({ toolRounds: 3 });
  });
  afterEach(async () => {
    for (const i of started.splice(0)) await stopInstance(i);
    for (const s of servers.splice(0)) await s.dispose();
  });
  afterAll(async () => {
    await fake?.close();
    testCa?.cleanup();
  });

  const instance = async (args: string[]): Promise<Instance> => {
    const i = await startInstance(fake, args);
    started.push(i);
    return i;
  };
  const server = async (options: Parameters<typeof startRedisServer>[0] = {}): Promise<RedisServer> => {
    const s = await startRedisServer(options);
    servers.push(s);
    return s;
  };

  it('down at start: a warning naming --store, memory only, every request 200; used once it comes up', async () => {
    const port = await freePort();
    const t0 = performance.now();
    const p = await instance(['--store', `redis://127.0.0.1:${port}`]);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(p.h.logLines.some((l) => l.includes('WARN') && l.includes('--store redis://127.0.0.1:') && l.includes('code=REDIS_UNREACHABLE'))).toBe(true);
    expect(p.h.proxy.status().store).toMatchObject({ kind: 'redis', state: 'down', problem: 'REDIS_UNREACHABLE' });
    const down = await alternatingChat([p], 'sk-down-at-start', true);
    expect(down.statuses.every((s) => s === 200)).toBe(true);

    // The server comes up on that port: the proxy reconnects (backoff capped at 2 s) and writes to it.
    const late = await startRedisServer({ port });
    servers.push(late);
    await until(() => storeState(p) === 'connected', 5000, 'reconnected');
    await alternatingChat([p], 'sk-after-up', false);
    await until(() => Number(late.cli(['DBSIZE'])) > 0, 2000, 'written to Redis');
  });

  it('stopped mid-run: requests stay 200 and fast (a miss degrades as without Redis); restarted: used again', async () => {
    const r = await server();
    const p = await instance(['--store', r.url]);
    const q = await instance(['--store', r.url]);
    const first = await alternatingChat([p, q], 'sk-mid-run', true);
    expect(first.statuses.every((s) => s === 200)).toBe(true);

    await r.stop();
    // The close first, then the refused reconnect (100 ms later) names the problem.
    const refused = (i: Instance): boolean => i.h.proxy.status().store.problem === 'REDIS_UNREACHABLE';
    await until(() => storeState(p) === 'down' && storeState(q) === 'down' && refused(p) && refused(q), 3000, 'both see it down');
    const echoes = fake.echoes.length;
    const away = await alternatingChat([p, q], 'sk-while-away', true);
    expect(away.statuses.every((s) => s === 200)).toBe(true);
    // The turn that reached the other instance could not be read: placeholder, as without Redis.
    expect(fake.echoes.slice(echoes).some((e) => !e.exact)).toBe(true);
    expect(Math.max(...away.ms)).toBeLessThan(1000);
    expect(p.h.proxy.cache.stats().storeReadErrors + q.h.proxy.cache.stats().storeReadErrors).toBeGreaterThan(0);
    // A person and a scraper see it too.
    const page = await request(`${q.h.proxy.url}/`, { agent: new http.Agent(), headers: { accept: 'text/html' } });
    expect(page.text).toContain(`<tr><th>store</th><td>redis redis://127.0.0.1:${r.port}</td></tr>`);
    expect(page.text).toContain('<tr><th>store state</th><td>down (REDIS_UNREACHABLE)</td></tr>');
    const downMetrics = parsePrometheus((await request(`${q.h.proxy.url}/metrics`, { agent: new http.Agent() })).text);
    expect(valueOf(downMetrics, 'mimo_proxy_store_up', { kind: 'redis' })).toBe(0);
    expect(valueOf(downMetrics, 'mimo_proxy_store_errors_total', { op: 'read' })).toBe(q.h.proxy.cache.stats().storeReadErrors);

    await r.start();
    await until(() => storeState(p) === 'connected' && storeState(q) === 'connected', 5000, 'both reconnected');
    expect(p.h.logLines.some((l) => l.includes('Redis is back'))).toBe(true);
    const again = fake.echoes.length;
    const back = await alternatingChat([p, q], 'sk-after-restart', false);
    expect(back.statuses).toEqual([200, 200, 200, 200]);
    expect(fake.echoes.slice(again).every((e) => e.exact)).toBe(true);
    const upMetrics = parsePrometheus((await request(`${q.h.proxy.url}/metrics`, { agent: new http.Agent() })).text);
    expect(valueOf(upMetrics, 'mimo_proxy_store_up', { kind: 'redis' })).toBe(1);
    expect(valueOf(upMetrics, 'mimo_proxy_store_call_seconds_count', { kind: 'redis' })).toBeGreaterThan(0);
    expect(valueOf(upMetrics, 'mimo_proxy_cache_hits_total', { level: 'store' })).toBeGreaterThan(0);
  });

  it(`paused (SIGSTOP): each store call gives up after ${CALL_TIMEOUT_MS} ms, a burst of misses all answer 200; resumed (SIGCONT): used again`, async () => {
    const r = await server();
    const p = await instance(['--store', r.url]);
    const q = await instance(['--store', r.url]);
    // The conversation's first turns on p, so q must read them from Redis.
    const part = await alternatingChat([p], 'sk-paused', true);
    expect(part.statuses.every((s) => s === 200)).toBe(true);
    const history = part.history.slice(0, 5);

    r.pause();
    try {
      const burst = await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const t0 = performance.now();
          const turn = await sendChat({ url: CHAT, agent: q.agent, ca: q.h.proxy.ca.caPem, key: 'sk-paused', stream: i % 2 === 0 }, history);
          return { status: turn.response.status, ms: performance.now() - t0 };
        }),
      );
      expect(burst.map((x) => x.status)).toEqual(Array(12).fill(200));
      // Each request waited at most one bounded store call (plus the fake's own answer time).
      expect(Math.max(...burst.map((x) => x.ms))).toBeLessThan(1500);
      expect(q.h.proxy.counters.placeholders).toBeGreaterThan(0);
      expect(q.h.proxy.cache.stats().storeReadErrors).toBeGreaterThan(0);
    } finally {
      r.resume();
    }
    await until(() => storeState(q) === 'connected', 3000, 'connected after SIGCONT');
    const injected = q.h.proxy.counters.injected;
    const storeHits = q.h.proxy.cache.stats().storeHits;
    const turn = await sendChat({ url: CHAT, agent: q.agent, ca: q.h.proxy.ca.caPem, key: 'sk-paused-2', stream: false }, [{ role: 'user', content: 'x' }]);
    expect(turn.response.status).toBe(200);
    // A fresh read of p's turns from q now succeeds.
    const resumed = await sendChat({ url: CHAT, agent: q.agent, ca: q.h.proxy.ca.caPem, key: 'sk-paused', stream: false }, history);
    expect(resumed.response.status).toBe(200);
    expect(q.h.proxy.counters.injected).toBeGreaterThan(injected);
    expect(q.h.proxy.cache.stats().storeHits).toBeGreaterThan(storeHits);
  });

  it('wrong password: one clear warning naming --store, the password in no log line or page, requests 200', async () => {
    const r = await server({ password: 'right-secret' });
    const p = await instance(['--store', `redis://:wrong-secret@127.0.0.1:${r.port}`]);
    expect(p.h.logLines.some((l) => l.includes('code=REDIS_AUTH') && l.includes('--store redis://127.0.0.1:') && l.includes('Fix: pass --store'))).toBe(true);
    expect(p.h.proxy.status().store).toMatchObject({ state: 'down', problem: 'REDIS_AUTH' });
    const run = await alternatingChat([p], 'sk-wrong-password', true);
    expect(run.statuses.every((s) => s === 200)).toBe(true);
    expect(p.h.logLines.join('')).not.toContain('secret');
    expect(JSON.stringify(p.h.proxy.status())).not.toContain('secret');
    // The right password works.
    const ok = await instance(['--store', `redis://:right-secret@127.0.0.1:${r.port}`]);
    expect(storeState(ok)).toBe('connected');
  });

  it('a database the server does not have: a warning in its own words, naming --store; requests 200', async () => {
    const r = await server();
    const p = await instance(['--store', `${r.url}/999`]);
    await until(() => p.h.logLines.some((l) => l.includes('code=REDIS_UNREACHABLE') && l.includes('DB index is out of range') && l.includes('/999')), 3000, 'warned');
    expect((await alternatingChat([p], 'sk-db', false)).statuses.every((s) => s === 200)).toBe(true);
  });

  it('a server that is not Redis (it answers garbage, then hangs up): requests 200, the proxy serves on from memory', async () => {
    const sockets = new Set<net.Socket>();
    const impostor = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('data', () => socket.write(Buffer.from('*9\r\n$-7\r\n\x00\xff garbage :not-a-number\r\n+OK\r\n')));
      setTimeout(() => socket.destroy(), 200).unref();
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const port = (impostor.address() as net.AddressInfo).port;
      const p = await instance(['--store', `redis://127.0.0.1:${port}`]);
      const run = await alternatingChat([p], 'sk-impostor', true);
      expect(run.statuses).toEqual([200, 200, 200, 200]);
      expect(storeState(p)).not.toBe('connected');
      expect((await request(`${p.h.proxy.url}/health`, { agent: new http.Agent() })).status).toBe(200);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => impostor.close(resolve));
    }
  });

  it('TLS: rediss:// to a plain port and to an untrusted certificate fail with REDIS_TLS; a trusted one (--upstream-ca) connects', async () => {
    const plain = await server();
    const p = await instance(['--store', `rediss://127.0.0.1:${plain.port}`]);
    // A plain Redis never answers a TLS hello: the connect timeout (2 s) tells.
    await until(() => p.h.logLines.some((l) => l.includes('code=REDIS_TLS') && l.includes('plain (non-TLS) port')), 4000, 'REDIS_TLS logged');
    expect((await alternatingChat([p], 'sk-tls-plain', false)).statuses.every((s) => s === 200)).toBe(true);

    testCa = makeTestCa('mimo-proxy test Redis CA');
    const secure = await server({ tlsCa: testCa });
    const untrusted = await startHarness(['--store', secure.url]);
    try {
      expect(untrusted.logLines.some((l) => l.includes('code=REDIS_TLS'))).toBe(true);
      expect(untrusted.proxy.status().store).toMatchObject({ state: 'down', problem: 'REDIS_TLS' });
    } finally {
      await untrusted.stop();
    }
    const trusted = await startHarness(['--store', secure.url, '--upstream-ca', testCa.certPath]);
    try {
      expect(trusted.proxy.status().store).toMatchObject({ state: 'connected', problem: undefined });
    } finally {
      await trusted.stop();
    }
  });
});

describe('the real CLI process on a store that is not a working Redis', () => {
  it('answered nil to every command (it looks connected), then a 1 GB reply header and a hang-up: every request 200, the failures counted, the process lives', async () => {
    const replies = { now: '*-1\r\n' };
    const sockets = new Set<net.Socket>();
    const impostor = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('data', () => {
        socket.write(replies.now);
        if (replies.now.startsWith('$')) socket.destroy();
      });
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const fake = await startFakeMimo({ toolRounds: 2 });
    const dir = tempDir('gateway-cli');
    const port = (impostor.address() as net.AddressInfo).port;
    const proxy = await spawnProxy(['--certs', path.join(dir, 'certs'), ...upstreamArgs(fake), '--store', `redis://127.0.0.1:${port}`]);
    const agent = new ConnectAgent({ host: '127.0.0.1', port: proxy.port });
    try {
      const ca = readFileSync(path.join(dir, 'certs', 'ca.pem'), 'utf8');
      const chat = async (key: string): Promise<number[]> => {
        const messages: ChatMessage[] = [{ role: 'user', content: '北京今天天气怎么样？' }];
        const statuses: number[] = [];
        for (let round = 0; round < 4; round++) {
          const turn = await sendChat({ url: CHAT, agent, ca, key, stream: round % 2 === 0 }, messages);
          statuses.push(turn.response.status);
          const calls = turn.message?.tool_calls ?? [];
          if (!turn.message || calls.length === 0) break;
          messages.push({ role: 'assistant', content: turn.message.content ?? '', tool_calls: calls });
          for (const call of calls) messages.push({ role: 'tool', tool_call_id: call.id, content: '晴' });
        }
        return statuses;
      };
      expect(await chat('sk-nil-store')).toEqual([200, 200, 200]);
      const families = parsePrometheus((await request(`${proxy.url}/metrics`, { agent: new http.Agent() })).text);
      expect(valueOf(families, 'mimo_proxy_store_errors_total', { op: 'write' })).toBeGreaterThan(0);
      replies.now = '$1073741824\r\n';
      expect(await chat('sk-huge-store')).toEqual([200, 200, 200]);
      expect(proxy.alive()).toBe(true);
      expect((await request(`${proxy.url}/health`, { agent: new http.Agent() })).status).toBe(200);
    } finally {
      agent.destroy();
      await proxy.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => impostor.close(resolve));
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
