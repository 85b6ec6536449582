/**
 * What the compiled CLI loads before it does anything: `env` (run by every
 * `eval "$(mimo-proxy env)"`), `--help` and `--version` never load the proxy;
 * an old Node gets one line; the package entry point loads without side effects.
 * Each case is a real `node dist/...` process, watched by a module hook.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_NODE_MAJOR, nodeTooOld } from '../../src/version.js';
import { runNode, type NodeRun } from '../support/node-run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = path.join(ROOT, 'dist');
const CLI = path.join(DIST, 'cli', 'main.js');

/** Records the URL of every module resolved (ES imports and require alike) and writes them out at exit. */
const MODULE_LOG_HOOK = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const seen = new Set();
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.add(r.url); return r; } });
process.on('exit', () => writeFileSync(process.env.MIMO_TEST_MODULE_LOG, [...seen].join('\\n')));
`;

let dir: string;
let hook: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-cli-load-'));
  hook = path.join(dir, 'module-log.mjs');
  writeFileSync(hook, MODULE_LOG_HOOK);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** node ARGS with a minimal environment, bounded. */
function node(args: string[], env: Record<string, string> = {}): Promise<NodeRun> {
  return runNode(args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...env } });
}

/** Runs the CLI with the hook; returns the run and the modules it loaded (dist files relative to dist/, packages by name, builtins as node:x). */
async function loaded(args: string[]): Promise<{ run: NodeRun; modules: string[] }> {
  const log = path.join(dir, `modules-${args.join('_').replace(/[^\w]/g, '')}.txt`);
  const run = await node(['--import', pathToFileURL(hook).href, CLI, ...args], { MIMO_TEST_MODULE_LOG: log });
  const modules = readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((url) => {
      if (url.startsWith('node:')) return url;
      const file = fileURLToPath(url);
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
      return pkg ? `package:${pkg[1]}` : path.relative(DIST, file);
    });
  return { run, modules: [...new Set(modules)].sort() };
}

/** The first `node` on PATH older than MIN_NODE_MAJOR, if any. */
function findOlderNode(): string | undefined {
  for (const folder of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(folder, 'node');
    if (!existsSync(candidate)) continue;
    const version = spawnSync(candidate, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout?.trim() ?? '';
    if (/^v\d+\./.test(version) && Number.parseInt(version.slice(1), 10) < MIN_NODE_MAJOR) return candidate;
  }
  return undefined;
}

function proxyModules(modules: string[]): string[] {
  return modules.filter((m) => m.startsWith('proxy/') || m === 'package:http-mitm-proxy');
}

describe('what the CLI loads', () => {
  it('--version loads only the version, the error type and the process adapter', async () => {
    const { run, modules } = await loaded(['--version']);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(modules.filter((m) => m.endsWith('.js'))).toEqual(['cli/io.js', 'cli/main.js', 'errors.js', 'version.js']);
  });

  it('--help lists the options without loading the proxy', async () => {
    const { run, modules } = await loaded(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--cache-ttl V +how long reasoning is kept \(default 7d\)/);
    expect(modules).toContain('cli/options.js');
    expect(proxyModules(modules)).toEqual([]);
  });

  it('env activates a shell without loading the proxy or http-mitm-proxy', async () => {
    const { run, modules } = await loaded(['env', '--shell', 'bash', '--port', '1', '--certs', path.join(dir, 'certs')]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("HTTPS_PROXY='http://127.0.0.1:1'");
    expect(modules).toContain('cli/env.js');
    expect(modules).toContain('ca/index.js');
    expect(proxyModules(modules)).toEqual([]);
    expect(modules).not.toContain('node:http'); // the probe takes node:http as CommonJS (see cli/status.ts)
    // The provider registry names dialects without loading them.
    expect(modules).toContain('providers.js');
    expect(modules.filter((m) => /^(chat|anthropic)\//.test(m) || m === 'dialects.js' || m === 'package:eventsource-parser')).toEqual([]);
  });

  it('status asks a wildcard --host on loopback instead of refusing it as an open proxy', async () => {
    const { run, modules } = await loaded(['status', '--host', '0.0.0.0', '--port', '1']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('no mimo-proxy is running on 127.0.0.1:1. Start one: npx mimo-proxy start --port 1\n');
    expect(proxyModules(modules)).toEqual([]);
  });
});

describe('what start loads', () => {
  /** `start` with the hook, until it is ready, then SIGTERM: the run and every module URL it resolved. */
  async function started(certs: string, name: string): Promise<{ run: NodeRun; urls: string[] }> {
    const log = path.join(dir, `modules-${name}.txt`);
    const run = await runNode(['--import', pathToFileURL(hook).href, CLI, 'start', '--port', '0', '--certs', certs, '--no-persist'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, MIMO_TEST_MODULE_LOG: log },
      until: /Stop: Ctrl-C/,
    });
    return { run, urls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
  }

  it("restarted with its CA in place, it loads http-mitm-proxy without node-forge or ws (the library's own CA and WebSocket relay stand aside), and no Redis client", async () => {
    const certs = path.join(dir, 'start-certs');
    const first = await started(certs, 'first-start');
    expect(first.run.code).toBe(0);
    expect(first.urls.some((u) => u.includes('/node_modules/node-forge/'))).toBe(true); // the first start makes the CA
    const again = await started(certs, 'restart');
    expect(again.run.code).toBe(0);
    expect(again.urls.some((u) => u.includes('/node_modules/http-mitm-proxy/dist/lib/proxy.js'))).toBe(true);
    expect(again.urls.filter((u) => u.includes('/node_modules/node-forge/'))).toEqual([]);
    expect(again.urls.filter((u) => /\/node_modules\/ws\/lib\//.test(u))).toEqual([]);
    expect(again.urls.filter((u) => u.includes('/node_modules/ioredis/'))).toEqual([]); // only for a Redis --store
  });
});

describe('the Node version check', () => {
  it(`accepts Node ${MIN_NODE_MAJOR} and later, and names the version it refuses`, () => {
    expect(nodeTooOld(`${MIN_NODE_MAJOR}.0.0`)).toBeUndefined();
    expect(nodeTooOld('25.1.0')).toBeUndefined();
    expect(nodeTooOld(process.versions.node)).toBeUndefined();
    expect(nodeTooOld('22.12.0')).toBe(`mimo-proxy needs Node ${MIN_NODE_MAJOR} or newer; this is Node 22.12.0`);
    expect(nodeTooOld('garbage')).toMatch(/needs Node/);
  });

  it('agrees with package.json: engines and the tested node devDependency', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };
    expect(pkg.engines.node).toBe(`>=${MIN_NODE_MAJOR}`);
    expect(Number.parseInt(pkg.devDependencies.node ?? '', 10)).toBe(MIN_NODE_MAJOR);
  });

  it('makes every command on an older Node end with one line and exit 1, before loading the rest', async () => {
    const older = `data:text/javascript,Object.defineProperty(process.versions,'node',{value:'22.12.0'})`;
    for (const args of [['--version'], ['env'], ['start', '--port', '0']]) {
      const run = await node(['--import', older, CLI, ...args]);
      expect(run.code, args[0]).toBe(1);
      expect(run.stdout, args[0]).toBe('');
      expect(run.stderr, args[0]).toMatch(/^ERROR: mimo-proxy needs Node \d+ or newer; this is Node 22\.12\.0\. Fix: run it with Node \d+ or newer[^\n]*\n$/);
    }
  });

  // A real older Node, when this machine has one on PATH (the faked version above covers the rest).
  const olderNode = findOlderNode();
  it.skipIf(olderNode === undefined)('is what a real older Node on PATH prints too', () => {
    const run = spawnSync(olderNode as string, [CLI, 'env'], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH ?? '' } });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^ERROR: mimo-proxy needs Node \d+ or newer; this is Node \d+\.\d+\.\d+\. Fix: [^\n]*\n$/);
  });
});

describe('the package entry point (dist/index.js)', () => {
  it('exports the public API and does nothing on import: no output, no open handle, no listener', async () => {
    const script = `
      const before = process.listenerCount('SIGTERM') + process.listenerCount('unhandledRejection');
      const api = await import(${JSON.stringify(pathToFileURL(path.join(DIST, 'index.js')).href)});
      const after = process.listenerCount('SIGTERM') + process.listenerCount('unhandledRejection');
      console.log(JSON.stringify({ names: Object.keys(api).sort(), listeners: after - before, version: api.VERSION }));`;
    // Exiting at all shows that nothing was left running; the bound is only a safety net.
    const run = await node(['--input-type=module', '-e', script]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const seen = JSON.parse(run.stdout) as { names: string[]; listeners: number; version: string };
    expect(seen.names).toEqual(expect.arrayContaining(['startProxy', 'resolveConfig', 'parseArgs', 'withEnvironment', 'MimoProxyError', 'ERRORS', 'createLogger', 'VERSION']));
    expect(seen.listeners).toBe(0);
    expect(seen.version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("leaves the process's own `ws` whole: the library's stand-ins serve the library only", async () => {
    // A program that embeds the proxy (startProxy) and uses WebSockets itself.
    const script = `
      import { createRequire } from 'node:module';
      await import(${JSON.stringify(pathToFileURL(path.join(DIST, 'index.js')).href)});
      const ws = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})('ws');
      console.log(JSON.stringify({ webSocket: typeof ws.WebSocket, server: typeof ws.WebSocketServer?.prototype?.handleUpgrade }));`;
    const run = await node(['--input-type=module', '-e', script]);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ webSocket: 'function', server: 'function' });
  });

  it('is what package.json main and types name', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { main: string; types: string };
    expect(pkg.main).toBe('dist/index.js');
    expect(pkg.types).toBe('dist/index.d.ts');
    expect(readFileSync(path.join(ROOT, pkg.types), 'utf8')).toMatch(/startProxy/);
  });
});
