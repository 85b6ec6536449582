/**
 * Large request bodies rewritten off the event loop (reasoning/exchange.ts
 * sends bodies over OFFLOAD_BODY_BYTES here): parsing a 32 MB body alone
 * takes longer than the proxy may leave other streams and /health waiting.
 *
 * One worker thread (rewrite-worker-entry.ts), created on first use and
 * unref'd, rewrites one body at a time; the others wait in line. The body
 * sits in a SharedArrayBuffer (the exchange keeps it for a retry or to send
 * as is; nothing is copied), the rewritten body comes back transferred. The
 * cache stays here: the worker's synchronous lookups arrive as messages and
 * are answered on a port, then the worker is woken (Atomics.notify).
 *
 * A worker that throws, dies or takes longer than WORKER_TIMEOUT_MS fails
 * that rewrite only (the exchange forwards the original); a worker that
 * died or hung is terminated and the next body gets a new one. close()
 * terminates it.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { BodyRewriter } from '../reasoning/exchange.js';
import type { Dialect } from '../reasoning/dialect.js';
import type { Learned } from '../reasoning/match.js';
import type { ReasoningLookup, RewriteChanges, RewriteOutcome, RewritePolicy, SkipReason } from '../reasoning/rewrite.js';

/** A rewrite in the worker that takes longer than this fails: the original goes upstream. */
export const WORKER_TIMEOUT_MS = 10_000;

/** An idle worker is stopped after this long: the heap a large body left in it goes back to the OS. */
export const WORKER_IDLE_MS = 5_000;

/** Test-only faults injected into the next worker created (never set by the proxy itself). */
export type WorkerFault = 'throw' | 'hang' | 'crash';

/** Test-only: a fault and a shorter timeout for workers created from now on; undefined resets. */
export const rewriteWorkerTestHooks: { fault?: WorkerFault; timeoutMs?: number } = {};

/** What the worker is given (workerData). */
export interface WorkerSetup {
  signal: SharedArrayBuffer;
  lookups: MessagePort;
  lookupTimeoutMs: number;
  fault?: WorkerFault;
}

export interface JobRequest {
  id: number;
  dialect: string;
  body: SharedArrayBuffer;
  length: number;
  policy: RewritePolicy;
}

export type JobResult =
  | { id: number; ok: true; kind: 'unchanged'; learned: Learned[]; context: string; changes: RewriteChanges }
  | { id: number; ok: true; kind: 'rewritten'; body: ArrayBuffer; learned: Learned[]; context: string; changes: RewriteChanges }
  | { id: number; ok: true; kind: 'skipped'; reason: SkipReason }
  | { id: number; ok: false; error: string };

export interface LookupAnswer {
  value?: string;
  /** The cache threw (in-thread, such a lookup is a miss). */
  failed?: boolean;
}

interface Job {
  id: number;
  request: JobRequest;
  original: Buffer;
  lookup: ReasoningLookup;
  resolve(outcome: RewriteOutcome): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  signal: Int32Array;
  port: MessagePort;
  job: Job | undefined;
  timer: NodeJS.Timeout | undefined;
  idle: NodeJS.Timeout | undefined;
}

export class WorkerFailure extends Error {
  override name = 'WorkerFailure';
}

/** The body's bytes in a SharedArrayBuffer of its own (one copy; none when already shared). */
export function sharedBody(body: Buffer): Buffer {
  if (body.buffer instanceof SharedArrayBuffer) return body;
  const shared = Buffer.from(new SharedArrayBuffer(body.length));
  body.copy(shared);
  return shared;
}

export class RewriteWorkers implements BodyRewriter {
  #thread: Thread | undefined;
  readonly #queue: Job[] = [];
  #next = 1;
  #closed = false;

  constructor(private readonly log: Logger) {}

  rewrite(dialect: Dialect, body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): Promise<RewriteOutcome> {
    const shared = sharedBody(body);
    return new Promise<RewriteOutcome>((resolve, reject) => {
      if (this.#closed) {
        reject(new WorkerFailure('the proxy is closing'));
        return;
      }
      const id = this.#next++;
      const request: JobRequest = { id, dialect: dialect.name, body: shared.buffer as SharedArrayBuffer, length: shared.length, policy: { ...policy } };
      // Unchanged means the very Buffer the exchange gave (its original bytes go upstream).
      this.#queue.push({ id, request, original: body, lookup, resolve, reject });
      this.#pump();
    });
  }

