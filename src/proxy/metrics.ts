/**
 * GET /metrics: the proxy's figures in the Prometheus text format (version
 * 0.0.4), written here rather than with prom-client: a few counters, gauges
 * and histograms the proxy already keeps (stats.ts, the cache) need no
 * registry. Exact to the format: one HELP and TYPE line per family, label
 * values escaped (\\, ", newline), histogram buckets cumulative with `+Inf`
 * equal to `_count`, then `_sum` and `_count`.
 *
 * Labels come from fixed sets only (surface names, route kinds, rewrite
 * kinds, cache levels, error classes, store kinds): never a key, a host, a
 * path or message text.
 */
import { readdirSync } from 'node:fs';
import type { CacheStats, StoreStatus } from '../cache/cache.js';
import type { Counters, Histogram, Metrics, UpstreamErrorClass } from '../stats.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsSnapshot {
  counters: Counters;
  metrics: Metrics;
  cache: CacheStats;
  store: StoreStatus;
  storeLatency: Histogram;
  openConnections: number;
  /** Process start, seconds since the epoch. */
  startedAt: number;
  version: string;
}

type Labels = Record<string, string>;

export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelText(labels: Labels): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/** A number as Prometheus reads it (Go's ParseFloat): integers plainly, `+Inf`, `NaN`. */
function num(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

class Writer {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${labelText(labels)} ${num(value)}`);
    return this;
  }

  histogram(name: string, labels: Labels, histogram: Histogram): this {
    let cumulative = 0;
    histogram.bounds.forEach((bound, i) => {
      cumulative += histogram.counts[i] ?? 0;
      this.sample(`${name}_bucket`, { ...labels, le: num(bound) }, cumulative);
    });
    this.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, histogram.count);
    this.sample(`${name}_sum`, labels, histogram.sum);
    return this.sample(`${name}_count`, labels, histogram.count);
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

const UPSTREAM_CLASSES: readonly UpstreamErrorClass[] = ['timeout', 'refused', 'reset', 'tls', 'dns', 'protocol', 'other'];

/** Open file descriptors (Linux); undefined elsewhere. */
function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined;
  }
}

export function renderMetrics(s: MetricsSnapshot): string {
  const w = new Writer();
  const { counters, metrics, cache } = s;

  w.family('mimo_proxy_info', 'gauge', 'Version of the running proxy (always 1).').sample('mimo_proxy_info', { version: s.version }, 1);

  w.family('mimo_proxy_requests_total', 'counter', 'Requests relayed, by surface (chat, anthropic, responses, other) and route (intercept, direct, passthrough).');
  for (const [key, value] of [...metrics.requests].sort()) {
    const [surface = 'other', route = 'other'] = key.split(' ');
    w.sample('mimo_proxy_requests_total', { surface, route }, value);
  }

  w.family('mimo_proxy_connects_total', 'counter', 'CONNECT requests served, by outcome (intercepted: TLS terminated; tunnelled: bytes piped).')
    .sample('mimo_proxy_connects_total', { outcome: 'intercepted' }, counters.intercepted)
    .sample('mimo_proxy_connects_total', { outcome: 'tunnelled' }, counters.tunnelled);

  w.family('mimo_proxy_rewritten_requests_total', 'counter', 'Requests whose body the proxy changed (first attempts and retries).').sample('mimo_proxy_rewritten_requests_total', {}, counters.rewrittenRequests);
  w.family('mimo_proxy_rewrites_total', 'counter', 'Turns changed, by kind: injected (remembered reasoning put back), placeholder and flattened (degraded), retried (requests sent again after the reasoning 400).')
    .sample('mimo_proxy_rewrites_total', { kind: 'injected' }, counters.injected)
    .sample('mimo_proxy_rewrites_total', { kind: 'placeholder' }, counters.placeholders)
    .sample('mimo_proxy_rewrites_total', { kind: 'flattened' }, counters.flattened)
    .sample('mimo_proxy_rewrites_total', { kind: 'retried' }, counters.retries);
  w.family('mimo_proxy_learned_total', 'counter', 'Assistant turns whose reasoning was learned.').sample('mimo_proxy_learned_total', {}, counters.learned);
  w.family('mimo_proxy_skipped_bodies_total', 'counter', 'Request bodies forwarded unchanged without a rewrite (invalid, too large, over the held-bodies bound).').sample('mimo_proxy_skipped_bodies_total', {}, counters.skippedBodies);
  w.family('mimo_proxy_client_aborts_total', 'counter', 'Exchanges the client hung up on.').sample('mimo_proxy_client_aborts_total', {}, counters.clientAborts);

  const storeKind = s.store.kind;
  const hasStore = storeKind !== 'memory';
  w.family('mimo_proxy_cache_hits_total', 'counter', 'Reasoning lookups answered, by level: memory, or the store (SQLite or Redis) after a memory miss.')
    .sample('mimo_proxy_cache_hits_total', { level: 'memory' }, cache.hits - cache.storeHits)
    .sample('mimo_proxy_cache_hits_total', { level: 'store' }, cache.storeHits);
  w.family('mimo_proxy_cache_misses_total', 'counter', 'Reasoning lookups not answered at a level (a store miss is a lookup that nothing answered).')
    .sample('mimo_proxy_cache_misses_total', { level: 'memory' }, cache.misses + cache.storeHits)
    .sample('mimo_proxy_cache_misses_total', { level: 'store' }, hasStore ? cache.misses : 0);
  w.family('mimo_proxy_cache_entries', 'gauge', 'Reasoning texts held in memory.').sample('mimo_proxy_cache_entries', {}, cache.entries);
  w.family('mimo_proxy_cache_bytes', 'gauge', 'Bytes (UTF-16) of reasoning held in memory.').sample('mimo_proxy_cache_bytes', {}, cache.bytes);

  w.family('mimo_proxy_store_up', 'gauge', 'Whether the reasoning store is usable (1) or not (0), by kind (sqlite, redis; memory when there is none).').sample(
    'mimo_proxy_store_up',
    { kind: storeKind },
    storeKind === 'redis' ? (s.store.kind === 'redis' && s.store.state === 'connected' ? 1 : 0) : 1,
  );
  w.family('mimo_proxy_store_errors_total', 'counter', 'Store calls that failed (a read: a miss; a write: the entry stays in memory only), by operation.')
    .sample('mimo_proxy_store_errors_total', { op: 'read' }, cache.storeReadErrors)
    .sample('mimo_proxy_store_errors_total', { op: 'write' }, cache.storeWriteErrors);
  w.family('mimo_proxy_store_call_seconds', 'histogram', 'Time of one store call: a SQLite read, or a Redis read or write (bounded at 50 ms).').histogram('mimo_proxy_store_call_seconds', { kind: storeKind }, s.storeLatency);

  w.family('mimo_proxy_upstream_errors_total', 'counter', 'Upstream failures answered with a 502/504 or an SSE error event, by class.');
  for (const kind of UPSTREAM_CLASSES) w.sample('mimo_proxy_upstream_errors_total', { class: kind }, metrics.upstreamErrors.get(kind) ?? 0);

  w.family('mimo_proxy_time_to_first_byte_seconds', 'histogram', 'From a relayed request to its answer\'s headers going to the client, by surface.');
  for (const [surface, histogram] of [...metrics.ttfb].sort(([a], [b]) => a.localeCompare(b))) w.histogram('mimo_proxy_time_to_first_byte_seconds', { surface }, histogram);
  w.family('mimo_proxy_stream_duration_seconds', 'histogram', 'From a streamed (SSE) answer\'s headers to its end, by surface.');
  for (const [surface, histogram] of [...metrics.streamDuration].sort(([a], [b]) => a.localeCompare(b))) w.histogram('mimo_proxy_stream_duration_seconds', { surface }, histogram);

  w.family('mimo_proxy_open_connections', 'gauge', 'Client connections open now (tunnels and intercepted TLS included).').sample('mimo_proxy_open_connections', {}, s.openConnections);

  // Process metrics, named as Prometheus' client libraries name them.
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  w.family('process_cpu_user_seconds_total', 'counter', 'User CPU time spent in seconds.').sample('process_cpu_user_seconds_total', {}, cpu.user / 1e6);
  w.family('process_cpu_system_seconds_total', 'counter', 'System CPU time spent in seconds.').sample('process_cpu_system_seconds_total', {}, cpu.system / 1e6);
  w.family('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.').sample('process_cpu_seconds_total', {}, (cpu.user + cpu.system) / 1e6);
  w.family('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.').sample('process_resident_memory_bytes', {}, memory.rss);
  w.family('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.').sample('process_start_time_seconds', {}, s.startedAt);
  const fds = openFds();
  if (fds !== undefined) w.family('process_open_fds', 'gauge', 'Number of open file descriptors.').sample('process_open_fds', {}, fds);
  w.family('nodejs_heap_size_total_bytes', 'gauge', 'Process heap size from Node.js in bytes.').sample('nodejs_heap_size_total_bytes', {}, memory.heapTotal);
  w.family('nodejs_heap_size_used_bytes', 'gauge', 'Process heap size used from Node.js in bytes.').sample('nodejs_heap_size_used_bytes', {}, memory.heapUsed);
  return w.text();
}
