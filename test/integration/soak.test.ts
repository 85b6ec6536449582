/**
 * Soak: 200 forgetful agents at once, each running streamed tool
 * conversations back to back for 60 s through one proxy, against a fake MiMo
 * that rejects anything but the exact reasoning it produced. Proves: no
 * failed request, no wrong injection, and memory that levels off.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeMimo, type FakeMimo } from '../support/fake-mimo.js';
import { startHarness, upstreamArgs, type Harness } from '../support/harness.js';
import { ConnectAgent } from '../support/proxy-client.js';
import { runConversation } from '../support/conversation.js';
import { liveBytes } from '../support/net.js';

const CHAT = 'https://api.xiaomimimo.com/v1/chat/completions';
const AGENTS = 200;
const RUN_MS = 60_000;
/** Long enough for the cache to reach --cache-max (about 450 entries/s on a laptop, fewer on CI). */
const WARM_UP_MS = 15_000;
const SAMPLE_MS = 1_000;
/** Live memory (after a full GC) every this many samples. */
const LIVE_EVERY = 2;
/**
 * Small enough to fill during warm-up, so growth after it is not the cache's; large enough to
 * hold every running conversation's reasoning many times over (200 x 3 at a time).
 */
const CACHE_MAX = 5000;
/** Keys shared by the agents: several conversations per credential scope, several scopes. */
const KEYS = 20;
const MiB = 1024 * 1024;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
};

describe('soak', () => {
  let fake: FakeMimo;
  let h: Harness;
  let agent: ConnectAgent;

  beforeAll(async () => {
    // countOnly: the fake keeps no bodies or echoes (they would dominate memory), only counts.
    fake = await startFakeMimo({ toolRounds: 3, rejectPlaceholders: true, countOnly: true });
    h = await startHarness([...upstreamArgs(fake), '--cache-max', String(CACHE_MAX)]);
    agent = new ConnectAgent({ host: '127.0.0.1', port: h.proxy.port });
  }, 30_000);
  afterAll(async () => {
    agent.destroy();
    await h.stop();
    await fake.close();
  }, 30_000);

  it(`${AGENTS} concurrent streamed forgetful tool conversations for ${RUN_MS / 1000} s: zero failures, every reasoning exact, memory levels off`, async () => {
    const started = Date.now();
    const failures: string[] = [];
    let conversations = 0;
    let requests = 0;
    const rss: Array<{ at: number; bytes: number }> = [];
    const live: Array<{ at: number; bytes: number }> = [];
    let ticks = 0;
    let logLines = 0;
    const troubleLines: string[] = [];
    const sampler = setInterval(() => {
      const at = Date.now() - started;
      // The harness keeps every log line in memory; read and drop them, or they alone would grow (by ~0.5 KB a request).
      for (const line of h.logLines) if (/ (WARN|ERROR) /.test(line) && troubleLines.length < 20) troubleLines.push(line);
      logLines += h.logLines.length;
      h.logLines.length = 0;
      // A full GC every few seconds only: often enough to tell a leak from garbage, rarely enough not to slow the run.
      if (++ticks % LIVE_EVERY === 0) live.push({ at, bytes: liveBytes() });
      rss.push({ at, bytes: process.memoryUsage().rss });
    }, SAMPLE_MS);

    const worker = async (n: number): Promise<void> => {
      const key = `sk-soak-${n % KEYS}`;
      // Bounded twice: by time, and by a count no run can reach.
      for (let i = 0; i < 100_000 && Date.now() - started < RUN_MS; i++) {
        try {
          const { turns } = await runConversation({ url: CHAT, agent, ca: h.proxy.ca.caPem, key, stream: true });
          requests += turns.length;
          const statuses = turns.map((t) => t.response.status);
          if (statuses.length !== 4 || statuses.some((s) => s !== 200) || turns.at(-1)?.message?.tool_calls !== null) {
            failures.push(`statuses ${statuses.join(',')}`);
          } else {
            conversations++;
          }
        } catch (err) {
          failures.push((err as Error).message);
        }
        if (failures.length > 20) return;
      }
    };

    try {
      await Promise.all(Array.from({ length: AGENTS }, (_, n) => worker(n)));
    } finally {
      clearInterval(sampler);
    }

    expect(failures).toEqual([]);
    expect(troubleLines).toEqual([]);
    expect(logLines).toBeGreaterThan(0);
    expect(conversations).toBeGreaterThan(AGENTS);
    // Every conversation of 4 rounds sends back 1 + 2 + 3 assistant tool-call messages, each with exactly its reasoning.
    expect(fake.inexactEchoes).toBe(0);
    expect(fake.exactEchoes).toBe(conversations * 6);
    expect(h.proxy.counters.retries).toBe(0);
    expect(h.proxy.counters.placeholders).toBe(0);
    expect(h.proxy.counters.upstreamErrors).toBe(0);
    expect(h.proxy.counters.injected).toBe(conversations * 6);

    // Memory after warm-up (cache full, fake forgetting finished conversations): what survives a GC
    // stays level (in-flight stream buffers make single samples jumpy: medians of 5), and rss
    // does not keep climbing.
    const liveSettled = live.filter((s) => s.at >= WARM_UP_MS);
    expect(liveSettled.length).toBeGreaterThanOrEqual(15);
    const liveFirst = median(liveSettled.slice(0, 5).map((s) => s.bytes));
    const liveLast = median(liveSettled.slice(-5).map((s) => s.bytes));
    expect(liveLast - liveFirst, `live ${live.map((s) => Math.round(s.bytes / MiB)).join(' ')} MiB over ${requests} requests`).toBeLessThan(24 * MiB);
    const settled = rss.filter((s) => s.at >= WARM_UP_MS);
    expect(settled.length).toBeGreaterThanOrEqual(40);
    const first = median(settled.slice(0, 5).map((s) => s.bytes));
    const last = median(settled.slice(-5).map((s) => s.bytes));
    expect(last - first, `rss ${Math.round(first / MiB)} MiB -> ${Math.round(last / MiB)} MiB over ${requests} requests`).toBeLessThan(150 * MiB);
  }, 120_000);
});