  /** Stops the worker; bodies still waiting fail (their originals go upstream). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new WorkerFailure('the proxy is closing'));
    const thread = this.#thread;
    if (thread) {
      this.#drop(thread, new WorkerFailure('the proxy is closing'));
      await thread.worker.terminate().catch(() => undefined);
    }
  }

  #pump(): void {
    if (this.#closed) return;
    if (this.#queue.length === 0) {
      const idle = this.#thread;
      if (idle && !idle.job && !idle.idle) {
        idle.idle = setTimeout(() => this.#drop(idle, new WorkerFailure('idle')), WORKER_IDLE_MS);
        idle.idle.unref();
      }
      return;
    }
    const thread = this.#thread ?? this.#spawn();
    if (thread === undefined || thread.job) return;
    clearTimeout(thread.idle);
    thread.idle = undefined;
    const job = this.#queue.shift()!;
    thread.job = job;
    thread.timer = setTimeout(() => {
      this.log.warn('a request body took too long to rewrite in the worker; forwarding the original');
      this.#drop(thread, new WorkerFailure('timed out'));
    }, rewriteWorkerTestHooks.timeoutMs ?? WORKER_TIMEOUT_MS);
    thread.timer.unref();
    thread.worker.postMessage(job.request);
  }

  #spawn(): Thread | undefined {
    const signal = new SharedArrayBuffer(8);
    const { port1, port2 } = new MessageChannel();
    const setup: WorkerSetup = { signal, lookups: port2, lookupTimeoutMs: rewriteWorkerTestHooks.timeoutMs ?? WORKER_TIMEOUT_MS, fault: rewriteWorkerTestHooks.fault };
    let worker: Worker;
    try {
      worker = startWorker(setup, [port2]);
    } catch (err) {
      this.log.error('could not start the rewrite worker', { error: (err as Error)?.name ?? 'unknown' });
      for (const job of this.#queue.splice(0)) job.reject(new WorkerFailure('no worker'));
      port1.close();
      return undefined;
    }
    worker.unref();
    port1.unref();
    const thread: Thread = { worker, signal: new Int32Array(signal), port: port1, job: undefined, timer: undefined, idle: undefined };
    this.#thread = thread;
    worker.on('message', (message: JobResult | { id: number; lookup: string[] }) => this.#onMessage(thread, message));
    worker.on('error', (err) => {
      this.log.error('the rewrite worker failed; forwarding the original', { error: err?.name ?? 'unknown' });
      this.#drop(thread, new WorkerFailure('worker error'));
    });
    worker.on('exit', () => this.#drop(thread, new WorkerFailure('worker exited')));
    return thread;
  }

  #onMessage(thread: Thread, message: JobResult | { id: number; lookup: string[] }): void {
    const job = thread.job;
    if (!job || message.id !== job.id) return;
    if ('lookup' in message) {
      let answer: LookupAnswer;
      try {
        answer = { value: job.lookup(message.lookup) };
      } catch {
        answer = { failed: true };
      }
      thread.port.postMessage(answer);
      Atomics.add(thread.signal, 0, 1);
      Atomics.notify(thread.signal, 0);
      return;
    }
    clearTimeout(thread.timer);
    thread.job = undefined;
    thread.timer = undefined;
    if (!message.ok) job.reject(new WorkerFailure(message.error));
    else if (message.kind === 'skipped') job.resolve({ kind: 'skipped', reason: message.reason });
    else if (message.kind === 'unchanged') job.resolve({ kind: 'unchanged', body: job.original, learned: message.learned, context: message.context, changes: message.changes });
    else job.resolve({ kind: 'rewritten', body: Buffer.from(message.body), learned: message.learned, context: message.context, changes: message.changes });
    this.#pump();
  }

  /** The thread is done for (error, exit, timeout, close): its job fails, the next body gets a new worker. */
  #drop(thread: Thread, reason: WorkerFailure): void {
    if (this.#thread === thread) this.#thread = undefined;
    clearTimeout(thread.timer);
    clearTimeout(thread.idle);
    const job = thread.job;
    thread.job = undefined;
    thread.port.close();
    void thread.worker.terminate().catch(() => undefined);
    if (job) job.reject(reason);
    this.#pump();
  }
}

/**
 * Compiled (dist/): the entry's .js next to this file. From the sources (the tests run them):
 * Node strips the types, and a resolve hook maps the sources' `.js` imports to their `.ts`.
 */
function startWorker(setup: WorkerSetup, transferList: MessagePort[]): Worker {
  const self = import.meta.url;
  if (!self.endsWith('.ts')) return new Worker(new URL('./rewrite-worker-entry.js', self), { workerData: setup, transferList });
  const boot = `
    const { registerHooks } = require('node:module');
    registerHooks({
      resolve(specifier, context, next) {
        try { return next(specifier, context); } catch (err) {
          if (specifier.startsWith('.') && specifier.endsWith('.js')) return next(specifier.slice(0, -3) + '.ts', context);
          throw err;
        }
      },
    });
    const entry = require('node:worker_threads').workerData.entry;
    import(entry);
  `;
  return new Worker(boot, { eval: true, workerData: { ...setup, entry: new URL('./rewrite-worker-entry.ts', self).href }, transferList });
}
