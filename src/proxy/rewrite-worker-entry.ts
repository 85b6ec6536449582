/**
 * The worker side of rewrite-worker.ts: runs a dialect's pure `rewrite`
 * (../dialects.ts) on a large request body, off the proxy's event loop. The
 * cache stays on the main thread: each lookup is a message there, and this
 * thread waits for the answer (Atomics.wait on a shared counter, the value
 * read from a message port with receiveMessageOnPort), so the rewrite code
 * runs unchanged with its synchronous lookup.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { dialectNamed } from '../dialects.js';
import type { RewriteOutcome, RewritePolicy } from '../reasoning/rewrite.js';
import type { JobRequest, JobResult, LookupAnswer, WorkerSetup } from './rewrite-worker.js';

const setup = workerData as WorkerSetup;
const signal = new Int32Array(setup.signal);
const port: MessagePort = setup.lookups;
/** Index 1 of `signal` never changes: waiting on it is a sleep. */
const SLEEP_SLOT = 1;

/** A lookup that failed to get an answer: the whole rewrite fails (the original goes upstream). */
class LookupUnanswered extends Error {
  override name = 'LookupUnanswered';
}

function run(job: JobRequest): JobResult {
  if (setup.fault === 'throw') throw new Error('injected fault');
  if (setup.fault === 'crash') process.exit(1);
  if (setup.fault === 'hang') for (;;) Atomics.wait(signal, SLEEP_SLOT, 0, 50);
  const dialect = dialectNamed(job.dialect);
  if (!dialect) return { id: job.id, ok: false, error: 'UnknownDialect' };
  let unanswered = false;
  const lookup = (keys: Iterable<string>): string | undefined => {
    // The keys in order; a key that throws ends the list (the main thread looks up those before
    // it, as the lazy in-thread lookup would have, and the throw comes back if none has a value).
    const list: string[] = [];
    let thrown: unknown;
    let threw = false;
    try {
      for (const key of keys) list.push(key);
    } catch (err) {
      thrown = err;
      threw = true;
    }
    const answer = ask(job.id, list);
    if (answer === undefined) {
      unanswered = true;
      throw new LookupUnanswered('no answer from the main thread');
    }
    if (answer.value !== undefined) return answer.value;
    if (answer.failed) throw new Error('lookup failed');
    if (threw) throw thrown;
    return undefined;
  };
  const outcome: RewriteOutcome = dialect.rewrite(Buffer.from(job.body, 0, job.length), lookup, job.policy as RewritePolicy);
  if (unanswered) return { id: job.id, ok: false, error: 'LookupUnanswered' };
  if (outcome.kind === 'skipped') return { id: job.id, ok: true, kind: 'skipped', reason: outcome.reason };
  const base = { id: job.id, ok: true as const, learned: outcome.learned, context: outcome.context, changes: outcome.changes };
  if (outcome.kind === 'unchanged') return { ...base, kind: 'unchanged' };
  return { ...base, kind: 'rewritten', body: ownBuffer(outcome.body) };
}

/** The bytes in an ArrayBuffer of their own, to be transferred (not copied) to the main thread. */
function ownBuffer(body: Buffer): ArrayBuffer {
  if (body.byteOffset === 0 && body.buffer.byteLength === body.length && body.buffer instanceof ArrayBuffer) return body.buffer;
  const copy = new ArrayBuffer(body.length);
  new Uint8Array(copy).set(body);
  return copy;
}

/** One lookup on the main thread; undefined when it did not answer in time. */
function ask(id: number, keys: string[]): LookupAnswer | undefined {
  const seen = Atomics.load(signal, 0);
  parentPort!.postMessage({ id, lookup: keys });
  const deadline = Date.now() + setup.lookupTimeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    const changed = Atomics.wait(signal, 0, seen, left) !== 'timed-out';
    const received = receiveMessageOnPort(port);
    if (received) return received.message as LookupAnswer;
    // Notified but the message not visible yet: a short sleep, not a spin.
    if (changed) Atomics.wait(signal, SLEEP_SLOT, 0, 1);
  }
}

parentPort!.on('message', (job: JobRequest) => {
  let result: JobResult;
  try {
    result = run(job);
  } catch (err) {
    result = { id: job.id, ok: false, error: (err as Error)?.name ?? 'unknown' };
  }
  const transfer = result.ok && result.kind === 'rewritten' ? [result.body] : [];
  parentPort!.postMessage(result, transfer);
});
