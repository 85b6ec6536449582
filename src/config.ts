/**
 * Flags + environment -> one validated configuration. Every option also
 * reads `MIMO_PROXY_<NAME>` (dashes as underscores); a flag beats the
 * environment. A bad value throws one MimoProxyError naming the option and
 * the fix, before anything listens. Pure apart from reading the
 * `--upstream-ca` file.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConnectTo, type ConnectToRule } from './net/connect-to.js';
import { MimoProxyError } from './errors.js';
import { parseDomains } from './net/hosts.js';
import { LOG_LEVELS, type LogLevel } from './log.js';

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export type Degrade = 'placeholder' | 'flatten';

export interface ProxyConfig {
  host: string;
  port: number;
  certsDir: string;
  dataDir: string;
  domains: string[];
  upstream: URL;
  connectTo: ConnectToRule[];
  upstreamCaFile: string | undefined;
  upstreamCaPem: string | undefined;
  logLevel: LogLevel;
  /** Upstream idle timeout: no byte for this long ends the request with a 504. */
  timeoutMs: number;
  degrade: Degrade;
  maxBodyBytes: number;
  cacheMax: number;
  cacheMaxBytes: number;
  cacheTtlMs: number;
  persist: boolean;
  /** `USER:PASS` required as Proxy-Authorization (Basic); required for a non-loopback --host. */
  auth: string | undefined;
}

type Kind = 'string' | 'int' | 'bytes' | 'duration' | 'bool';

interface OptionSpec {
  kind: Kind;
  repeatable?: boolean;
  help: string;
}

/** The options `start` (and `run`) accept, with one line of help each. */
export const OPTIONS: Record<string, OptionSpec> = {
  host: { kind: 'string', help: 'address to listen on (default 127.0.0.1)' },
  port: { kind: 'int', help: 'port to listen on; 0 picks a free one (default 8899)' },
  certs: { kind: 'string', help: 'folder of the CA (default: certs/ in the package)' },
  data: { kind: 'string', help: 'folder for state such as the reasoning cache (default: the certs folder)' },
  hosts: { kind: 'string', help: 'domains to intercept, with all subdomains (default xiaomimimo.com)' },
  upstream: { kind: 'string', help: 'direct-mode target (default https://api.xiaomimimo.com/v1)' },
  'connect-to': { kind: 'string', repeatable: true, help: 'HOST:PORT:HOST2:PORT2, send HOST:PORT traffic to HOST2:PORT2 (repeatable)' },
  'upstream-ca': { kind: 'string', help: 'extra CA file (PEM) trusted for upstream TLS' },
  'log-level': { kind: 'string', help: 'silent|error|warn|info|debug (default info)' },
  timeout: { kind: 'duration', help: 'upstream idle timeout (default 600s)' },
  degrade: { kind: 'string', help: 'placeholder|flatten: what to do when reasoning is unknown (default placeholder)' },
  'max-body': { kind: 'bytes', help: 'largest request body rewritten; larger ones pass untouched (default 32MiB)' },
  'cache-max': { kind: 'int', help: 'reasoning cache entries (default 50000)' },
  'cache-max-bytes': { kind: 'bytes', help: 'reasoning cache size (default 256MiB)' },
  'cache-ttl': { kind: 'duration', help: 'how long reasoning is kept (default 7d)' },
  'no-persist': { kind: 'bool', help: 'keep the cache in memory only (no store on disk)' },
  auth: { kind: 'string', help: 'USER:PASS required from clients (Proxy-Authorization); needed for a non-loopback --host' },
};

export type RawOptions = Record<string, string | string[] | boolean | undefined>;

function badOption(name: string, value: unknown, hint: string): MimoProxyError {
  return new MimoProxyError('BAD_OPTION', `--${name} ${JSON.stringify(value)} is not valid`, hint);
}

/** Split argv into options (by OPTIONS) and the remaining positional words. */
export function parseArgs(argv: readonly string[], specs: Record<string, OptionSpec> = OPTIONS): { options: RawOptions; rest: string[] } {
  const options: RawOptions = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith('--')) {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = specs[name];
    if (!spec) {
      throw new MimoProxyError('BAD_OPTION', `unknown option --${name}`, 'run mimo-proxy --help for the list of options');
    }
    let value: string | boolean;
    if (spec.kind === 'bool') {
      value = eq === -1 ? true : arg.slice(eq + 1);
    } else if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new MimoProxyError('BAD_OPTION', `--${name} needs a value`, `pass --${name} VALUE (${spec.help})`);
      value = next;
      i++;
    }
    if (spec.repeatable) {
      const list = (options[name] as string[] | undefined) ?? [];
      list.push(String(value));
      options[name] = list;
    } else {
      options[name] = value;
    }
  }
  return { options, rest };
}

/** `MIMO_PROXY_<NAME>` for every option not given as a flag. Repeatable ones split on commas and spaces. */
export function withEnvironment(options: RawOptions, env: NodeJS.ProcessEnv, specs: Record<string, OptionSpec> = OPTIONS): RawOptions {
  const merged: RawOptions = { ...options };
  for (const [name, spec] of Object.entries(specs)) {
    if (merged[name] !== undefined) continue;
    const value = env[`MIMO_PROXY_${name.toUpperCase().replaceAll('-', '_')}`];
    if (value === undefined || value === '') continue;
    merged[name] = spec.repeatable ? value.split(/[\s,]+/).filter(Boolean) : value;
  }
  return merged;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, '': 1000, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseBytes(name: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  const value = m && unit ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!(value >= 1 && Number.isSafeInteger(value))) throw badOption(name, text, `pass a size such as 32MiB, 512KiB or a number of bytes`);
  return value;
}

