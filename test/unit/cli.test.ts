import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitPemCertificates } from '../../src/setup/bundle.js';
import { caCommand } from '../../src/cli/ca.js';
import { envCommand } from '../../src/cli/env.js';
import type { CommandIo } from '../../src/cli/io.js';
import { runChild, runCommand } from '../../src/cli/run.js';
import { statusCommand } from '../../src/cli/status.js';
import { parseArgs, resolveConfig } from '../../src/cli/options.js';
import { MimoProxyError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { startProxy } from '../../src/proxy/server.js';
import { runNode, type NodeRun } from '../support/node-run.js';

interface Captured extends CommandIo {
  out: string;
  err: string;
}

function io(env: Record<string, string>): Captured {
  const c: Captured = {
    env,
    platform: process.platform,
    out: '',
    err: '',
    stdout: (t) => {
      c.out += t;
    },
    stderr: (t) => {
      c.err += t;
    },
  };
  return c;
}

/** A port nothing listens on (bound, then released). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function bashEnv(script: string, env: Record<string, string>): Record<string, string> {
  const r = spawnSync('bash', ['--noprofile', '--norc', '-c', 'eval "$S" || exit 99; unset S; env -0'], { env: { ...env, S: script }, encoding: 'utf8', timeout: 10_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const out: Record<string, string> = {};
  for (const e of r.stdout.split('\0')) {
    const eq = e.indexOf('=');
    if (eq > 0 && !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(e.slice(0, eq))) out[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return out;
}

let root: string;
let certs: string;
let port: number;
const previousCert = `-----BEGIN CERTIFICATE-----\n${Buffer.from('企业根证书 previous bundle '.repeat(8)).toString('base64')}\n-----END CERTIFICATE-----\n`;

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'mimo-cli-'));
  // Spaces and a single quote in the folder: every shell quoting path gets exercised.
  certs = path.join(root, "it's my certs");
  mkdirSync(certs);
  port = await freePort();
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('mimo-proxy env', () => {
  it('activates a real bash: every variable, the CA created, the bundle built from the previous SSL_CERT_FILE', async () => {
    const previous = path.join(root, 'previous.pem');
    writeFileSync(previous, previousCert);
    const before = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, SHELL: '/bin/bash', HTTPS_PROXY: 'http://corp.example:3128', NO_PROXY: 'corp.example', SSL_CERT_FILE: previous };
    const c = io(before);
    expect(await envCommand(['--port', String(port), '--certs', certs], c)).toBe(0);
    expect(c.out).not.toMatch(/mimo-proxy:/); // messages go to stderr only
    expect(c.err).toMatch(new RegExp(`nothing listens on 127\\.0\\.0\\.1:${port}`));

    const after = bashEnv(c.out, before);
    const url = `http://127.0.0.1:${port}`;
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy', 'MIMO_PROXY_ACTIVE']) expect(after[name]).toBe(url);
    expect(after.NO_PROXY).toBe('localhost,127.0.0.1,::1,corp.example');
    expect(after.no_proxy).toBe(after.NO_PROXY);
    expect(after.NODE_USE_ENV_PROXY).toBe('1');
    for (const name of ['NODE_EXTRA_CA_CERTS', 'DENO_CERT', 'CODEX_CA_CERTIFICATE']) expect(after[name]).toBe(path.join(certs, 'ca.pem'));
    const bundlePath = after.SSL_CERT_FILE as string;
    expect(path.dirname(bundlePath)).toBe(certs);
    expect(path.basename(bundlePath)).toMatch(/^bundle-[0-9a-f]{16}\.pem$/);
    for (const name of ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO']) expect(after[name]).toBe(bundlePath);

    const caPem = readFileSync(path.join(certs, 'ca.pem'), 'utf8');
    expect(new X509Certificate(caPem).ca).toBe(true);
    const bundle = splitPemCertificates(readFileSync(bundlePath, 'utf8'));
    expect(bundle).toEqual([...splitPemCertificates(previousCert), ...splitPemCertificates(caPem)]);

    // --unset, run from the activated shell, gives back exactly what was there.
    const u = io(after);
    expect(await envCommand(['--unset'], u)).toBe(0);
    expect(bashEnv(u.out, after)).toEqual(before);
    expect(bashEnv(`${c.out}\nmimo_proxy_deactivate`, before)).toEqual(before);

    // Activating the activated shell again keeps the originals, and the bundle still comes from them.
    const again = io(after);
    expect(await envCommand(['--port', String(port), '--certs', certs], again)).toBe(0);
    expect(bashEnv(`${again.out}\nmimo_proxy_deactivate`, after)).toEqual(before);
    const againBundle = bashEnv(again.out, after).SSL_CERT_FILE as string;
    expect(againBundle).toBe(bundlePath);
    expect(splitPemCertificates(readFileSync(againBundle, 'utf8'))).toHaveLength(2);
  });

  it('reads the port from MIMO_PROXY_PORT and the shell from --shell', async () => {
    const c = io({ MIMO_PROXY_PORT: String(port), MIMO_PROXY_CERTS: certs, SHELL: '/bin/bash' });
    expect(await envCommand(['--shell', 'fish'], c)).toBe(0);
    expect(c.out).toContain(`set -gx HTTPS_PROXY 'http://127.0.0.1:${port}'`);
    expect(c.out).toContain('function mimo_proxy_deactivate');
    const cmd = io({ MIMO_PROXY_PORT: String(port), MIMO_PROXY_CERTS: certs });
    expect(await envCommand(['--shell', 'cmd'], cmd)).toBe(0);
    expect(cmd.out).toContain(`set "HTTPS_PROXY=http://127.0.0.1:${port}"`);
    expect(cmd.err).toMatch(/cmd has no functions/);
  });

  it('refuses an unknown shell and port 0 with a fix', async () => {
    await expect(envCommand(['--shell', 'tcsh'], io({}))).rejects.toThrow(/--shell "tcsh" is not valid/);
    await expect(envCommand(['--port', '0', '--certs', certs], io({}))).rejects.toBeInstanceOf(MimoProxyError);
  });

  it('warns when the proxy on the port was started with another CA', async () => {
    const proxy = await startProxy(resolveConfig(parseArgs(['--port', '0', '--certs', certs, '--no-persist']).options), silentLogger);
    try {
      const c = io({});
      expect(await envCommand(['--port', String(proxy.port), '--certs', path.join(root, 'other certs')], c)).toBe(0);
      expect(c.err).toContain(`the proxy on 127.0.0.1:${proxy.port} uses another CA (${path.join(certs, 'ca.pem')})`);
      const same = io({});
      expect(await envCommand(['--port', String(proxy.port), '--certs', certs], same)).toBe(0);
      expect(same.err).not.toMatch(/warning/);
    } finally {
      await proxy.close();
    }
  });

  it('says there is nothing to undo in a shell that was never activated', async () => {
    const c = io({ HTTPS_PROXY: 'http://corp:1' });
    expect(await envCommand(['--unset', '--shell', 'bash'], c)).toBe(0);
    expect(c.err).toMatch(/nothing to undo/);
    expect(c.out).not.toMatch(/HTTPS_PROXY/);
  });
});

describe('mimo-proxy ca', () => {
  it('prints the same path and PEM on every run, creating the CA once', async () => {
    const dir = path.join(root, 'ca-only');
    const runs: string[][] = [];
    for (let i = 0; i < 2; i++) {
      const p = io({});
      expect(await caCommand(['--certs', dir], p)).toBe(0);
      const p2 = io({});
      expect(await caCommand(['--path', '--certs', dir], p2)).toBe(0);
      const m = io({});
      expect(await caCommand(['--pem', '--certs', dir], m)).toBe(0);
      runs.push([p.out, p2.out, m.out]);
    }
    expect(runs[0]).toEqual(runs[1]);
    expect(runs[0]![0]).toBe(`${path.join(dir, 'ca.pem')}\n`);
    expect(runs[0]![1]).toBe(runs[0]![0]);
    expect(runs[0]![2]).toBe(readFileSync(path.join(dir, 'ca.pem'), 'utf8').replace(/\n?$/, '\n'));
  });

  it('prints the install commands with --dry-run and runs none of them', async () => {
    const c = io({ PATH: process.env.PATH ?? '', HOME: root });
    expect(await caCommand(['install', '--dry-run', '--certs', certs], c)).toBe(0);
    expect(c.out).toMatch(/^Installing the mimo-proxy CA .*ca\.pem \(SHA-256 [0-9A-F:]+, expires \d{4}-\d\d-\d\d\)/);
    expect(c.out).toMatch(/would run: |already installed|cannot: /);
    await expect(caCommand(['--pem', '--install', '--certs', certs], io({}))).rejects.toThrow(/choose one/);
  });
});

describe('mimo-proxy status', () => {
  it('fails cleanly with exit 1 when nothing listens', async () => {
    const c = io({});
    expect(await statusCommand(['--port', String(await freePort())], c)).toBe(1);
    expect(c.err).toMatch(/^no mimo-proxy is running on 127\.0\.0\.1:\d+\. Start one: npx mimo-proxy start --port \d+\n$/);
    expect(c.out).toBe('');
  });

  it('asks a proxy started on a wildcard --host on loopback, with no --auth needed (it only connects)', async () => {
    for (const host of ['0.0.0.0', '::']) {
      const c = io({});
      const free = await freePort();
      expect(await statusCommand(['--host', host, '--port', String(free)], c), host).toBe(1);
      expect(c.err, host).toMatch(/^no mimo-proxy is running on (127\.0\.0\.1|\[::1\]):\d+\. Start one: /);
    }
  });

  it('says so when something else answers', async () => {
    const other = http.createServer((_req, res) => res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>nope</h1>'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const c = io({});
      expect(await statusCommand(['--port', String((other.address() as net.AddressInfo).port)], c)).toBe(1);
      expect(c.err).toMatch(/^something that is not a mimo-proxy listens on 127\.0\.0\.1:\d+ \(it answered HTTP 404 \(text\/html\)\)\. Fix: .*pass --port/);
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('prints version, address, CA and cache of a running proxy', async () => {
    const proxy = await startProxy(resolveConfig(parseArgs(['--port', '0', '--certs', certs, '--no-persist']).options), silentLogger);
    try {
      const c = io({});
      expect(await statusCommand(['--port', String(proxy.port)], c)).toBe(0);
      expect(c.out).toMatch(/^mimo-proxy \d+\.\d+\.\d+, up \d+s\n/);
      expect(c.out).toContain(`listening      ${proxy.url}`);
      expect(c.out).toContain(proxy.ca.fingerprint256);
      expect(c.out).toMatch(/cache +0 entries, 0 B; 0 hits, 0 misses, memory only/);
    } finally {
      await proxy.close();
    }
  });
});

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'cli', 'main.js');

/** The compiled CLI in its own process (as a user runs it), bounded: SIGKILLed after `ms`. */
function cli(args: string[], env: Record<string, string>, ms = 20_000): Promise<NodeRun> {
  return runNode([CLI, ...args], { env, ms });
}

describe('a port that answers, but not as this mimo-proxy', () => {
  const answers: { name: string; type: string; body: string; says: RegExp }[] = [
    { name: 'a bare {"name":"mimo-proxy"}', type: 'application/json', body: '{"name":"mimo-proxy"}', says: /the mimo-proxy on 127\.0\.0\.1:\d+ answers in a form this version cannot read \(no valid version, uptimeSeconds, listen, \.\.\.\)/ },
    {
      name: 'another version with other fields',
      type: 'application/json',
      body: JSON.stringify({ name: 'mimo-proxy', version: '9.0.0', uptime: 5, listen: 'http://127.0.0.1:1', domains: 'xiaomimimo.com', upstream: 'x', degrade: 'x', ca: { pem: '...' }, cache: {}, counters: {} }),
      says: /the mimo-proxy on 127\.0\.0\.1:\d+ answers in a form this version cannot read \(version 9\.0\.0; no valid uptimeSeconds, domains, ca\)/,
    },
    { name: 'an empty object', type: 'application/json', body: '{}', says: /something that is not a mimo-proxy listens on 127\.0\.0\.1:\d+ \(it answered HTTP 200 \(application\/json\)\)/ },
    { name: 'an array', type: 'application/json', body: '[{"name":"mimo-proxy"}]', says: /something that is not a mimo-proxy listens on/ },
    { name: 'text that is not JSON', type: 'text/plain', body: 'hello from another program', says: /something that is not a mimo-proxy listens on 127\.0\.0\.1:\d+ \(it answered HTTP 200 \(text\/plain\)\)/ },
  ];
  const fix = /\. Fix: another program or another mimo-proxy version holds that port: pass --port with another port, or stop what holds it\n$/;
  let ca: string;

  beforeAll(async () => {
    ca = path.join(root, 'answers-ca');
    expect(await caCommand(['--certs', ca], io({}))).toBe(0);
  });

  for (const answer of answers) {
    it(`status, env and run each end with one line and exit 1 when it answers ${answer.name}; env prints no shell code`, async () => {
      const server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': answer.type }).end(answer.body));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const where = String((server.address() as net.AddressInfo).port);
      const ran = path.join(root, `ran-${answers.indexOf(answer)}`);
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root, SHELL: '/bin/bash', RAN: ran };
      try {
        const [status, activation, run] = await Promise.all([
          cli(['status', '--port', where], env),
          cli(['env', '--port', where, '--certs', ca], env),
          cli(['run', '--port', where, '--certs', ca, '--', process.execPath, '-e', `require('fs').writeFileSync(process.env.RAN, 'ran')`], env),
        ]);
        for (const r of [status, activation, run]) {
          expect(r.code).toBe(1);
          expect(r.stdout).toBe('');
          expect(r.stderr.split('\n')).toHaveLength(2); // one line and its newline
          expect(r.stderr).toMatch(answer.says);
          expect(r.stderr).toMatch(fix);
          expect(r.stderr).not.toMatch(/Cannot read properties|TypeError|\n\s+at /);
        }
        expect(activation.stderr).toMatch(/^ERROR: /);
        expect(run.stderr).toMatch(/^ERROR: /);
        expect(existsSync(ran)).toBe(false); // run never started the command
      } finally {
        await new Promise((r) => server.close(r));
      }
    });
  }
});

