/**
 * Large request bodies through the real proxy (the compiled CLI in its own
 * process, so its memory and its event loop are its own): a 32 MB forgetful
 * request gets its reasoning put back (the fake MiMo checks it) while /health
 * keeps answering; eight at once stay within a memory bound, those past the
 * buffering budget forwarded unchanged; a worker that fails forwards the
 * original. The /health bound here is generous (a loaded 2-core CI machine):
 * the 50 ms target is the benchmark's.
 */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { runConversation, type ChatMessage } from '../support/conversation.js';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startRig, stopRig, tempDir, upstreamArgs, type Rig } from '../support/harness.js';
import { rewriteWorkerTestHooks } from '../../src/proxy/rewrite-worker.js';
import { spawnProxy, type ProxyProcess } from '../support/proxy-process.js';
import { ConnectAgent, request, type ClientResponse } from '../support/proxy-client.js';

const URL_ = 'https://api.xiaomimimo.com/v1/chat/completions';
/** A "32 MB" body (the fake MiMo takes at most 32 MiB). */
const PAD_BYTES = 31_000_000;
const HEALTH_BOUND_MS = 200;
const MiB = 1024 * 1024;
/**
 * Eight 31 MB bodies at once: the budget (128 MiB) holds four, each kept twice until the answer
 * (as sent and rewritten, for a retry): 4 x 2 x 31 MB = 236 MiB, plus one parse in the worker
 * (the body as a string, its tree and its serialisation: about 4 x 31 MB), plus the process at
 * rest (about 60 MiB), plus chunks not yet collected. Measured: about 700 MiB peak; before the
 * worker and the budget the same eight peaked at about 1 GB.
 */
const EIGHT_RSS_BOUND_MiB = 850;

let fake: FakeMimo | undefined;
let proxy: ProxyProcess | undefined;
let agent: ConnectAgent | undefined;
let dir: string | undefined;

afterEach(async () => {
  agent?.destroy();
  await proxy?.stop();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  fake = proxy = agent = dir = undefined;
});

async function start(): Promise<{ ca: string }> {
  fake = await startFakeMimo({ toolRounds: 2 });
  dir = tempDir('bigbody');
  proxy = await spawnProxy(['--certs', path.join(dir, 'certs'), ...upstreamArgs(fake), '--max-body', '64MB']);
  agent = new ConnectAgent({ host: '127.0.0.1', port: proxy.port });
  const ca = readFileSync(path.join(dir, 'certs', 'ca.pem'), 'utf8');
  return { ca };
}

/** A forgetful conversation's history (two tool rounds, the proxy learned their reasoning), its last tool result padded. */
async function bigHistory(ca: string, key: string): Promise<ChatMessage[]> {
  const { history } = await runConversation({ url: URL_, agent: agent!, ca, key, stream: true, maxRounds: 2 });
  const last = history.at(-1)!;
  expect(last.role).toBe('tool');
  return [...history.slice(0, -1), { ...last, content: `${last.content as string}${' '.repeat(PAD_BYTES)}` }];
}

/** GET /health over and over from another thread (this one parses the fake's bodies) until stopped; the slowest answer. */
function probeHealth(port: number): { stop(): Promise<{ worstMs: number; probes: number }> } {
  const worker = new Worker(
    `
    const http = require('node:http');
    const { parentPort, workerData } = require('node:worker_threads');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let stop = false, worstMs = 0, probes = 0;
    const started = Date.now();
    parentPort.on('message', () => (stop = true));
    (function once() {
      if (stop || Date.now() - started > 120000) {
        agent.destroy();
        parentPort.postMessage({ worstMs, probes });
        return;
      }
      const t = performance.now();
      const req = http.get({ host: '127.0.0.1', port: workerData, path: '/health', agent }, (res) => {
        res.resume();
        res.on('end', () => { worstMs = Math.max(worstMs, performance.now() - t); probes++; setTimeout(once, 10); });
      });
      req.on('error', () => { worstMs = Infinity; setTimeout(once, 10); });
    })();`,
    { eval: true, workerData: port },
  );
  const result = new Promise<{ worstMs: number; probes: number }>((resolve) => worker.once('message', resolve));
  return {
    async stop() {
      worker.postMessage('stop');
      const r = await result;
      await worker.terminate();
      return r;
    },
  };
}

