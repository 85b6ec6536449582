/**
 * `npm run bench`: speed and memory of mimo-proxy, as ratios to a direct
 * connection measured in the same run (so the figures hold on a noisy
 * machine). The fake MiMo upstream and the clients run in this process; the
 * proxy runs as its own process (the real CLI), so its CPU and RSS are its
 * own. Everything talks to 127.0.0.1 only; every loop is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeMimo, type FakeMimo } from '../test/support/fake-mimo.js';
import { ConnectAgent } from '../test/support/proxy-client.js';
import { ReasoningCache } from '../src/cache/cache.js';
import { rewriteChatRequest } from '../src/chat/rewrite.js';
import { chatContextForm, chatTurnIdentity } from '../src/chat/fingerprint.js';
import { ContextWindows, learnKeys } from '../src/reasoning/match.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const KEY = 'sk-bench-0000';
const MiB = 1024 * 1024;

// ---------------------------------------------------------------- helpers

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;

interface ProxyProcess {
  port: number;
  pid: number;
  caPem: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function spawnProxy(fake: FakeMimo, certsDir: string, nodeFlags: string[] = []): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [...nodeFlags, CLI, 'start', '--port', '0', '--certs', certsDir, '--no-persist', '--log-level', 'warn',
    '--connect-to', `:443:127.0.0.1:${fake.port}`, '--upstream-ca', fake.ca.certPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the proxy did not start within 20 s')), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`the proxy exited with ${code}`)));
  });
  child.stdout!.resume();
  return {
    port,
    pid: child.pid!,
    caPem: readFileSync(path.join(certsDir, 'ca.pem'), 'utf8'),
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** utime+stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss: round(kb('VmRSS') / 1024, 1), peak: round(kb('VmHWM') / 1024, 1) };
}

interface Target {
  name: string;
  agent: () => http.Agent;
  url: string;
  ca?: string;
  servername?: string;
  host?: string;
  port?: number;
}

interface Timing {
  ttfb: number;
  total: number;
  bytes: number;
  eventTimes: number[];
}

/** One chat request; resolves with time to headers, total time, bytes and the arrival time of each SSE event. */
function chat(target: Target, agent: http.Agent, body: string): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const u = new URL(target.url);
    const started = performance.now();
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      {
        host: target.host ?? u.hostname,
        port: target.port ?? (u.port || (u.protocol === 'https:' ? 443 : 80)),
        path: u.pathname,
        method: 'POST',
        agent,
        ca: target.ca,
        servername: target.servername,
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', host: u.host },
      },
      (res) => {
        const ttfb = performance.now() - started;
        let bytes = 0;
        let pending = '';
        const eventTimes: number[] = [];
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const now = performance.now();
          bytes += Buffer.byteLength(chunk);
          pending += chunk;
          let at = pending.indexOf('\n\n');
          while (at !== -1) {
            eventTimes.push(now);
            pending = pending.slice(at + 2);
            at = pending.indexOf('\n\n');
          }
        });
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          else resolve({ ttfb, total: performance.now() - started, bytes, eventTimes });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function chatBody(stream = true): string {
  return JSON.stringify({ model: 'mimo-v2.6-pro', stream, messages: [{ role: 'user', content: 'bench' }] });
}

/** The same request on the Anthropic-compatible endpoint. */
function messagesBody(stream = true): string {
  return JSON.stringify({ model: 'mimo-v2.6-pro', max_tokens: 1024, stream, messages: [{ role: 'user', content: 'bench' }] });
}

/** The body a target's endpoint takes. */
function bodyFor(target: Target): string {
  return target.url.includes('/anthropic/') ? messagesBody() : chatBody();
}

async function sequential(target: Target, count: number, fresh: boolean): Promise<number[]> {
  const ttfbs: number[] = [];
  let agent = target.agent();
  for (let i = 0; i < count; i++) {
    if (fresh) {
      agent.destroy();
      agent = target.agent();
    }
    ttfbs.push((await chat(target, agent, bodyFor(target))).ttfb);
  }
  agent.destroy();
  return ttfbs;
}

