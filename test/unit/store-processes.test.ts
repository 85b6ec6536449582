/**
 * The reasoning store shared with other real processes: another mimo-proxy on
 * the same data folder, or any process holding SQLite's write lock.
 * Each worker is a separate Node process driven line by line over stdin/stdout;
 * every test stops its workers and removes its folder.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_LIMITS, ReasoningCache } from '../../src/cache/cache.js';
import { MimoProxyError } from '../../src/errors.js';
import { createLogger, silentLogger, type Logger } from '../../src/log.js';
import { openStore, STORE_FILE, type ExpiringReasoningStore } from '../../src/cache/store.js';

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
/** Bounds one answer from a worker; a healthy one answers in milliseconds. */
const WORKER_ANSWER_MS = 15_000;

/**
 * A worker: `lock`/`release` hold SQLite's write lock on a raw connection
 * (BEGIN IMMEDIATE, as any writer does); `open`/`put`/`get`/`stats`/`close`
 * drive a real store from the compiled dist/ (the code `mimo-proxy start` runs).
 */
const WORKER = `
import { createInterface } from 'node:readline';
import { DatabaseSync } from 'node:sqlite';
const { openStore } = await import(process.env.STORE_JS);
const { DEFAULT_CACHE_LIMITS } = await import(process.env.CACHE_JS);
const { silentLogger } = await import(process.env.LOG_JS);
let holder;
let store;
const ops = {
  lock: ({ file }) => {
    holder = new DatabaseSync(file);
    holder.exec('BEGIN IMMEDIATE');
    return {};
  },
  release: () => {
    holder.exec('ROLLBACK');
    holder.close();
    return {};
  },
  open: ({ dir, flushIntervalMs }) => {
    store = openStore(dir, DEFAULT_CACHE_LIMITS, silentLogger, flushIntervalMs === undefined ? {} : { flushIntervalMs });
    return {};
  },
  put: ({ keys, text, expiresAt }) => ({ conflicted: store.put(keys, text, expiresAt) }),
  enqueue: ({ keys, text, expiresAt }) => ({ conflicted: store.enqueue(keys, text, expiresAt) }),
  enqueueMany: ({ prefix, count }) => {
    for (let i = 0; i < count; i++) store.enqueue([prefix + i], '推理 ' + prefix + i + ' ' + 'x'.repeat(3000), Date.now() + 3600000);
    return { queued: store.queued };
  },
  flush: () => {
    store.flush();
    return { queued: store.queued };
  },
  // Keep learning, 20 replies a millisecond, until killed (what a busy proxy does).
  churn: ({ prefix }) => {
    let n = 0;
    setInterval(() => {
      for (let i = 0; i < 20; i++, n++) store.enqueue([prefix + n], '推理 ' + n + ' ' + 'y'.repeat(2000 + (n % 3000)), Date.now() + 3600000);
    }, 1);
    return {};
  },
  get: ({ key }) => ({ value: store.get(key, Date.now()) ?? null }),
  stats: () => store.stats(),
  close: () => {
    store.close();
    return {};
  },
};
for await (const line of createInterface({ input: process.stdin })) {
  const { op, ...args } = JSON.parse(line);
  let answer;
  try {
    answer = { ok: true, ...ops[op](args) };
  } catch (err) {
    answer = { ok: false, code: err.code, message: err.message };
  }
  process.stdout.write(JSON.stringify(answer) + '\\n');
}
`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answer = { ok: boolean; code?: string; message?: string } & Record<string, any>;

interface Worker {
  ask(op: string, args?: Record<string, unknown>): Promise<Answer>;
  stop(): Promise<void>;
  /** kill -9: no exit handler, no close, no flush. */
  kill(): Promise<void>;
}

