/** Counters shown on the status page and /health. Plain numbers, no message text. */
export interface Counters {
  connects: number;
  intercepted: number;
  tunnelled: number;
  directRequests: number;
  interceptedRequests: number;
  passthroughRequests: number;
  upstreamErrors: number;
  clientAborts: number;
  rewrittenRequests: number;
  injected: number;
  placeholders: number;
  flattened: number;
  /** Messages fixed for another avoidable 400 (a provider's repairs: null or list content, empty call names). */
  repaired: number;
  retries: number;
  learned: number;
  skippedBodies: number;
}

export function newCounters(): Counters {
  return {
    connects: 0,
    intercepted: 0,
    tunnelled: 0,
    directRequests: 0,
    interceptedRequests: 0,
    passthroughRequests: 0,
    upstreamErrors: 0,
    clientAborts: 0,
    rewrittenRequests: 0,
    injected: 0,
    placeholders: 0,
    flattened: 0,
    repaired: 0,
    retries: 0,
    learned: 0,
    skippedBodies: 0,
  };
}

/**
 * A histogram with fixed upper bounds (Prometheus' `le`), for /metrics. Counts per bucket are
 * kept non-cumulative and summed when rendered; `+Inf` is `count`.
 */
export class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;

  /** `bounds` in seconds, ascending. */
  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }

  observe(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.sum += seconds;
    this.count++;
    const i = this.bounds.findIndex((bound) => seconds <= bound);
    if (i !== -1) this.counts[i] = (this.counts[i] ?? 0) + 1;
  }
}

/** Time to first byte: sub-millisecond (proxy work) up to a model thinking for a minute. */
export const TTFB_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Stream duration: short answers to long agent steps. */
export const STREAM_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** One store call: a SQLite read (microseconds) to a Redis round trip at its 50 ms bound. */
export const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/** How an upstream failure is counted (a fixed set: labels never carry hosts or messages). */
export type UpstreamErrorClass = 'timeout' | 'refused' | 'reset' | 'tls' | 'dns' | 'protocol' | 'other';

/**
 * Figures for /metrics beyond the flat counters: by surface and route, by error class, and
 * timings. Label values come from fixed sets only (surface names, route kinds, classes).
 */
export interface Metrics {
  /** `surface route` -> requests relayed (surface: a dialect's name, or `other`). */
  requests: Map<string, number>;
  upstreamErrors: Map<UpstreamErrorClass, number>;
  /** Request start to the answer's headers going to the client, by surface. */
  ttfb: Map<string, Histogram>;
  /** Headers to end of a streamed (SSE) answer, by surface. */
  streamDuration: Map<string, Histogram>;
}

export function newMetrics(): Metrics {
  return { requests: new Map(), upstreamErrors: new Map(), ttfb: new Map(), streamDuration: new Map() };
}

export function countInto<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

export function histogramOf(map: Map<string, Histogram>, key: string, bounds: readonly number[]): Histogram {
  let histogram = map.get(key);
  if (histogram === undefined) {
    histogram = new Histogram(bounds);
    map.set(key, histogram);
  }
  return histogram;
}
