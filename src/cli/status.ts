/**
 * `mimo-proxy status`: ask the proxy on a port what it is doing. Also the
 * probe `env` and `run` use to tell "a mimo-proxy", "nothing" and "something
 * else" apart.
 */
import { formatHostPort } from '../net/connect-target.js';
import { MimoProxyError } from '../errors.js';
import type { StatusReport } from '../proxy/local.js';
import type { CommandIo } from './io.js';
import { OPTIONS, parseArgs, resolveAddress, withEnvironment } from './options.js';

// Not `import http from 'node:http'`: an ES import of node:http builds its namespace, which
// reads the lazy WebSocket getters and loads undici (about 30 ms, on every `env`). The
// CommonJS object costs about 5 ms.
const http = process.getBuiltinModule('node:http');

/** A local proxy answers in milliseconds; this only bounds a wedged one. */
export const PROBE_TIMEOUT_MS = 2000;
/** The status JSON is a few KB; more than this is not ours. */
const MAX_STATUS_BYTES = 1024 * 1024;

export type Probe =
  | { kind: 'mimo-proxy'; report: StatusReport }
  | { kind: 'nothing'; reason: string }
  /** Something we cannot use: another program, or a mimo-proxy whose status this version cannot read (`mimoProxy`). */
  | { kind: 'other'; detail: string; mimoProxy?: boolean };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The fields of a status answer that are missing or of the wrong type, by
 * name; [] when every field the commands read is there. Another mimo-proxy
 * version may answer with other fields: never trust the shape.
 */
export function statusProblems(value: unknown): string[] {
  if (!isRecord(value)) return ['a JSON object'];
  const problems: string[] = [];
  const need = (ok: boolean, name: string): void => {
    if (!ok) problems.push(name);
  };
  const isString = (v: unknown): boolean => typeof v === 'string';
  need(value.name === 'mimo-proxy', 'name');
  need(isString(value.version), 'version');
  need(typeof value.uptimeSeconds === 'number' && Number.isFinite(value.uptimeSeconds), 'uptimeSeconds');
  for (const key of ['listen', 'upstream', 'degrade']) need(isString(value[key]), key);
  need(Array.isArray(value.domains) && value.domains.every(isString), 'domains');
  need(value.providers === undefined || (Array.isArray(value.providers) && value.providers.every(isString)), 'providers');
  const ca = value.ca;
  need(isRecord(ca) && isString(ca.path) && isString(ca.fingerprint256) && isString(ca.notAfter) && (ca.warning == null || isString(ca.warning)), 'ca');
  need(isRecord(value.cache) && Object.values(value.cache).every((v) => ['number', 'boolean', 'string'].includes(typeof v)), 'cache');
  need(isRecord(value.counters) && Object.values(value.counters).every((v) => typeof v === 'number'), 'counters');
  return problems;
}

/** A version string safe to echo to a terminal (the answer came from whatever holds the port), or ''. */
function printableVersion(value: unknown): string {
  return typeof value === 'string' && /^[0-9A-Za-z.+-]{1,40}$/.test(value) ? value : '';
}

const PORT_TAKEN_HINT = 'another program or another mimo-proxy version holds that port: pass --port with another port, or stop what holds it';

/** What `env` and `run` refuse when the port holds something they cannot use: one line, what answered and the fix. */
export function portTaken(where: string, probe: { detail: string; mimoProxy?: boolean }): MimoProxyError {
  return new MimoProxyError('PORT_TAKEN', portTakenMessage(where, probe), PORT_TAKEN_HINT);
}

function portTakenMessage(where: string, probe: { detail: string; mimoProxy?: boolean }): string {
  return probe.mimoProxy
    ? `the mimo-proxy on ${where} answers in a form this version cannot read (${probe.detail})`
    : `something that is not a mimo-proxy listens on ${where} (${probe.detail})`;
}

/** The command that starts a proxy on that port. */
export function startCommandFor(port: number): string {
  return `npx mimo-proxy start${String(port) === OPTIONS.port?.default ? '' : ` --port ${port}`}`;
}

/** The address a client uses to reach a proxy listening on host: a wildcard listener is reached on loopback. */
export function clientHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