function send(ca: string, key: string, messages: ChatMessage[]): Promise<ClientResponse> {
  return request(URL_, { agent: agent!, ca, headers: { authorization: `Bearer ${key}` }, body: JSON.stringify({ model: 'mimo-v2.6-pro', stream: false, messages }) });
}

function peakRssMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

describe('large request bodies', () => {
  it('a 32 MB forgetful request gets its reasoning put back while /health keeps answering', { timeout: 120_000 }, async () => {
    const { ca } = await start();
    const messages = await bigHistory(ca, 'sk-big');
    const echoes = fake!.echoes.length;
    const probe = probeHealth(proxy!.port);
    await new Promise((r) => setTimeout(r, 100));
    const res = await send(ca, 'sk-big', messages);
    const { worstMs, probes } = await probe.stop();
    expect(res.status).toBe(200);
    const put = fake!.echoes.slice(echoes);
    expect(put.length).toBe(2);
    expect(put.every((e) => e.exact)).toBe(true);
    expect(probes).toBeGreaterThan(5);
    expect(worstMs).toBeLessThan(HEALTH_BOUND_MS);
    expect(proxy!.alive()).toBe(true);
  });

  it('eight at once: those within the budget are rewritten, the rest forwarded unchanged, memory stays bounded', { timeout: 180_000 }, async () => {
    const { ca } = await start();
    const histories = await Promise.all(Array.from({ length: 8 }, (_, i) => bigHistory(ca, `sk-eight-${i}`)));
    const probe = probeHealth(proxy!.port);
    const answers = await Promise.all(histories.map((messages, i) => send(ca, `sk-eight-${i}`, messages)));
    const { worstMs } = await probe.stop();
    const statuses = answers.map((a) => a.status);
    // Rewritten: 200; forwarded as sent (no reasoning): the fake's reasoning 400, passed on.
    expect(statuses.every((s) => s === 200 || s === 400)).toBe(true);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(Math.floor((128 * MiB) / (PAD_BYTES + MiB)));
    expect(statuses.filter((s) => s === 400).length).toBeGreaterThanOrEqual(1);
    expect(proxy!.log()).toContain('forwarded unchanged');
    expect(peakRssMiB(proxy!.child.pid!)).toBeLessThan(EIGHT_RSS_BOUND_MiB);
    expect(worstMs).toBeLessThan(Infinity);
    expect(proxy!.alive()).toBe(true);
  });
});

describe('a rewrite worker that fails', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    delete rewriteWorkerTestHooks.fault;
    delete rewriteWorkerTestHooks.timeoutMs;
    if (rig) await stopRig(rig);
    rig = undefined;
  });

  for (const fault of ['throw', 'hang', 'crash'] as const) {
    it(`(${fault}) forwards the original body unchanged; the proxy serves on`, async () => {
      rig = await startRig({ toolRounds: 2 });
      const ca = rig.h.proxy.ca.caPem;
      const { history } = await runConversation({ url: URL_, agent: rig.agent, ca, key: 'sk-fault', stream: false, maxRounds: 2 });
      const last = history.at(-1)!;
      const messages = [...history.slice(0, -1), { ...last, content: `${last.content as string}${' '.repeat(2 * MiB)}` }];
      const body = JSON.stringify({ model: 'mimo-v2.6-pro', stream: false, messages });
      rewriteWorkerTestHooks.fault = fault;
      rewriteWorkerTestHooks.timeoutMs = 500;
      const before = rig.fake.requests.length;
      const res = await request(URL_, { agent: rig.agent, ca, headers: { authorization: 'Bearer sk-fault' }, body });
      // As sent: the reasoning is missing, so the fake answers its reasoning 400, passed on as is.
      expect(res.status).toBe(400);
      expect(rig.fake.requests[before]!.body.equals(Buffer.from(body))).toBe(true);
      expect(rig.h.proxy.counters.skippedBodies).toBeGreaterThan(0);
      delete rewriteWorkerTestHooks.fault;
      if (fault !== 'throw') {
        // The failed worker was stopped; the next large body gets a new one and is rewritten.
        const again = await request(URL_, { agent: rig.agent, ca, headers: { authorization: 'Bearer sk-fault' }, body });
        expect(again.status).toBe(200);
      }
      expect((await request(`${rig.h.proxy.url}/health`, { agent: new (await import('node:http')).Agent() })).status).toBe(200);
    });
  }
});
