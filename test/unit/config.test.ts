import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CACHE_LIMITS } from '../../src/cache/cache.js';
import { OPTIONS, optionsHelp, parseArgs, parseBytes, parseDuration, resolveAddress, resolveConfig, withEnvironment } from '../../src/cli/options.js';
import { MimoProxyError } from '../../src/errors.js';
import { makeTestCa } from '../support/pki.js';

function configFrom(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return resolveConfig(withEnvironment(parseArgs(argv).options, env));
}

function errorOf(fn: () => unknown): MimoProxyError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MimoProxyError) return err;
    throw err;
  }
  throw new Error('expected a MimoProxyError');
}

describe('configuration', () => {
  it('defaults to loopback port 8899, xiaomimimo.com, the MiMo upstream and placeholder degrade', () => {
    const c = configFrom([]);
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8899);
    expect(c.domains).toEqual(['xiaomimimo.com']);
    expect(c.upstream.href).toBe('https://api.xiaomimimo.com/v1');
    expect(c.degrade).toBe('placeholder');
    expect(c.maxBodyBytes).toBe(32 * 1024 * 1024);
    expect(c.persist).toBe(true);
    expect(c.dataDir).toBe(c.certsDir);
  });

  it('enables MiMo alone by default; --providers (or MIMO_PROXY_PROVIDERS) adds the others\' domains, --hosts stays MiMo\'s', () => {
    expect(configFrom([]).providers).toEqual([{ id: 'mimo', domains: ['xiaomimimo.com'] }]);
    const c = configFrom(['--providers', 'mimo, DeepSeek,kimi,deepseek', '--hosts', 'xiaomimimo.com,mimo.example.org']);
    expect(c.providers).toEqual([
      { id: 'mimo', domains: ['xiaomimimo.com', 'mimo.example.org'] },
      { id: 'deepseek', domains: ['api.deepseek.com'] },
      { id: 'kimi', domains: ['api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com'] },
    ]);
    expect(c.domains).toEqual(['xiaomimimo.com', 'mimo.example.org', 'api.deepseek.com', 'api.moonshot.ai', 'api.moonshot.cn', 'api.kimi.com']);
    expect(configFrom([], { MIMO_PROXY_PROVIDERS: 'deepseek' }).domains).toEqual(['api.deepseek.com']);
  });

  it('refuses an unknown provider, an empty list, and --hosts without MiMo, naming the option', () => {
    for (const argv of [['--providers', 'openai'], ['--providers', ' , '], ['--providers', 'deepseek', '--hosts', 'xiaomimimo.com']]) {
      const error = errorOf(() => configFrom(argv));
      expect(error.code, argv.join(' ')).toBe('BAD_OPTION');
      expect(error.message, argv.join(' ')).toMatch(/--providers|--hosts/);
    }
    expect(errorOf(() => configFrom(['--providers', 'openai'])).hint).toContain('mimo, deepseek, kimi');
  });

  it('reads every option from MIMO_PROXY_<NAME>, and a flag beats the environment', () => {
    const env = { MIMO_PROXY_PORT: '9000', MIMO_PROXY_CONNECT_TO: 'a.xiaomimimo.com:443:127.0.0.1:1,b.xiaomimimo.com:443:127.0.0.1:2', MIMO_PROXY_NO_PERSIST: '1', MIMO_PROXY_CACHE_TTL: '12h' };
    const c = configFrom(['--port', '0'], env);
    expect(c.port).toBe(0);
    expect(c.connectTo).toHaveLength(2);
    expect(c.persist).toBe(false);
    expect(c.cacheTtlMs).toBe(12 * 3_600_000);
    expect(configFrom([], env).port).toBe(9000);
  });

  it('accepts --name=value and repeatable --connect-to', () => {
    const c = configFrom(['--port=1234', '--connect-to', 'x.xiaomimimo.com:443:127.0.0.1:1', '--connect-to=y.xiaomimimo.com:443:127.0.0.1:2']);
    expect(c.port).toBe(1234);
    expect(c.connectTo.map((r) => r.toPort)).toEqual([1, 2]);
  });

  it('names the option and the fix for each bad value', () => {
    const cases: [string[], RegExp][] = [
      [['--port', '70000'], /--port/],
      [['--port', 'abc'], /--port/],
      [['--log-level', 'loud'], /--log-level/],
      [['--degrade', 'strip'], /--degrade/],
      [['--upstream', 'ftp://x'], /--upstream/],
      [['--upstream', 'not a url'], /--upstream/],
      [['--max-body', '-1'], /--max-body/],
      [['--cache-ttl', 'forever'], /--cache-ttl/],
      [['--cache-max', '0'], /--cache-max/],
      [['--hosts', 'not_valid'], /--hosts/],
      [['--upstream-ca', '/nonexistent/ca.pem'], /--upstream-ca/],
      [['--bogus'], /--bogus/],
      [['--port'], /--port/],
    ];
    for (const [argv, pattern] of cases) {
      const err = errorOf(() => configFrom(argv));
      expect(err.message, argv.join(' ')).toMatch(pattern);
      expect(err.hint.length, argv.join(' ')).toBeGreaterThan(5);
      expect(err.format()).toMatch(/^ERROR: .*\. Fix: /);
    }
  });

  it('refuses a non-loopback --host without --auth, and never prints the password', () => {
    expect(errorOf(() => configFrom(['--host', '0.0.0.0'])).code).toBe('OPEN_PROXY');
    expect(configFrom(['--host', '0.0.0.0', '--auth', 'me:secret']).auth).toBe('me:secret');
    expect(configFrom(['--host', '::1']).host).toBe('::1');
    const bad = errorOf(() => configFrom(['--auth', 'nocolon']));
    expect(bad.format()).not.toContain('nocolon');
  });

  it('checks that --upstream-ca holds a PEM certificate', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-config-'));
    try {
      const file = path.join(dir, 'ca.pem');
      writeFileSync(file, 'not a certificate');
      expect(errorOf(() => configFrom(['--upstream-ca', file])).message).toMatch(/no PEM certificate/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes an option followed by another option as a missing value, never as the value', () => {
    for (const argv of [['--port', '--host', 'X'], ['--host', '--port', '1'], ['--auth', '-secret:x'], ['--port', '--']]) {
      const err = errorOf(() => parseArgs(argv));
      const name = argv[0] as string;
      expect(err.message, argv.join(' ')).toBe(`${name} needs a value`);
      expect(err.hint).toContain(`${name}=VALUE`);
      expect(err.format()).not.toContain('secret');
    }
    // The inline form takes any value; a lone dash is a value too.
    expect(parseArgs(['--auth=-u:p', '--certs', '-']).options).toEqual({ auth: '-u:p', certs: '-' });
  });

  it('keeps every word after -- for run, and refuses an unknown or short option by its name', () => {
    expect(parseArgs(['--port', '1', 'x', '--', 'sh', '-c', '--port']).rest).toEqual(['x', '--', 'sh', '-c', '--port']);
    expect(errorOf(() => parseArgs(['-p', '1'])).message).toBe('unknown option -p');
    expect(errorOf(() => parseArgs(['--bogus=1'])).message).toBe('unknown option --bogus');
    expect(errorOf(() => parseArgs(['--__proto__'])).message).toBe('unknown option --__proto__');
    expect(parseArgs(['--no-persist=0']).options['no-persist']).toBe('0');
    expect(configFrom(['--no-persist=0']).persist).toBe(true);
    expect(configFrom(['--no-persist']).persist).toBe(false);
  });

  it('takes the cache defaults from the cache, and shows every default in --help', () => {
    const c = configFrom([]);
    expect([c.cacheMax, c.cacheMaxBytes, c.cacheTtlMs]).toEqual([DEFAULT_CACHE_LIMITS.maxEntries, DEFAULT_CACHE_LIMITS.maxBytes, DEFAULT_CACHE_LIMITS.ttlMs]);
    expect(OPTIONS['cache-max-bytes']?.default).toBe('256MiB');
    expect(OPTIONS['cache-ttl']?.default).toBe('7d');
    expect(c.timeoutMs).toBe(600_000);
    expect(optionsHelp()).toMatch(/--port V +port to listen on; 0 picks a free one \(default 8899\)\n/);
  });

  it('states the same defaults in the README as it uses', () => {
    const readme = readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md'), 'utf8');
    for (const [name, spec] of Object.entries(OPTIONS)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`--${name}`));
      expect(row, name).toBeDefined();
      if (spec.default !== undefined) expect(row!.split(' | ')[1], name).toBe(`\`${spec.default}\``);
    }
  });

  it('reads only where a proxy is for status: a wildcard host needs no --auth there', () => {
    expect(resolveAddress({ host: '0.0.0.0' })).toEqual({ host: '0.0.0.0', port: 8899 });
    expect(resolveAddress(withEnvironment({}, { MIMO_PROXY_PORT: '9000' }))).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(errorOf(() => resolveAddress({ port: 'x' })).message).toMatch(/--port/);
    expect(errorOf(() => resolveAddress({ host: 'a b' })).message).toMatch(/--host/);
  });

  it('refuses an --upstream-ca whose certificate blocks do not all parse, naming the option and the block', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-config-'));
    const ca = makeTestCa('upstream-ca');
    try {
      const good = `${ca.certPem.replace(/\r\n/g, '\n').trimEnd()}\n`;
      const lines = good.split('\n');
      const cases: [string, string, RegExp][] = [
        ['broken.pem', good.replace(/^(-----BEGIN CERTIFICATE-----\n)MII/, '$1MIX'), /certificate 1 of 1 \(line 1\) cannot be parsed/],
        ['truncated.pem', `${good}${lines.slice(0, 5).join('\n')}\n`, /certificate 2 of 2 \(line \d+\) has no -----END CERTIFICATE----- line/],
        ['second-broken.pem', `# comment\n${good}${good.replace(/[A-Za-z0-9+/]{40}/, 'x'.repeat(40))}`, /certificate 2 of 2 \(line \d+\) cannot be parsed/],
      ];
      for (const [name, text, says] of cases) {
        const file = path.join(dir, name);
        writeFileSync(file, text);
        const err = errorOf(() => configFrom(['--upstream-ca', file]));
        expect(err.code, name).toBe('BAD_OPTION');
        expect(err.message, name).toMatch(new RegExp(`^--upstream-ca ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
        expect(err.message, name).toMatch(says);
        expect(err.format().split('\n'), name).toHaveLength(1);
      }
      // Two good certificates, one with CRLF line ends (forge writes those), and text around them.
      const both = path.join(dir, 'both.pem');
      const text = `subject=upstream\n${good}\n${good.replaceAll('\n', '\r\n')}`;
      writeFileSync(both, text);
      expect(configFrom(['--upstream-ca', both]).upstreamCaPem).toBe(text);
    } finally {
      ca.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses sizes and durations with units', () => {
    expect(parseBytes('max-body', '32MiB')).toBe(32 * 1024 ** 2);
    expect(parseBytes('max-body', '512k')).toBe(512 * 1024);
    expect(parseBytes('max-body', '100')).toBe(100);
    expect(parseDuration('timeout', '90')).toBe(90_000);
    expect(parseDuration('timeout', '250ms')).toBe(250);
    expect(parseDuration('cache-ttl', '7d')).toBe(7 * 86_400_000);
  });
});
