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
