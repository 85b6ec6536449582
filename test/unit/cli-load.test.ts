/**
 * What the compiled CLI loads before it does anything: `env` (run by every
 * `eval "$(mimo-proxy env)"`), `--help` and `--version` never load the proxy.
 * Each case is a real `node dist/cli/main.js` process, watched by a module hook.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  });
});
