/**
 * Flags + environment -> one validated configuration (config.ts). Every
 * option also reads `MIMO_PROXY_<NAME>` (dashes as underscores); a flag beats
 * the environment, and the environment beats the default. A bad value throws
 * one MimoProxyError naming the option and the fix, before anything listens.
 * Pure apart from reading the `--upstream-ca` file.
 *
 * The rules for host names and --connect-to come from net/, the cache's
 * default limits from cache/: each is written once, where it belongs.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { DEFAULT_CACHE_LIMITS, validateCacheLimits } from '../cache/limits.js';
import type { Degrade, ProxyConfig } from '../config.js';
import { MimoProxyError } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../log.js';
import { parseConnectTo } from '../net/connect-to.js';
import { parseDomains } from '../net/hosts.js';
import { DEFAULT_PROVIDERS, PROVIDER_IDS, providerById } from '../providers.js';
import { PACKAGE_ROOT } from '../version.js';

// Not `import { parseArgs } from 'node:util'`: an ES import of node:util builds its whole
// namespace, which costs every `env` about 3 ms; the CommonJS object is already loaded.
const { parseArgs: parseTokens } = process.getBuiltinModule('node:util');

type Kind = 'string' | 'int' | 'bytes' | 'duration' | 'bool';

export interface OptionSpec {
  kind: Kind;
  repeatable?: boolean;
  /** The value used when neither the flag nor its variable is given, as a user would type it. */
  default?: string;
  help: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const TIME_UNITS: Record<string, number> = { ms: 1, '': 1000, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** A size as --max-body takes it, in the largest unit that divides it exactly (so it parses back to the same number). */
function formatBytes(bytes: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) if (bytes % size === 0) return `${bytes / size}${unit}`;
  return String(bytes);
}

/** A duration as --cache-ttl takes it, in the largest unit that divides it exactly. */
function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** The options `start` (and `run`) accept, with one line of help each. */
export const OPTIONS: OptionSpecs = {
  host: { kind: 'string', default: '127.0.0.1', help: 'address to listen on' },
  port: { kind: 'int', default: '8899', help: 'port to listen on; 0 picks a free one' },
  certs: { kind: 'string', help: 'folder of the CA (default: certs/ in the package)' },
  data: { kind: 'string', help: 'folder for state such as the reasoning cache (default: the certs folder)' },
  providers: { kind: 'string', default: DEFAULT_PROVIDERS, help: `providers to intercept, comma-separated: ${PROVIDER_IDS.join(', ')}` },
  hosts: { kind: 'string', default: 'xiaomimimo.com', help: "MiMo's domains to intercept, with all subdomains" },
  upstream: { kind: 'string', default: 'https://api.xiaomimimo.com/v1', help: 'direct-mode target' },
  'connect-to': { kind: 'string', repeatable: true, help: 'HOST:PORT:HOST2:PORT2, send HOST:PORT traffic to HOST2:PORT2 (repeatable)' },
  'upstream-ca': { kind: 'string', help: 'extra CA file (PEM) trusted for upstream TLS' },
  'log-level': { kind: 'string', default: 'info', help: LOG_LEVELS.join('|') },
  timeout: { kind: 'duration', default: '600s', help: 'upstream idle timeout' },
  degrade: { kind: 'string', default: 'placeholder', help: 'placeholder|flatten: what to do when reasoning is unknown' },
  'max-body': { kind: 'bytes', default: '32MiB', help: 'largest request body rewritten; larger ones pass untouched' },
  'cache-max': { kind: 'int', default: String(DEFAULT_CACHE_LIMITS.maxEntries), help: 'reasoning cache entries' },
  'cache-max-bytes': { kind: 'bytes', default: formatBytes(DEFAULT_CACHE_LIMITS.maxBytes), help: 'reasoning cache size' },
  'cache-ttl': { kind: 'duration', default: formatDuration(DEFAULT_CACHE_LIMITS.ttlMs), help: 'how long reasoning is kept' },
  'no-persist': { kind: 'bool', help: 'keep the cache in memory only (no store on disk)' },
  auth: { kind: 'string', help: 'USER:PASS required from clients (Proxy-Authorization); needed for a non-loopback --host' },
  store: { kind: 'string', default: 'sqlite', help: 'sqlite, or redis://[USER:PASS@]HOST:PORT[/DB] (rediss:// for TLS) shared by several proxies' },
  'metrics-open': { kind: 'bool', help: 'with --auth, serve /metrics and the figures of / and /health without credentials' },
};