async function concurrent(target: Target, concurrency: number, total: number): Promise<{ seconds: number; bytes: number }> {
  const agent = target.agent();
  (agent as http.Agent).maxSockets = concurrency;
  let next = 0;
  let bytes = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        const timing = await chat(target, agent, bodyFor(target));
        bytes += timing.bytes;
      }
    }),
  );
  agent.destroy();
  return { seconds: (performance.now() - started) / 1000, bytes };
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  const began = performance.now();
  const fake = await startFakeMimo({ toolRounds: 0, answerChunks: 4, reasoningChunks: 2, record: false });
  const certsDir = mkdtempSync(path.join(os.tmpdir(), 'mimo-bench-'));
  const proxy = await spawnProxy(fake, certsDir);
  const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model };
  const rows: string[][] = [];
  const row = (...cells: (string | number)[]): void => {
    rows.push(cells.map(String));
  };

  const direct: Target = { name: 'direct', agent: () => new https.Agent({ keepAlive: true }), url: 'https://api.xiaomimimo.com/v1/chat/completions', ca: fake.ca.certPem, host: '127.0.0.1', port: fake.port, servername: 'api.xiaomimimo.com' };
  const mitm: Target = { name: 'mitm', agent: () => new ConnectAgent({ host: '127.0.0.1', port: proxy.port }), url: 'https://api.xiaomimimo.com/v1/chat/completions', ca: proxy.caPem };
  const directMode: Target = { name: 'direct-mode', agent: () => new http.Agent({ keepAlive: true }), url: `http://127.0.0.1:${proxy.port}/v1/chat/completions` };
  const targets = [direct, mitm, directMode];

  try {
    // 1. Request rewrite time (in process, the pure function, before any traffic so the heap is quiet): 50 KB, 2 MB (500 messages), 20 MB.
    const rewrite: Record<string, unknown> = {};
    for (const [label, messages, pad] of [['50 KB', 12, 8000], ['2 MB', 500, 8000], ['20 MB', 2000, 20000]] as const) {
      const cache = new ReasoningCache({ limits: { maxEntries: 100_000, maxBytes: 512 * MiB, ttlMs: 3_600_000 } });
      const list: unknown[] = [{ role: 'user', content: 'start' }];
      for (let i = 0; i < messages / 2; i++) {
        const call = { id: `call_${i}`, type: 'function', function: { name: 'read_file', arguments: JSON.stringify({ path: `src/${i}.ts` }) } };
        list.push({ role: 'assistant', content: '', tool_calls: [call] }, { role: 'tool', tool_call_id: call.id, content: 'x'.repeat(pad) });
      }
      // Every turn remembered as the proxy learns it from the upstream's answer: its ids and its place in the conversation.
      const windows = new ContextWindows(list, chatContextForm);
      for (let index = 1; index < list.length; index += 2) {
        const identity = chatTurnIdentity(list[index] as never);
        if (!identity) throw new Error('the rewrite benchmark built a turn without an identity');
        const reasoning = `推理 ${(index - 1) / 2}：先读文件再决定。`.repeat(20);
        cache.remember('k:bench', learnKeys({ identity, reasoning, context: windows.before(index), upstreamIds: true }), reasoning);
      }
      const body = Buffer.from(JSON.stringify({ model: 'mimo-v2.6-pro', messages: list }));
      // The same conversation from a client that renumbered the call ids: every turn is then
      // found by its context (the digests of the messages before it), the costlier match.
      const renumbered = Buffer.from(body.toString('utf8').replace(/"call_(\d+)"/g, '"own_$1"'));
      const timed = (input: Buffer): number => {
        const times: number[] = [];
        for (let i = 0; i < 15; i++) {
          const t0 = performance.now();
          const out = rewriteChatRequest(input, (keys) => cache.lookup('k:bench', keys), { degrade: 'placeholder' });
          times.push(performance.now() - t0);
          if (out.kind !== 'rewritten' || out.changes.injected !== messages / 2) throw new Error('the rewrite benchmark expected every turn put back');
        }
        return round(quantile(times, 0.5));
      };
      const byIds = timed(body);
      const byContext = label === '20 MB' ? undefined : timed(renumbered);
      rewrite[label] = { bytes: body.length, messages: list.length, ms: byIds, msByContext: byContext };
      row(`request rewrite, ${label} (${list.length} messages)`, `${byIds} ms p50${byContext === undefined ? '' : `; ids renumbered: ${byContext} ms`}`, `${round(body.length / MiB, 2)} MiB body`, label === '2 MB' ? '< 20 ms' : '');
    }
    results.rewrite = rewrite;

    // Warm-up: JIT, certificate for api.xiaomimimo.com, keep-alive pools.
    for (const t of targets) await sequential(t, 30, false);

    // 1. Time to first byte, warm (keep-alive) and cold (new connection: CONNECT + TLS).
    const ttfb: Record<string, Record<string, number>> = {};
    for (const t of targets) {
      const warm = await sequential(t, 300, false);
      const cold = await sequential(t, 60, true);
      ttfb[t.name] = { warmP50: quantile(warm, 0.5), warmP99: quantile(warm, 0.99), coldP50: quantile(cold, 0.5), coldP99: quantile(cold, 0.99) };
    }
    for (const t of [mitm, directMode]) {
      const a = ttfb[t.name]!;
      const d = ttfb.direct!;
      row(`added TTFB warm p50/p99 (${t.name})`, `${round(a.warmP50! - d.warmP50!)} / ${round(a.warmP99! - d.warmP99!)} ms`, `direct ${round(d.warmP50!)} / ${round(d.warmP99!)} ms`, 'p50 < 2 ms');
      row(`added TTFB cold p50/p99 (${t.name})`, `${round(a.coldP50! - d.coldP50!)} / ${round(a.coldP99! - d.coldP99!)} ms`, `direct ${round(d.coldP50!)} / ${round(d.coldP99!)} ms`, '');
    }
    results.ttfbMs = ttfb;

    // 2. Added latency per chunk on a 500-chunk stream: event written upstream -> event read by the client.
    fake.options.answerChunks = 500;
    fake.options.chunkDelayMs = 1;
    const perChunk: Record<string, { p50: number; p99: number }> = {};
    for (const t of [direct, mitm, directMode]) {
      const latencies: number[] = [];
      const agent = t.agent();
      for (let i = 0; i < 3; i++) {
        const sent: number[] = [];
        fake.options.onEvent = (index, at) => {
          sent[index] = at;
        };
        const timing = await chat(t, agent, chatBody());
        timing.eventTimes.forEach((at, index) => {
          if (sent[index] !== undefined) latencies.push(at - sent[index]!);
        });
      }
      agent.destroy();
      perChunk[t.name] = { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
    }
    fake.options.onEvent = undefined;
    fake.options.chunkDelayMs = 0;
    for (const t of [mitm, directMode]) {
      const a = perChunk[t.name]!;
      row(`added per-chunk latency p50/p99 (${t.name})`, `${round(a.p50 - perChunk.direct!.p50, 3)} / ${round(a.p99 - perChunk.direct!.p99, 3)} ms`, `direct ${round(perChunk.direct!.p50, 3)} / ${round(perChunk.direct!.p99, 3)} ms`, 'p50 < 1 ms, p99 < 5 ms');
    }
    results.perChunkMs = perChunk;

    // 3. Throughput with 1, 16, 64 concurrent streams (50 chunks each), and proxy CPU per 1,000 requests.
    fake.options.answerChunks = 50;
    const throughput: Record<string, unknown> = {};
    for (const c of [1, 16, 64]) {
      const total = c === 1 ? 300 : 1000;
      const d = await concurrent(direct, c, total);
      const cpu0 = cpuSeconds(proxy.pid);
      const m = await concurrent(mitm, c, total);
      const cpu1 = cpuSeconds(proxy.pid);
      const dm = await concurrent(directMode, c, total);
      const rps = (r: { seconds: number }): number => total / r.seconds;
      const mbps = (r: { seconds: number; bytes: number }): number => r.bytes / MiB / r.seconds;
      throughput[`c${c}`] = {
        direct: { rps: round(rps(d)), mbps: round(mbps(d)) },
        mitm: { rps: round(rps(m)), mbps: round(mbps(m)), ratio: round(rps(m) / rps(d)), proxyCpuSecondsPer1000: round(((cpu1 - cpu0) * 1000) / total) },
        directMode: { rps: round(rps(dm)), mbps: round(mbps(dm)), ratio: round(rps(dm) / rps(d)) },
      };
      row(`throughput, ${c} concurrent streams (mitm)`, `${round(rps(m), 0)} req/s, ${round(mbps(m))} MB/s = ${round(rps(m) / rps(d))}x direct`, `direct ${round(rps(d), 0)} req/s; direct mode ${round(rps(dm) / rps(d))}x`, c === 64 ? '>= 0.8x' : '');
      row(`proxy CPU per 1,000 requests, ${c} concurrent`, `${round(((cpu1 - cpu0) * 1000) / total)} s`, '', '');
    }
    results.throughput = throughput;

    // 4. The Anthropic-compatible endpoint through the same proxy: warm TTFB and 16 streams.
    const anthropicUrl = (t: Target): Target => ({ ...t, name: `${t.name} anthropic`, url: t.url.replace('/v1/chat/completions', '/anthropic/v1/messages') });
    const [directAnthropic, mitmAnthropic] = [anthropicUrl(direct), anthropicUrl(mitm)] as [Target, Target];
    await sequential(mitmAnthropic, 30, false);
    const warmDirect = await sequential(directAnthropic, 300, false);
    const warmMitm = await sequential(mitmAnthropic, 300, false);
    row('added TTFB warm p50/p99 (mitm, Anthropic endpoint)', `${round(quantile(warmMitm, 0.5) - quantile(warmDirect, 0.5))} / ${round(quantile(warmMitm, 0.99) - quantile(warmDirect, 0.99))} ms`, `direct ${round(quantile(warmDirect, 0.5))} / ${round(quantile(warmDirect, 0.99))} ms`, 'p50 < 2 ms');
    const dA = await concurrent(directAnthropic, 16, 1000);
    const mA = await concurrent(mitmAnthropic, 16, 1000);
    row('throughput, 16 concurrent streams (mitm, Anthropic endpoint)', `${round(1000 / mA.seconds, 0)} req/s = ${round(dA.seconds / mA.seconds)}x direct`, `direct ${round(1000 / dA.seconds, 0)} req/s`, '');
    results.anthropic = { ttfbWarmMs: { direct: quantile(warmDirect, 0.5), mitm: quantile(warmMitm, 0.5) }, c16: { directRps: round(1000 / dA.seconds), mitmRps: round(1000 / mA.seconds) } };

    // 5. First connection to a new subdomain (a certificate is issued) vs a known one.
    const fresh: number[] = [];
    const known: number[] = [];
    for (let i = 0; i < 10; i++) {
      const host = `bench-${i}-${Date.now()}.xiaomimimo.com`;
      fresh.push((await chat({ ...mitm, url: `https://${host}/v1/chat/completions` }, mitm.agent(), chatBody())).ttfb);
      known.push((await chat(mitm, mitm.agent(), chatBody())).ttfb);
    }
    row('first request to a new subdomain (new certificate)', `${round(quantile(fresh, 0.5))} ms p50`, `known host, new connection: ${round(quantile(known, 0.5))} ms`, '');
    results.newSubdomainMs = { fresh: quantile(fresh, 0.5), known: quantile(known, 0.5) };

    // 6. Memory, each on a fresh proxy process: 500 streams open at once; then 10,000 sequential
    //    requests with V8's old space capped at 96 MiB, so garbage is collected instead of piling up
    //    lazily: flat RSS there (and no out-of-memory crash) means nothing is retained per request.
    const memProxy = await spawnProxy(fake, path.join(certsDir, 'open-streams'));
    const memTarget: Target = { ...mitm, agent: () => new ConnectAgent({ host: '127.0.0.1', port: memProxy.port }), ca: memProxy.caPem };
    await sequential(memTarget, 20, false);
    fake.options.answerChunks = 400;
    fake.options.chunkDelayMs = 50;
    const before = rssMiB(memProxy.pid);
    const openAgent = new ConnectAgent({ host: '127.0.0.1', port: memProxy.port }, { maxSockets: Infinity });
    const open: http.ClientRequest[] = [];
    let firstBytes = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${firstBytes} of 500 streams opened within 90 s`)), 90_000);
      for (let i = 0; i < 500; i++) {
        const req = https.request({ host: 'api.xiaomimimo.com', port: 443, path: '/v1/chat/completions', method: 'POST', agent: openAgent, ca: memProxy.caPem, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' } }, (res) => {
          res.once('data', () => {
            if (++firstBytes === 500) {
              clearTimeout(timer);
              resolve();
            }
          });
          res.resume();
        });
        req.on('error', () => undefined);
        req.end(chatBody());
        open.push(req);
      }
    });
    const withOpen = rssMiB(memProxy.pid);
    for (const req of open) req.destroy();
    openAgent.destroy();
    fake.options.chunkDelayMs = 0;
    fake.options.answerChunks = 4;
    row('proxy RSS with 500 open streams', `${withOpen.rss} MiB (peak ${withOpen.peak})`, `idle before: ${before.rss} MiB`, '< 200 MB');

    await memProxy.stop();
    const seqProxy = await spawnProxy(fake, path.join(certsDir, 'sequential'), ['--max-old-space-size=96']);
    const seqTarget: Target = { ...mitm, agent: () => new ConnectAgent({ host: '127.0.0.1', port: seqProxy.port }), ca: seqProxy.caPem };
    const seqAgent = seqTarget.agent();
    const rssAt: Record<string, number> = {};
    for (let i = 1; i <= 10_000; i++) {
      await chat(seqTarget, seqAgent, chatBody(i % 2 === 0));
      if (i === 1000 || i === 5000 || i === 10_000) rssAt[i] = rssMiB(seqProxy.pid).rss;
    }
    seqAgent.destroy();
    await seqProxy.stop();
    row('proxy RSS after 1k / 5k / 10k sequential requests', `${rssAt[1000]} / ${rssAt[5000]} / ${rssAt[10000]} MiB`, 'old space capped at 96 MiB; every reply learned into the cache', 'no growth');
    results.memoryMiB = { idle: before, with500OpenStreams: withOpen, sequential: rssAt };

  } finally {
    await proxy.stop();
    await fake.close();
    rmSync(certsDir, { recursive: true, force: true });
  }

  results.seconds = round((performance.now() - began) / 1000, 1);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length), 6));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(['measure', 'result', 'baseline', 'target']));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
  console.log(`\n${results.seconds} s on ${results.cpus} x ${results.cpuModel}, Node ${results.node}`);
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const json = JSON.stringify({ ...results, table: rows }, null, 2);
  writeFileSync(path.join(dir, 'latest.json'), json);
  writeFileSync(path.join(dir, `run-${Date.now()}.json`), json);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
