/**
 * Large bodies rewritten in the worker thread (src/proxy/rewrite-worker.ts)
 * come out exactly as the in-thread rewrite: the same bytes, learned
 * entries, context and changes, in both dialects, with hits and misses and
 * every policy; the lookups reach the cache on this thread. A worker that
 * throws, dies or hangs fails that rewrite only, and the next one works.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { anthropicDialect } from '../../src/anthropic/dialect.js';
import { chatDialect } from '../../src/chat/dialect.js';
import { createLogger } from '../../src/log.js';
import type { Dialect } from '../../src/reasoning/dialect.js';
import { retryPolicy } from '../../src/reasoning/exchange.js';
import { firstPolicy } from '../../src/reasoning/upstream.js';
import { providerById } from '../../src/providers.js';
import type { RewriteOutcome, RewritePolicy } from '../../src/reasoning/rewrite.js';
import { RewriteWorkers, rewriteWorkerTestHooks, sharedBody, WorkerFailure } from '../../src/proxy/rewrite-worker.js';
import { anthropicSession, chatSession, type Session } from '../support/big-conversation.js';
import { memory } from '../support/unit.js';

const log = createLogger('error', () => undefined);
const started: RewriteWorkers[] = [];

function workers(): RewriteWorkers {
  const w = new RewriteWorkers(log);
  started.push(w);
  return w;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((w) => w.close()));
  delete rewriteWorkerTestHooks.fault;
  delete rewriteWorkerTestHooks.timeoutMs;
});

// The providers' policies too: their patterns (RegExp) and repairs cross to the worker intact.
const POLICIES: RewritePolicy[] = [
  { degrade: 'placeholder' },
  { degrade: 'flatten' },
  retryPolicy('placeholder'),
  retryPolicy('flatten'),
  firstPolicy('placeholder', providerById('mimo')!),
  firstPolicy('placeholder', providerById('deepseek')!),
  retryPolicy('placeholder', providerById('deepseek')!),
];
const CASES: [string, Dialect, (steps: number, pad: number) => Session][] = [
  ['chat', chatDialect, chatSession],
  ['anthropic', anthropicDialect, anthropicSession],
];

/** The outcome with its body as bytes, for a deep comparison. */
function comparable(outcome: RewriteOutcome): unknown {
  return outcome.kind === 'skipped' ? outcome : { ...outcome, body: outcome.body.toString('base64') };
}

describe('rewriting in the worker thread', () => {
  for (const [name, dialect, session] of CASES) {
    it(`${name}: the same outcome as in this thread (bytes, learned, context, changes), hits and misses, every policy`, async () => {
      const w = workers();
      const { body, remembered } = session(40, 2 * 1024 * 1024);
      for (const policy of POLICIES) {
        const here = memory(remembered);
        const expected = dialect.rewrite(body, here.lookup, policy);
        const there = memory(remembered);
        const actual = await w.rewrite(dialect, sharedBody(body), (keys) => there.lookup(keys), policy);
        expect(expected.kind).toBe('rewritten');
        expect(comparable(actual)).toEqual(comparable(expected));
        if (expected.kind !== 'skipped') {
          expect(expected.changes.injected).toBeGreaterThan(0);
          expect(expected.changes.missing).toBeGreaterThan(0);
          expect(expected.learned.length).toBeGreaterThan(0);
        }
      }
    });

    it(`${name}: an unchanged body comes back as the very Buffer given; an invalid one is skipped as here`, async () => {
      const w = workers();
      const plain = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }));
      const shared = sharedBody(plain);
      const outcome = await w.rewrite(dialect, shared, memory().lookup, { degrade: 'placeholder' });
      expect(outcome.kind).toBe('unchanged');
      expect(outcome.kind !== 'skipped' && outcome.body).toBe(shared);
      const invalid = sharedBody(Buffer.from('{"messages": ['));
      expect(await w.rewrite(dialect, invalid, memory().lookup, { degrade: 'placeholder' })).toEqual(dialect.rewrite(invalid, memory().lookup, { degrade: 'placeholder' }));
    });
  }

  it('asks the lookup on this thread with the keys in order, as the in-thread rewrite reads them', async () => {
    const w = workers();
    const { body, remembered } = chatSession(12, 10);
    const here = memory(remembered);
    chatDialect.rewrite(body, here.lookup, { degrade: 'placeholder' });
    const asked: string[][] = [];
    const there = memory(remembered);
    await w.rewrite(chatDialect, sharedBody(body), (keys) => (asked.push([...keys]), there.lookup(keys)), { degrade: 'placeholder' });
    // The worker sends every key of a lookup at once; the in-thread lookup stops at a hit.
    expect(asked.length).toBe(here.calls.length);
    asked.forEach((keys, i) => expect(keys.slice(0, here.calls[i]!.length)).toEqual(here.calls[i]));
  });

  it('a lookup that throws is a miss, as in this thread', async () => {
    const w = workers();
    const { body } = chatSession(8, 10);
    const throwing = (): string | undefined => {
      throw new Error('cache broke');
    };
    const expected = chatDialect.rewrite(body, throwing, { degrade: 'placeholder' });
    expect(comparable(await w.rewrite(chatDialect, sharedBody(body), throwing, { degrade: 'placeholder' }))).toEqual(comparable(expected));
  });

  for (const fault of ['throw', 'crash', 'hang'] as const) {
    it(`a worker that ${fault}s fails that rewrite only; the next body gets a working worker`, async () => {
      const w = workers();
      rewriteWorkerTestHooks.fault = fault;
      rewriteWorkerTestHooks.timeoutMs = 500;
      const { body, remembered } = chatSession(8, 10);
      await expect(w.rewrite(chatDialect, sharedBody(body), memory(remembered).lookup, { degrade: 'placeholder' })).rejects.toBeInstanceOf(WorkerFailure);
      delete rewriteWorkerTestHooks.fault;
      if (fault === 'throw') await w.close(); // the thrown-in worker lives on; a new pool gets a healthy one
      const next = fault === 'throw' ? workers() : w;
      const outcome = await next.rewrite(chatDialect, sharedBody(body), memory(remembered).lookup, { degrade: 'placeholder' });
      expect(outcome.kind).toBe('rewritten');
    });
  }

  it('close() fails what waits and refuses new bodies', async () => {
    const w = workers();
    rewriteWorkerTestHooks.fault = 'hang';
    const { body } = chatSession(4, 10);
    const pending = expect(w.rewrite(chatDialect, sharedBody(body), memory().lookup, { degrade: 'placeholder' })).rejects.toBeInstanceOf(WorkerFailure);
    const queued = expect(w.rewrite(chatDialect, sharedBody(body), memory().lookup, { degrade: 'placeholder' })).rejects.toBeInstanceOf(WorkerFailure);
    await w.close();
    await pending;
    await queued;
    await expect(w.rewrite(chatDialect, sharedBody(body), memory().lookup, { degrade: 'placeholder' })).rejects.toBeInstanceOf(WorkerFailure);
  });
});