describe('mimo-proxy run', () => {
  const baseEnv = (): Record<string, string> => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: root });

  it('exits with the command exit code', async () => {
    expect(await runCommand(['--port', '0', '--certs', certs, '--no-persist', '--', 'sh', '-c', 'exit 7'], io(baseEnv()))).toBe(7);
  });

  it('exits with 128+N when the command dies of signal N', async () => {
    expect(await runCommand(['--port', '0', '--certs', certs, '--no-persist', '--', 'sh', '-c', 'kill -TERM $$'], io(baseEnv()))).toBe(143);
  });

  it('forwards SIGTERM to the command and stops listening for it afterwards', async () => {
    const before = process.listenerCount('SIGTERM');
    const child = runChild('sleep', ['10'], baseEnv(), io({}));
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    // Emitting (not raising) reaches only the listeners: the test process itself is not signalled.
    setTimeout(() => process.emit('SIGTERM', 'SIGTERM'), 100);
    expect(await child).toBe(143);
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });

  it('answers a missing command with exit 127 and a clear message, and no command with a usage error', async () => {
    const c = io(baseEnv());
    expect(await runCommand(['--port', '0', '--certs', certs, '--no-persist', '--', 'no-such-command-mimo'], c)).toBe(127);
    expect(c.err).toContain('command not found: no-such-command-mimo');
    await expect(runCommand(['--port', '0'], io({}))).rejects.toThrow(/no command to run/);
    await expect(runCommand(['sh'], io({}))).rejects.toThrow(/put -- before the command/);
  });

  it('starts a proxy in-process when none answers, which the command reaches with its variables', async () => {
    const free = await freePort();
    const out = path.join(root, 'child.json');
    const script = `fetch(process.env.MIMO_PROXY_ACTIVE + '/health').then(r => r.json()).then(h => require('fs').writeFileSync(process.env.OUT, JSON.stringify({ ok: h.ok, env: process.env })))`;
    const c = io({ ...baseEnv(), OUT: out });
    expect(await runCommand(['--port', String(free), '--certs', certs, '--no-persist', '--', process.execPath, '-e', script], c)).toBe(0);
    const seen = JSON.parse(readFileSync(out, 'utf8')) as { ok: boolean; env: Record<string, string> };
    expect(seen.ok).toBe(true);
    expect(seen.env.HTTPS_PROXY).toBe(`http://127.0.0.1:${free}`);
    expect(seen.env.NODE_EXTRA_CA_CERTS).toBe(path.join(certs, 'ca.pem'));
    expect(path.dirname(seen.env.SSL_CERT_FILE!)).toBe(certs);
    expect(path.basename(seen.env.SSL_CERT_FILE!)).toMatch(/^bundle-[0-9a-f]{16}\.pem$/);
    expect(Object.keys(seen.env).filter((k) => k.startsWith('_MIMO_PROXY_'))).toEqual([]);
    // Closed after the command: the port is free again.
    const s = io({});
    expect(await statusCommand(['--port', String(free)], s)).toBe(1);
  });

  it('reuses a proxy already running on the port', async () => {
    const proxy = await startProxy(resolveConfig(parseArgs(['--port', '0', '--certs', certs, '--no-persist']).options), silentLogger);
    try {
      const c = io(baseEnv());
      const code = await runCommand(['--port', String(proxy.port), '--certs', certs, '--', process.execPath, '-e', `fetch(process.env.MIMO_PROXY_ACTIVE + '/health').then(r => process.exit(r.ok ? 0 : 1))`], c);
      expect(code).toBe(0);
      // A second proxy on that port would have failed with PORT_IN_USE; no warning means the CA matched.
      expect(c.err).toBe('');
    } finally {
      await proxy.close();
    }
    expect(readdirSync(certs).some((f) => /^bundle-[0-9a-f]{16}\.pem$/.test(f))).toBe(true);
  });
});
