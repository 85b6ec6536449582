/**
 * The bound on request bodies held for rewriting (src/reasoning/exchange.ts, BodyBudget): a
 * body the budget cannot hold is forwarded unchanged from its first byte, and holding it is
 * never attempted first. A client's Content-Length alone must not make the proxy allocate
 * what the budget refuses (the buffer a large body is read into for the rewrite worker).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ReasoningCache, DEFAULT_CACHE_LIMITS } from '../../src/cache/cache.js';
import { chatDialect } from '../../src/chat/dialect.js';
import { silentLogger } from '../../src/log.js';
import { providerById } from '../../src/providers.js';
import { RewriteWorkers } from '../../src/proxy/rewrite-worker.js';
import { ReasoningService } from '../../src/reasoning/exchange.js';
import { newCounters } from '../../src/stats.js';

const MiB = 1024 * 1024;
const started: RewriteWorkers[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((w) => w.close()));
});

function service(budget: number): ReasoningService {
  const offload = new RewriteWorkers(silentLogger);
  started.push(offload);
  return new ReasoningService({
    config: { degrade: 'placeholder', maxBodyBytes: 256 * MiB },
    cache: new ReasoningCache({ limits: DEFAULT_CACHE_LIMITS }),
    counters: newCounters(),
    log: silentLogger,
    offload,
    bufferedBodiesBytes: budget,
  });
}

describe('request bodies held for rewriting', () => {
  it('a declared length over the budget allocates nothing: its first byte goes upstream at once', () => {
    const reasoning = service(4 * MiB);
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 2; i++) {
      const exchange = reasoning.exchange({ 'content-length': String(64 * MiB) }, chatDialect, providerById('mimo')!);
      expect(exchange.requestData(Buffer.from('{'))?.toString()).toBe('{');
    }
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * MiB);
    expect(reasoning.bufferedBytes).toBe(0);
  });

  it('a declared length within the budget is held (and its bytes reserved) from the first byte', () => {
    const reasoning = service(16 * MiB);
    const exchange = reasoning.exchange({ 'content-length': String(4 * MiB) }, chatDialect, providerById('mimo')!);
    expect(exchange.requestData(Buffer.from('{'))).toBeUndefined();
    expect(reasoning.bufferedBytes).toBe(4 * MiB);
    exchange.abort();
    expect(reasoning.bufferedBytes).toBe(0);
  });
});
