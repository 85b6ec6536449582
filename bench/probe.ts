/**
 * The benchmark's probe, run in a worker thread so that its timings do not include the
 * bench process's own work (the fake upstream and the clients sending large bodies run on
 * the main thread): while the main thread sends large request bodies, it asks the proxy's
 * GET /health over and over, keeps one streamed chat request open and notes the gap between
 * its events, and samples the proxy's RSS. It stops when the main thread posts 'stop' and
 * answers with the figures. Loopback only; every loop ends on 'stop'.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ConnectAgent } from '../test/support/proxy-client.js';

export interface ProbeInput {
  /** The proxy to ask /health and to sample; absent for the direct baseline. */
  proxy?: { port: number; pid: number; caPem: string };
  /** Where the stream goes: through the proxy (MITM) or straight to the fake upstream. */
  stream: { via: 'mitm' } | { via: 'direct'; port: number; caPem: string };
  body: string;
  key: string;
}

export interface ProbeResult {
  health: { count: number; p50: number; max: number };
  stream: { events: number; maxGap: number; p50Gap: number };
  rssPeakMiB: number;
}

const input = workerData as ProbeInput;
let stopped = false;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const healthTimes: number[] = [];
async function pingHealth(): Promise<void> {
  if (!input.proxy) return;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  while (!stopped) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: input.proxy!.port, path: '/health', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) healthTimes.push(performance.now() - t0);
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
    });
    await sleep(5);
  }
  agent.destroy();
}

const gaps: number[] = [];
let streamReq: http.ClientRequest | undefined;
function openStream(): void {
  const s = input.stream;
  const agent = s.via === 'mitm' ? new ConnectAgent({ host: '127.0.0.1', port: input.proxy!.port }) : new https.Agent({ keepAlive: true });
  const options: https.RequestOptions = s.via === 'mitm'
    ? { host: 'api.xiaomimimo.com', port: 443, ca: input.proxy!.caPem }
    : { host: '127.0.0.1', port: s.port, ca: s.caPem, servername: 'api.xiaomimimo.com' };
  let last = NaN;
  let pending = '';
  streamReq = https.request({ ...options, path: '/v1/chat/completions', method: 'POST', agent, headers: { authorization: `Bearer ${input.key}`, 'content-type': 'application/json', host: 'api.xiaomimimo.com' } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const now = performance.now();
      pending += chunk;
      let at = pending.indexOf('\n\n');
      while (at !== -1) {
        if (!Number.isNaN(last)) gaps.push(now - last);
        last = now;
        pending = pending.slice(at + 2);
        at = pending.indexOf('\n\n');
      }
    });
    res.on('error', () => undefined);
  });
  streamReq.on('error', () => undefined);
  streamReq.on('close', () => agent.destroy());
  streamReq.end(input.body);
}

let rssPeak = 0;
async function sampleRss(): Promise<void> {
  if (!input.proxy) return;
  while (!stopped) {
    try {
      const status = readFileSync(`/proc/${input.proxy.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      rssPeak = Math.max(rssPeak, kb / 1024);
    } catch {
      // the process is gone: nothing more to sample
    }
    await sleep(10);
  }
}

openStream();
const loops = Promise.all([pingHealth(), sampleRss()]);
parentPort!.once('message', () => {
  stopped = true;
  streamReq?.destroy();
  void loops.then(() => {
    const result: ProbeResult = {
      health: { count: healthTimes.length, p50: quantile(healthTimes, 0.5), max: healthTimes.length ? Math.max(...healthTimes) : NaN },
      stream: { events: gaps.length + 1, maxGap: gaps.length ? Math.max(...gaps) : NaN, p50Gap: quantile(gaps, 0.5) },
      rssPeakMiB: Math.round(rssPeak * 10) / 10,
    };
    parentPort!.postMessage(result);
  });
});