/** GET / with Accept: application/json, straight to host:port (never through a proxy). */
export function probeProxy(host: string, port: number, timeoutMs: number = PROBE_TIMEOUT_MS): Promise<Probe> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/', headers: { accept: 'application/json' }, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_STATUS_BYTES) {
          res.destroy();
          resolve({ kind: 'other', detail: `it answered HTTP ${res.statusCode} with more than ${MAX_STATUS_BYTES} bytes` });
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', () => resolve({ kind: 'other', detail: 'it closed the connection mid-answer' }));
      res.on('end', () => {
        const type = String(res.headers['content-type'] ?? 'no content-type');
        let report: unknown;
        try {
          report = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          report = undefined;
        }
        if (res.statusCode !== 200 || !isRecord(report) || report.name !== 'mimo-proxy') {
          const server = res.headers.server ? `, server: ${String(res.headers.server)}` : '';
          resolve({ kind: 'other', detail: `it answered HTTP ${res.statusCode} (${type}${server})` });
          return;
        }
        const problems = statusProblems(report);
        if (problems.length === 0) {
          resolve({ kind: 'mimo-proxy', report: report as unknown as StatusReport });
          return;
        }
        const listed = problems.length > 3 ? `${problems.slice(0, 3).join(', ')}, ...` : problems.join(', ');
        const version = printableVersion(report.version);
        resolve({ kind: 'other', mimoProxy: true, detail: `${version ? `version ${version}; ` : ''}no valid ${listed}` });
      });
    });
    req.on('timeout', () => {
      req.destroy();
      resolve({ kind: 'other', detail: `it accepted the connection but did not answer within ${timeoutMs} ms` });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') resolve({ kind: 'nothing', reason: err.code });
      else resolve({ kind: 'other', detail: `the connection failed (${err.code ?? err.message})` });
    });
  });
}

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : '', `${s}s`].filter(Boolean).slice(0, 3).join(' ');
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

/** The report as a few aligned lines. */
export function formatStatus(report: StatusReport): string {
  const row = (label: string, value: string): string => `  ${label.padEnd(14)} ${value}\n`;
  const cache = report.cache;
  const num = (key: string): number => (typeof cache[key] === 'number' ? (cache[key] as number) : 0);
  let out = `mimo-proxy ${report.version}, up ${duration(report.uptimeSeconds)}\n`;
  out += row('listening', report.listen);
  out += row('providers', (report.providers ?? ['mimo']).join(', '));
  out += row('intercepting', `${report.domains.join(', ')} and subdomains`);
  out += row('direct mode', `${report.upstream} (degrade: ${report.degrade})`);
  out += row('CA', report.ca.path);
  out += row('CA SHA-256', report.ca.fingerprint256);
  out += row('CA expires', report.ca.notAfter.slice(0, 10) + (report.ca.warning ? `  WARNING: ${report.ca.warning}` : ''));
  if (report.figures === false) {
    out += row('figures', 'withheld: the proxy runs with --auth; /metrics and its status page show them with the credentials');
    return out;
  }
  // (A proxy of an older version reports no store.)
  const store = (report as Partial<StatusReport>).store;
  const shared = store?.kind === 'redis' ? `; shared on ${store.where}, ${store.state}${store.problem ? ` (${store.problem})` : ''}` : undefined;
  out += row('cache', `${num('entries')} entries, ${bytes(num('bytes'))}; ${num('hits')} hits, ${num('misses')} misses${shared ?? (cache.persisted === true ? `; on disk ${num('storeEntries')} entries, ${bytes(num('storeBytes'))}` : ', memory only')}`);
  const counters = Object.entries(report.counters).filter(([, v]) => v !== 0);
  out += row('counters', counters.length === 0 ? 'all zero' : counters.map(([k, v]) => `${k}=${v}`).join(' '));
  return out;
}

const STATUS_OPTIONS = { host: OPTIONS.host!, port: OPTIONS.port! };

export async function statusCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { options, rest } = parseArgs(argv, STATUS_OPTIONS);
  if (rest.length > 0) throw new MimoProxyError('BAD_ARGUMENT', `unexpected argument ${JSON.stringify(rest[0])}`, 'run mimo-proxy status [--port P] [--host H]');
  // Only where to connect: a wildcard --host is fine here (status listens on nothing).
  const address = resolveAddress(withEnvironment(options, io.env, STATUS_OPTIONS));
  const host = clientHost(address.host);
  const where = formatHostPort(host, address.port);
  const probe = await probeProxy(host, address.port);
  switch (probe.kind) {
    case 'mimo-proxy':
      io.stdout(formatStatus(probe.report));
      return 0;
    case 'nothing':
      io.stderr(`no mimo-proxy is running on ${where}. Start one: ${startCommandFor(address.port)}\n`);
      return 1;
    case 'other':
      io.stderr(`${portTakenMessage(where, probe)}. Fix: ${PORT_TAKEN_HINT}\n`);
      return 1;
  }
}
