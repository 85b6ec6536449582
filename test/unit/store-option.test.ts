/**
 * --store and --metrics-open as cli/options.ts reads them: sqlite by default, a Redis URL
 * checked at startup with one line naming the option (never repeating a password), from a
 * flag or MIMO_PROXY_STORE, and refused beside --no-persist.
 */
import { describe, expect, it } from 'vitest';
import { parseArgs, parseStore, resolveConfig, withEnvironment } from '../../src/cli/options.js';
import { MimoProxyError } from '../../src/errors.js';

const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveConfig(withEnvironment(parseArgs(argv).options, env));

function failure(run: () => unknown): MimoProxyError {
  try {
    run();
  } catch (err) {
    if (err instanceof MimoProxyError) return err;
    throw err;
  }
  throw new Error('expected a MimoProxyError');
}

describe('--store', () => {
  it('is SQLite unless a Redis URL is given, by flag or MIMO_PROXY_STORE (a flag wins)', () => {
    expect(config([]).store).toBeUndefined();
    expect(config(['--store', 'sqlite']).store).toBeUndefined();
    expect(config(['--store', 'redis://10.0.0.5:6379/2']).store?.href).toBe('redis://10.0.0.5:6379/2');
    expect(config([], { MIMO_PROXY_STORE: 'rediss://u:p@cache.internal:6380' }).store?.protocol).toBe('rediss:');
    expect(config(['--store', 'sqlite'], { MIMO_PROXY_STORE: 'redis://127.0.0.1' }).store).toBeUndefined();
    expect(config([]).metricsOpen).toBe(false);
    expect(config(['--metrics-open']).metricsOpen).toBe(true);
    expect(config([], { MIMO_PROXY_METRICS_OPEN: '1' }).metricsOpen).toBe(true);
  });

  it('refuses what is not a Redis URL with one line naming --store, never repeating the value (it may hold a password)', () => {
    for (const bad of ['mysql://u:hunter2@h', 'redis://u:hunter2@', 'redis://u:hunter2@h:6379/x', 'redis://u:hunter2@h?x=1', 'hunter2']) {
      const err = failure(() => parseStore(bad));
      expect(err.code).toBe('BAD_OPTION');
      expect(err.format()).toMatch(/^ERROR: --store is not valid: .*\. Fix: pass sqlite, or redis:\/\//);
      expect(err.format()).not.toContain('hunter2');
    }
  });

  it('refuses a user name or password whose % is not an escape (write % as %25), naming --store and the fix, never the value', () => {
    for (const bad of ['redis://:p%zz-hunter2@127.0.0.1:6379', 'redis://u%E0%A4%A:hunter2@127.0.0.1', 'rediss://u:hunter2%@h:6380/1']) {
      const err = failure(() => parseStore(bad));
      expect(err.code).toBe('BAD_OPTION');
      expect(err.format()).toMatch(/^ERROR: --store is not valid: .*%25.*\. Fix: pass sqlite, or redis:\/\//);
      expect(err.format()).not.toContain('hunter2');
    }
    // Escaped, every character a password may hold reaches Redis as written.
    expect(decodeURIComponent(parseStore('redis://:p%40ss%3Aw%2Frd%23%25%20x@127.0.0.1')!.password)).toBe('p@ss:w/rd#% x');
    expect(decodeURIComponent(parseStore('redis://:p@ss@127.0.0.1')!.password)).toBe('p@ss');
  });

  it('refuses --no-persist beside a Redis store: they say opposite things', () => {
    const err = failure(() => config(['--store', 'redis://127.0.0.1:6379', '--no-persist']));
    expect(err.format()).toContain('--no-persist and a Redis --store contradict each other');
  });
});
