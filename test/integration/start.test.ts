/**
 * `mimo-proxy start` as a user runs it: the compiled CLI in its own process.
 * Bad setups end with one clear line (what failed and the fix), never a stack trace.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/harness.js';
import { runNode, type NodeRun } from '../support/node-run.js';
import { spawnProxy } from '../support/proxy-process.js';
import { hasRedisServer, startRedisServer } from '../support/redis-server.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

/** Run the CLI; `until` ends it early (SIGTERM) once stdout matches. Bounded by `ms`. */
function cli(args: string[], options: { until?: RegExp; ms?: number; env?: NodeJS.ProcessEnv } = {}): Promise<NodeRun> {
  return runNode([CLI, ...args], { env: { ...process.env, ...options.env }, ms: options.ms ?? 15_000, until: options.until });
}

describe('mimo-proxy start', () => {
  let dir: string;
  beforeAll(() => {
    dir = tempDir('start');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints where it listens, the CA and how to activate a shell, and stops cleanly on SIGTERM', async () => {
    const run = await cli(['start', '--port', '0', '--certs', path.join(dir, 'ok'), '--no-persist'], { until: /Stop: Ctrl-C/ });
    expect(run.stdout).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    expect(run.stdout).toContain(path.join(dir, 'ok', 'ca.pem'));
    expect(run.stdout).toMatch(/CA SHA-256: +([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    expect(run.stdout).toContain('eval "$(npx mimo-proxy env');
    expect(run.code).toBe(0);
  });

  it.runIf(process.platform === 'linux')('runs with the memory settings of the launcher, in the same process', async () => {
    const proxy = await spawnProxy(['--certs', path.join(dir, 'flags')]);
    try {
      const argv = readFileSync(`/proc/${proxy.child.pid}/cmdline`, 'utf8').split('\0');
      expect(argv).toContain('--max-semi-space-size=2');
      expect(argv).toContain('--heap-growing-percent=50');
      expect(argv.slice(argv.indexOf(CLI))).toEqual([CLI, 'start', '--port', '0', '--no-persist', '--certs', path.join(dir, 'flags'), '']);
      expect(proxy.alive()).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it.runIf(hasRedisServer)('names a Redis --store as where reasoning is kept, without its password (not the data folder it does not use)', async () => {
    const password = 'p@ss:w/rd#%-hunter2';
    const redis = await startRedisServer({ password });
    try {
      const store = `redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}/0`;
      const run = await cli(['start', '--port', '0', '--certs', path.join(dir, 'redis')], { until: /Stop: Ctrl-C/, env: { MIMO_PROXY_STORE: store } });
      expect(run.stdout).toContain(`reasoning cache: shared on redis://127.0.0.1:${redis.port}/0;`);
      expect(run.stdout).not.toContain('persistent in');
      expect(run.stderr).toContain('Redis connected');
      expect(run.stdout + run.stderr).not.toContain('hunter2');
      expect(run.stdout + run.stderr).not.toContain(encodeURIComponent(password));
      expect(run.code).toBe(0);
    } finally {
      await redis.dispose();
    }
  });

  it('reads options from MIMO_PROXY_* variables', async () => {
    const run = await cli(['start'], { until: /Stop: Ctrl-C/, env: { MIMO_PROXY_PORT: '0', MIMO_PROXY_CERTS: path.join(dir, 'env'), MIMO_PROXY_NO_PERSIST: '1', MIMO_PROXY_HOSTS: 'xiaomimimo.com,example.org' } });
    expect(run.stdout).toContain('intercepting xiaomimimo.com, example.org');
    expect(run.code).toBe(0);
  });

  it.runIf(process.platform === 'linux')('stops with one line when --data is under a pseudo-filesystem (/proc), instead of spinning', async () => {
    const started = Date.now();
    const run = await cli(['start', '--port', '0', '--certs', path.join(dir, 'proc-data'), '--data', '/proc/mimo-proxy-none/data'], { ms: 10_000 });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^ERROR: could not write the reasoning store \/proc\/mimo-proxy-none\/data\/reasoning\.sqlite: ENOENT\. Fix: /);
    expect(Date.now() - started).toBeLessThan(9_000);
  });

  it('refuses a bad option with one line naming it and the fix', async () => {
    const run = await cli(['start', '--port', 'eighty']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^ERROR: --port "eighty" is not valid\. Fix: /);
  });

  it('refuses a stray word, an option without its value and a broken --upstream-ca the same way, before listening', async () => {
    const broken = path.join(dir, 'broken-ca.pem');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n');
    const cases: [string[], RegExp][] = [
      [['start', 'extra'], /^ERROR: unexpected argument "extra"\. Fix: run mimo-proxy start \[options\]/],
      [['start', '--port', '--host', '127.0.0.1'], /^ERROR: --port needs a value\. Fix: pass --port VALUE/],
      [['start', '--port', '0', '--no-persist', '--certs', path.join(dir, 'unused'), '--upstream-ca', broken], /^ERROR: --upstream-ca .*broken-ca\.pem: certificate 1 of 1 \(line 1\) cannot be parsed \(.*\)\. Fix: /],
    ];
    for (const [args, says] of cases) {
      const run = await cli(args, { until: /listening/ });
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stdout, args.join(' ')).toBe('');
      expect(run.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(run.stderr, args.join(' ')).toMatch(says);
    }
  });

  it('says so clearly when the certs folder cannot be written', async () => {
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const run = await cli(['start', '--port', '0', '--certs', path.join(file, 'certs')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^ERROR: .*Fix: pass --certs DIR/m);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('says so clearly when ca.pem is corrupt, and leaves it alone', async () => {
    const certs = path.join(dir, 'corrupt');
    mkdirSync(certs, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(certs, 'ca.pem'), 'garbage');
    writeFileSync(path.join(certs, 'ca-key.pem'), 'garbage', { mode: 0o600 });
    const run = await cli(['start', '--port', '0', '--certs', certs]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^ERROR: .*ca\.pem.*Fix: /m);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('says so clearly when the port is already in use', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;
    try {
      const run = await cli(['start', '--port', String(port), '--certs', path.join(dir, 'busy'), '--no-persist']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`^ERROR: 127\\.0\\.0\\.1:${port} is already in use\\. Fix: pass --port`, 'm'));
    } finally {
      server.close();
    }
  });

  it('prints usage with examples for a bare invocation and --help, and the version', async () => {
    const bare = await cli([]);
    expect(bare.code).toBe(0);
    expect(bare.stdout).toMatch(/Usage:/);
    expect(bare.stdout).toMatch(/Examples:/);
    const version = await cli(['--version']);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