function startWorker(): Worker {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--input-type=module', '-e', WORKER], {
    env: {
      ...process.env,
      STORE_JS: pathToFileURL(path.join(DIST, 'cache', 'store.js')).href,
      CACHE_JS: pathToFileURL(path.join(DIST, 'cache', 'cache.js')).href,
      LOG_JS: pathToFileURL(path.join(DIST, 'log.js')).href,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => waiting.shift()?.(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    ask(op, args = {}) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker did not answer ${op} within ${WORKER_ANSWER_MS} ms; stderr: ${stderr}`)), WORKER_ANSWER_MS);
        waiting.push((line) => {
          clearTimeout(timer);
          resolve(JSON.parse(line) as Answer);
        });
        child.stdin.write(`${JSON.stringify({ op, ...args })}\n`);
      });
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

let tmp: string;
let dir: string;
let file: string;
const workers: Worker[] = [];
const stores: ExpiringReasoningStore[] = [];

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mimo-store-proc-'));
  dir = path.join(tmp, 'data');
  file = path.join(dir, STORE_FILE);
});

afterEach(async () => {
  for (const s of stores.splice(0)) s.close();
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  fs.rmSync(tmp, { recursive: true, force: true });
});

function worker(): Worker {
  const w = startWorker();
  workers.push(w);
  return w;
}

function open(log: Logger = silentLogger, busyTimeoutMs?: number): ExpiringReasoningStore {
  const s = openStore(dir, DEFAULT_CACHE_LIMITS, log, busyTimeoutMs === undefined ? {} : { busyTimeoutMs });
  stores.push(s);
  return s;
}

function movedAside(): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes('.corrupt-'));
}

const LATER = (): number => Date.now() + 3_600_000;

describe('a store another process holds', () => {
  it('is not moved aside at open: startup fails with STORE_LOCKED and the file keeps its entries', async () => {
    const first = open();
    first.put(['a\u0000id:1'], '上一次的推理', LATER());
    first.close();
    stores.length = 0;

    const holder = worker();
    expect(await holder.ask('lock', { file })).toMatchObject({ ok: true });
    const { log, lines } = captured();
    let thrown: unknown;
    try {
      open(log, 200);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(MimoProxyError);
    expect((thrown as MimoProxyError).code).toBe('STORE_LOCKED');
    const line = (thrown as MimoProxyError).format();
    expect(line).toContain('another process holds the reasoning store');
    expect(line).toContain(file);
    expect(line).toMatch(/--data DIR/);
    expect(line).toMatch(/--no-persist/);
    expect(movedAside()).toEqual([]);
    expect(lines.join('')).not.toContain('moved');

    // Once the other process lets go, the same file opens with what it held.
    expect(await holder.ask('release')).toMatchObject({ ok: true });
    expect(open().get('a\u0000id:1', Date.now())).toBe('上一次的推理');
    expect(movedAside()).toEqual([]);
  });

  it('makes a write at request time give up fast and keep the entry in memory only', async () => {
    const { log, lines } = captured();
    const s = open(log); // the default (open-time) busy timeout: seconds
    const cache = new ReasoningCache({ limits: DEFAULT_CACHE_LIMITS, store: s, log }); // reports what the store throws
    cache.remember('a', ['id:0'], '锁之前');
    cache.flush();
    const holder = worker();
    expect(await holder.ask('lock', { file })).toMatchObject({ ok: true });

    const started = performance.now();
    cache.remember('a', ['id:1'], '锁住时的推理');
    cache.flush(); // what the flush timer does
    const elapsed = performance.now() - started;
    // The runtime busy timeout is tens of milliseconds; the open-time one (3 s) would stall every request.
    expect(elapsed).toBeLessThan(1_000);
    expect(lines.filter((l) => l.includes('write failed'))).toHaveLength(1);
    expect(s.get('a\u0000id:1', Date.now())).toBeUndefined();
    expect(cache.lookup('a', ['id:1'])).toBe('锁住时的推理');
    expect(s.get('a\u0000id:0', Date.now())).toBe('锁之前'); // reads do not wait for the writer (WAL)

    expect(await holder.ask('release')).toMatchObject({ ok: true });
    s.put(['a\u0000id:1'], '锁住时的推理', LATER());
    expect(s.get('a\u0000id:1', Date.now())).toBe('锁住时的推理');
  });
});

describe('mimo-proxy start on a store another process holds', () => {
  it('ends with one line naming the lock and the fix, exit 1, the file left in place', async () => {
    const first = open();
    first.put(['a\u0000id:1'], '保留', LATER());
    first.close();
    stores.length = 0;
    const holder = worker();
    expect(await holder.ask('lock', { file })).toMatchObject({ ok: true });

    const run = await startCli(['start', '--port', '0', '--certs', path.join(tmp, 'certs'), '--data', dir]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^ERROR: another process holds the reasoning store .*reasoning\.sqlite \(still locked after \d+ ms\)\. Fix: stop the other mimo-proxy .*--data DIR.*--no-persist\n$/);
    expect(movedAside()).toEqual([]);
    expect(await holder.ask('release')).toMatchObject({ ok: true });
    expect(open().get('a\u0000id:1', Date.now())).toBe('保留');
  });
});

describe('two proxies on one data folder', () => {
  it('share one store: each reads what the other wrote, nothing is moved aside', async () => {
    const other = worker();
    // Both open a fresh folder at the same time: one creates the schema, the other waits for it.
    const opening = other.ask('open', { dir });
    const mine = open();
    expect(await opening).toMatchObject({ ok: true });

    mine.put(['a\u0000id:mine'], '我的推理', LATER());
    expect(await other.ask('get', { key: 'a\u0000id:mine' })).toMatchObject({ value: '我的推理' });
    expect(await other.ask('put', { keys: ['a\u0000id:theirs', 'a\u0000fp:theirs'], text: '他们的推理', expiresAt: LATER() })).toMatchObject({ ok: true });
    expect(mine.get('a\u0000fp:theirs', Date.now())).toBe('他们的推理');
    for (let i = 0; i < 20; i++) {
      const writer = i % 2 === 0 ? 'mine' : 'theirs';
      if (writer === 'mine') mine.put([`a\u0000id:${i}`], `第 ${i} 步`, LATER());
      else expect(await other.ask('put', { keys: [`a\u0000id:${i}`], text: `第 ${i} 步`, expiresAt: LATER() })).toMatchObject({ ok: true });
    }
    for (let i = 0; i < 20; i++) {
      expect(mine.get(`a\u0000id:${i}`, Date.now())).toBe(`第 ${i} 步`);
      expect(await other.ask('get', { key: `a\u0000id:${i}` })).toMatchObject({ value: `第 ${i} 步` });
    }

    // Two texts for one key, one from each: the second writer hears of the conflict, neither finds a text.
    mine.put(['a\u0000id:both'], '这一种', LATER());
    expect(await other.ask('put', { keys: ['a\u0000id:both'], text: '另一种', expiresAt: LATER() })).toMatchObject({ conflicted: ['a\u0000id:both'] });
    expect(mine.get('a\u0000id:both', Date.now())).toBeUndefined();
    expect(await other.ask('get', { key: 'a\u0000id:both' })).toMatchObject({ value: null });

    // One of them stops (checkpointing the WAL); the other carries on with the same file.
    expect(await other.ask('close')).toMatchObject({ ok: true });
    mine.put(['a\u0000id:after'], '之后', LATER());
    expect(mine.get('a\u0000id:theirs', Date.now())).toBe('他们的推理');
    mine.close();
    stores.length = 0;
    expect(movedAside()).toEqual([]);
    const reopened = open();
    expect(reopened.get('a\u0000id:after', Date.now())).toBe('之后');
    expect(reopened.get('a\u0000id:19', Date.now())).toBe('第 19 步');
    expect(reopened.stats().entries).toBe(23);
  });
});

/** Keys in the file under `prefix`, read on a connection of our own (what another process would see). */
function keysInFile(prefix: string): number {
  const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return Number((db.prepare("SELECT count(*) AS n FROM keys WHERE key >= ? AND key < ?").get(prefix, `${prefix}\uffff`) as { n: number }).n);
  } finally {
    db.close();
  }
}

/** Wait, bounded, until `done()`; false when the bound passed first. */
async function waitFor(done: () => boolean, ms = 15_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (done()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return done();
}

describe('two proxies on one data folder, writing behind', () => {
  it('see each other\'s entries once each has flushed, conflicts included', async () => {
    const NEVER = 3_600_000; // no timer flush during the test: each flush is the test's
    const other = worker();
    expect(await other.ask('open', { dir, flushIntervalMs: NEVER })).toMatchObject({ ok: true });
    const mine = openStore(dir, DEFAULT_CACHE_LIMITS, silentLogger, { flushIntervalMs: NEVER });
    stores.push(mine);

    mine.enqueue(['a\u0000id:mine'], '我的推理', LATER());
    expect(mine.get('a\u0000id:mine', Date.now())).toBe('我的推理'); // from the queue
    expect(await other.ask('get', { key: 'a\u0000id:mine' })).toMatchObject({ value: null });
    mine.flush();
    expect(await other.ask('get', { key: 'a\u0000id:mine' })).toMatchObject({ value: '我的推理' });

    expect(await other.ask('enqueue', { keys: ['a\u0000id:theirs'], text: '他们的推理', expiresAt: LATER() })).toMatchObject({ conflicted: [] });
    expect(mine.get('a\u0000id:theirs', Date.now())).toBeUndefined();
    expect(await other.ask('flush')).toMatchObject({ queued: 0 });
    expect(mine.get('a\u0000id:theirs', Date.now())).toBe('他们的推理');

    // Both learn another text under one key before either flushes: the second flush finds the conflict.
    mine.enqueue(['a\u0000id:both'], '这一种', LATER());
    expect(await other.ask('enqueue', { keys: ['a\u0000id:both'], text: '另一种', expiresAt: LATER() })).toMatchObject({ conflicted: [] });
    mine.flush();
    expect(await other.ask('flush')).toMatchObject({ queued: 0 });
    expect(mine.get('a\u0000id:both', Date.now())).toBeUndefined();
    expect(await other.ask('get', { key: 'a\u0000id:both' })).toMatchObject({ value: null });
    expect(movedAside()).toEqual([]);
  });
});

describe('a proxy killed with kill -9 while writing behind', () => {
  it('keeps every batch its timer wrote; the last, unwritten one is lost whole or kept whole', async () => {
    const w = worker();
    expect(await w.ask('open', { dir })).toMatchObject({ ok: true });
    // Fewer than a full batch: only the interval timer writes them.
    expect(await w.ask('enqueueMany', { prefix: 'a\u0000first:', count: 30 })).toMatchObject({ queued: 30 });
    expect(await waitFor(() => keysInFile('a\u0000first:') === 30)).toBe(true);
    expect(await w.ask('enqueueMany', { prefix: 'a\u0000last:', count: 30 })).toMatchObject({ ok: true });
    await w.kill();

    const { log, lines } = captured();
    const s = open(log);
    expect(lines).toEqual([]);
    expect(movedAside()).toEqual([]);
    for (let i = 0; i < 30; i++) expect(s.get(`a\u0000first:${i}`, Date.now())).toMatch(/^推理 /);
    expect([0, 30]).toContain(keysInFile('a\u0000last:'));
  });

  it('never leaves a damaged file, whenever the kill lands', async () => {
    const w = worker();
    expect(await w.ask('open', { dir })).toMatchObject({ ok: true });
    expect(await w.ask('churn', { prefix: 'a\u0000n:' })).toMatchObject({ ok: true });
    // Kill it mid-stream, after several batches have gone in.
    expect(await waitFor(() => keysInFile('a\u0000n:') >= 500)).toBe(true);
    await w.kill();

    const { DatabaseSync } = process.getBuiltinModule('node:sqlite');
    const db = new DatabaseSync(file);
    try {
      expect(db.prepare('PRAGMA integrity_check').all()).toEqual([{ integrity_check: 'ok' }]);
      // Every key leads to its text: no batch was half written.
      expect(db.prepare("SELECT count(*) AS n FROM keys k LEFT JOIN reasoning r ON r.hash = k.hash WHERE r.hash IS NULL AND k.hash != ''").get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    const { log, lines } = captured();
    const s = open(log);
    expect(lines).toEqual([]);
    expect(movedAside()).toEqual([]);
    expect(s.stats().entries).toBe(keysInFile('a\u0000n:'));
  });
});

/** The compiled CLI in its own process, bounded; SIGKILLed if it outlives `ms`. */
function startCli(args: string[], ms = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(DIST, 'cli', 'main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function captured(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger('debug', (line) => lines.push(line)), lines };
}