/** Plain numbers are seconds. */
export function parseDuration(name: string, text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? TIME_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  const value = m && unit ? Math.round(Number(m[1]) * unit) : NaN;
  if (!(value >= 1 && Number.isSafeInteger(value))) throw badOption(name, text, `pass a duration such as 90s, 10m, 12h or 7d`);
  return value;
}

function parseInteger(name: string, text: string, min: number, max: number): number {
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) throw badOption(name, text, `pass a whole number from ${min} to ${max}`);
  return value;
}

function parseBool(name: string, value: string | boolean): boolean {
  if (typeof value === 'boolean') return value;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw badOption(name, value, 'pass 1 or 0');
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Options as given (flags merged with the environment) -> validated configuration. */
export function resolveConfig(raw: RawOptions): ProxyConfig {
  const str = (name: string): string | undefined => {
    const v = raw[name];
    return typeof v === 'string' ? v : undefined;
  };

  const host = str('host') ?? '127.0.0.1';
  if (host === '' || /[\s/@]/.test(host)) throw badOption('host', host, 'pass an address such as 127.0.0.1 or ::1');
  const port = str('port') === undefined ? 8899 : parseInteger('port', str('port') as string, 0, 65535);

  const certsDir = path.resolve(str('certs') ?? path.join(PACKAGE_ROOT, 'certs'));
  const dataDir = path.resolve(str('data') ?? certsDir);
  const domains = parseDomains(str('hosts') ?? 'xiaomimimo.com');

  const upstreamText = str('upstream') ?? 'https://api.xiaomimimo.com/v1';
  let upstream: URL;
  try {
    upstream = new URL(upstreamText);
  } catch {
    throw badOption('upstream', upstreamText, 'pass a URL such as https://api.xiaomimimo.com/v1');
  }
  if ((upstream.protocol !== 'https:' && upstream.protocol !== 'http:') || upstream.username || upstream.password || upstream.search || upstream.hash) {
    throw badOption('upstream', upstreamText, 'pass an http(s) URL without credentials, query or fragment, such as https://api.xiaomimimo.com/v1');
  }

  const connectToRaw = raw['connect-to'];
  const connectTo = (Array.isArray(connectToRaw) ? connectToRaw : typeof connectToRaw === 'string' ? [connectToRaw] : []).map(parseConnectTo);

  const upstreamCaFile = str('upstream-ca') === undefined ? undefined : path.resolve(str('upstream-ca') as string);
  let upstreamCaPem: string | undefined;
  if (upstreamCaFile !== undefined) {
    try {
      upstreamCaPem = readFileSync(upstreamCaFile, 'utf8');
    } catch (err) {
      throw new MimoProxyError('BAD_OPTION', `--upstream-ca ${upstreamCaFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'pass the path of a PEM file with the CA certificate', { cause: err });
    }
    if (!upstreamCaPem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new MimoProxyError('BAD_OPTION', `--upstream-ca ${upstreamCaFile} holds no PEM certificate`, 'pass a PEM file that contains -----BEGIN CERTIFICATE-----');
    }
  }

  const logLevel = (str('log-level') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw badOption('log-level', logLevel, `pass one of ${LOG_LEVELS.join(', ')}`);

  const degrade = (str('degrade') ?? 'placeholder') as Degrade;
  if (degrade !== 'placeholder' && degrade !== 'flatten') throw badOption('degrade', degrade, 'pass placeholder or flatten');

  const auth = str('auth');
  if (auth !== undefined && !/^[^:\s]+:\S+$/.test(auth)) throw badOption('auth', '(hidden)', 'pass USER:PASS (no spaces; the user may not contain a colon)');
  if (!isLoopbackHost(host) && auth === undefined) {
    throw new MimoProxyError('OPEN_PROXY', `--host ${host} would let other machines use this proxy without a password`, 'keep the default --host 127.0.0.1, or add --auth USER:PASS');
  }

  return {
    host,
    port,
    certsDir,
    dataDir,
    domains,
    upstream,
    connectTo,
    upstreamCaFile,
    upstreamCaPem,
    logLevel,
    timeoutMs: str('timeout') === undefined ? 600_000 : parseDuration('timeout', str('timeout') as string),
    degrade,
    maxBodyBytes: str('max-body') === undefined ? 32 * 1024 ** 2 : parseBytes('max-body', str('max-body') as string),
    cacheMax: str('cache-max') === undefined ? 50_000 : parseInteger('cache-max', str('cache-max') as string, 1, 5_000_000),
    cacheMaxBytes: str('cache-max-bytes') === undefined ? 256 * 1024 ** 2 : parseBytes('cache-max-bytes', str('cache-max-bytes') as string),
    cacheTtlMs: str('cache-ttl') === undefined ? 7 * 86_400_000 : parseDuration('cache-ttl', str('cache-ttl') as string),
    persist: raw['no-persist'] === undefined ? true : !parseBool('no-persist', raw['no-persist'] as string | boolean),
    auth,
  };
}