/** One line of `--help` per option. */
export function optionsHelp(specs: OptionSpecs = OPTIONS): string {
  return Object.entries(specs)
    .map(([name, spec]) => `  --${(name + (spec.kind === 'bool' ? '' : ' V')).padEnd(20)} ${spec.help}${spec.default === undefined ? '' : ` (default ${spec.default})`}`)
    .join('\n');
}

export type RawOptions = Record<string, string | string[] | boolean | undefined>;

function badOption(name: string, value: unknown, hint: string): MimoProxyError {
  return new MimoProxyError('BAD_OPTION', `--${name} ${JSON.stringify(value)} is not valid`, hint);
}

/** A separate word after an option that takes a value is never taken as that value when it looks like an option. */
function looksLikeOption(word: string): boolean {
  return word.length > 1 && word.startsWith('-');
}

/**
 * Split argv into options (by specs) and the remaining words; `--` and all
 * that follows it stay in `rest` as given (for `run -- CMD ARGS`). node:util
 * tokenizes (`--name value`, `--name=value`, `--`); the checks are ours, so
 * each error names the option and the fix: `--port --host X` is "--port needs
 * a value", never a port named "--host".
 */
export function parseArgs(argv: readonly string[], specs: OptionSpecs = OPTIONS): { options: RawOptions; rest: string[] } {
  const { tokens } = parseTokens({
    args: [...argv],
    options: Object.fromEntries(Object.entries(specs).map(([name, spec]) => [name, { type: spec.kind === 'bool' ? 'boolean' : 'string', multiple: spec.repeatable === true }] as const)),
    // Strict mode would throw sentences we could only re-parse; the checks below say the same things our way.
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const options: RawOptions = {};
  const rest: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      rest.push('--');
      continue;
    }
    if (token.kind === 'positional') {
      rest.push(token.value);
      continue;
    }
    const spec = token.rawName.startsWith('--') && Object.hasOwn(specs, token.name) ? specs[token.name] : undefined;
    if (spec === undefined) throw new MimoProxyError('BAD_OPTION', `unknown option ${token.rawName}`, 'run mimo-proxy --help for the list of options');
    const name = token.name;
    let value: string | boolean;
    if (spec.kind === 'bool') {
      value = token.value ?? true; // --no-persist, or --no-persist=0
    } else if (token.value === undefined || (!token.inlineValue && looksLikeOption(token.value))) {
      throw new MimoProxyError('BAD_OPTION', `--${name} needs a value`, `pass --${name} VALUE (${spec.help}); a value that starts with a dash goes as --${name}=VALUE`);
    } else {
      value = token.value;
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
export function withEnvironment(options: RawOptions, env: NodeJS.ProcessEnv, specs: OptionSpecs = OPTIONS): RawOptions {
  const merged: RawOptions = { ...options };
  for (const [name, spec] of Object.entries(specs)) {
    if (merged[name] !== undefined) continue;
    const value = env[`MIMO_PROXY_${name.toUpperCase().replaceAll('-', '_')}`];
    if (value === undefined || value === '') continue;
    merged[name] = spec.repeatable ? value.split(/[\s,]+/).filter(Boolean) : value;
  }
  return merged;
}

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

/** The option's value as given, else its default (undefined for an option without one). */
function valueOf(raw: RawOptions, name: string): string | undefined {
  const given = raw[name];
  return typeof given === 'string' ? given : OPTIONS[name]?.default;
}

/** Same, for an option that has a default. */
function valueOrDefault(raw: RawOptions, name: string): string {
  return valueOf(raw, name) as string;
}

/**
 * Where a proxy is: --host and --port, checked, nothing else. `status` needs
 * no more (a wildcard --host is fine there: it only connects).
 */
export function resolveAddress(raw: RawOptions): { host: string; port: number } {
  const host = valueOrDefault(raw, 'host');
  if (host === '' || /[\s/@]/.test(host)) throw badOption('host', host, 'pass an address such as 127.0.0.1 or ::1');
  return { host, port: parseInteger('port', valueOrDefault(raw, 'port'), 0, 65535) };
}

const PEM_BEGIN = '-----BEGIN CERTIFICATE-----';
const PEM_END = '-----END CERTIFICATE-----';

/**
 * The --upstream-ca file's text, refused unless each certificate block in it
 * parses: TLS would skip a broken block without a word, and the upstream it
 * was meant for would fail verification at the first request instead.
 */
function readUpstreamCa(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new MimoProxyError('BAD_OPTION', `--upstream-ca ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'pass the path of a PEM file with the CA certificate', { cause: err });
  }
  const blocks = pem.split(PEM_BEGIN).slice(1);
  if (blocks.length === 0) throw new MimoProxyError('BAD_OPTION', `--upstream-ca ${file} holds no PEM certificate`, `pass a PEM file that contains ${PEM_BEGIN}`);
  let offset = pem.indexOf(PEM_BEGIN);
  for (const [i, block] of blocks.entries()) {
    const where = `certificate ${i + 1} of ${blocks.length} (line ${pem.slice(0, offset).split('\n').length})`;
    const end = block.indexOf(PEM_END);
    let problem: string | undefined;
    if (end === -1) {
      problem = `has no ${PEM_END} line`;
    } else {
      try {
        new X509Certificate(PEM_BEGIN + block.slice(0, end + PEM_END.length));
      } catch (err) {
        problem = `cannot be parsed (${(err as Error).message})`;
      }
    }
    if (problem !== undefined) {
      throw new MimoProxyError('BAD_OPTION', `--upstream-ca ${file}: ${where} ${problem}`, 'pass a PEM file whose every certificate is complete (openssl x509 -noout -in FILE checks the first)');
    }
    offset += PEM_BEGIN.length + block.length;
  }
  return pem;
}

/** `--providers` -> known provider ids, in order, without repeats. */
export function parseProviders(list: string): string[] {
  const ids = list.split(/[\s,]+/).map((id) => id.trim().toLowerCase()).filter((id) => id !== '');
  if (ids.length === 0) throw badOption('providers', list, `pass one or more of ${PROVIDER_IDS.join(', ')}, separated by commas`);
  for (const id of ids) {
    if (!PROVIDER_IDS.includes(id)) throw badOption('providers', id, `pass one or more of ${PROVIDER_IDS.join(', ')}, separated by commas`);
  }
  return [...new Set(ids)];
}

/**
 * The enabled providers with their domains: MiMo's are --hosts (its default is MiMo's own
 * domain), the others' come from their entries. --hosts without MiMo enabled is refused: it
 * would intercept nothing.
 */
export function enabledProviders(raw: RawOptions): { id: string; domains: string[] }[] {
  const ids = parseProviders(valueOrDefault(raw, 'providers'));
  const hosts = parseDomains(valueOrDefault(raw, 'hosts'));
  if (typeof raw['hosts'] === 'string' && !ids.includes('mimo')) {
    throw new MimoProxyError('BAD_OPTION', `--hosts sets MiMo's domains, but --providers ${ids.join(',')} leaves MiMo out`, 'add mimo to --providers, or leave --hosts out');
  }
  return ids.map((id) => ({ id, domains: id === 'mimo' ? hosts : [...(providerById(id)?.domains ?? [])] }));
}

/**
 * --store: `sqlite` (the file in --data), or a Redis URL. The message never repeats the value
 * (it may hold a password).
 */
export function parseStore(text: string): URL | undefined {
  if (text === 'sqlite') return undefined;
  const bad = (why: string): MimoProxyError =>
    new MimoProxyError('BAD_OPTION', `--store is not valid: ${why}`, 'pass sqlite, or redis://[USER:PASS@]HOST:PORT[/DB] (rediss:// for TLS)');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw bad(`the scheme must be redis: or rediss:, not ${url.protocol}`);
  if (url.hostname === '') throw bad('it names no host');
  if (url.search || url.hash) throw bad('it has a query or fragment');
  try {
    // The store decodes them so; a stray % would otherwise stop startup with no word of --store.
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    throw bad('its user name or password has a % that does not start an escape (write % as %25)');
  }
  const db = url.pathname.replace(/^\/+/, '');
  if (db !== '' && !/^\d{1,5}$/.test(db)) throw bad('the path must be a database number such as /0');
  return url;
}

/** Options as given (flags merged with the environment) -> validated configuration. */
export function resolveConfig(raw: RawOptions): ProxyConfig {
  const { host, port } = resolveAddress(raw);

  const certsDir = path.resolve(valueOf(raw, 'certs') ?? path.join(PACKAGE_ROOT, 'certs'));
  const dataDir = path.resolve(valueOf(raw, 'data') ?? certsDir);
  const providers = enabledProviders(raw);
  const domains = [...new Set(providers.flatMap((provider) => provider.domains))];

  const upstreamText = valueOrDefault(raw, 'upstream');
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

  const upstreamCaText = valueOf(raw, 'upstream-ca');
  const upstreamCaFile = upstreamCaText === undefined ? undefined : path.resolve(upstreamCaText);
  const upstreamCaPem = upstreamCaFile === undefined ? undefined : readUpstreamCa(upstreamCaFile);

  const logLevel = valueOrDefault(raw, 'log-level') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw badOption('log-level', logLevel, `pass one of ${LOG_LEVELS.join(', ')}`);

  const degrade = valueOrDefault(raw, 'degrade') as Degrade;
  if (degrade !== 'placeholder' && degrade !== 'flatten') throw badOption('degrade', degrade, 'pass placeholder or flatten');

  const auth = valueOf(raw, 'auth');
  if (auth !== undefined && !/^[^:\s]+:\S+$/.test(auth)) throw badOption('auth', '(hidden)', 'pass USER:PASS (no spaces; the user may not contain a colon)');
  if (!isLoopbackHost(host) && auth === undefined) {
    throw new MimoProxyError('OPEN_PROXY', `--host ${host} would let other machines use this proxy without a password`);
  }

  const cacheLimits = {
    maxEntries: parseInteger('cache-max', valueOrDefault(raw, 'cache-max'), 1, 5_000_000),
    maxBytes: parseBytes('cache-max-bytes', valueOrDefault(raw, 'cache-max-bytes')),
    ttlMs: parseDuration('cache-ttl', valueOrDefault(raw, 'cache-ttl')),
  };
  // The cache's own rule for its limits, checked once, here (its constructors trust them).
  validateCacheLimits(cacheLimits);

  const store = parseStore(valueOrDefault(raw, 'store'));
  const persist = raw['no-persist'] === undefined ? true : !parseBool('no-persist', raw['no-persist'] as string | boolean);
  if (store !== undefined && !persist) {
    throw new MimoProxyError('BAD_OPTION', '--no-persist and a Redis --store contradict each other', 'pass one of them: --no-persist keeps the cache in memory only, --store redis://... shares it');
  }

  return {
    host,
    port,
    certsDir,
    dataDir,
    domains,
    providers,
    upstream,
    connectTo,
    upstreamCaFile,
    upstreamCaPem,
    logLevel,
    timeoutMs: parseDuration('timeout', valueOrDefault(raw, 'timeout')),
    degrade,
    maxBodyBytes: parseBytes('max-body', valueOrDefault(raw, 'max-body')),
    cacheMax: cacheLimits.maxEntries,
    cacheMaxBytes: cacheLimits.maxBytes,
    cacheTtlMs: cacheLimits.ttlMs,
    persist,
    auth,
    store,
    metricsOpen: raw['metrics-open'] === undefined ? false : parseBool('metrics-open', raw['metrics-open'] as string | boolean),
  };
}
