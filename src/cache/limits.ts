/**
 * The reasoning cache's bounds, their defaults, and the one check of a user's values (at
 * startup, naming the option that sets each). Memory (cache.ts) and the store (store.ts) use
 * the same limits and take them as checked.
 */
import { MimoProxyError } from '../errors.js';

export interface CacheLimits {
  maxEntries: number;
  maxBytes: number;
  ttlMs: number;
}

/**
 * Sized for a day of heavy agent use on one machine:
 * - entries: ~10 agents in parallel x 8 h x ~600 replies/h ~= 48k replies -> 50k.
 * - bytes: typical reasoning is 1-5 KB of text (2-10 KB as UTF-16); 50k x 5 KB
 *   ~= 250 MB, so 256 MiB holds a day of typical use, and long (100 KB)
 *   reasoning evicts older entries instead of growing the process.
 * - ttl: 7 days, so a conversation resumed after a weekend or a week-long
 *   task still finds its reasoning; older turns are rarely replayed.
 * The store on disk uses the same limits, so disk use is bounded alike.
 */
export const DEFAULT_CACHE_LIMITS: CacheLimits = {
  maxEntries: 50_000,
  maxBytes: 256 * 1024 * 1024,
  ttlMs: 7 * 24 * 60 * 60 * 1000,
};

const isPositiveWholeNumber = (value: number): boolean => Number.isSafeInteger(value) && value > 0;

/** Refuse unbounded or nonsensical limits, naming the option that sets each. */
export function validateCacheLimits(limits: CacheLimits): void {
  const options: [option: string, value: number, example: string][] = [
    ['cache-max', limits.maxEntries, '50000'],
    ['cache-max-bytes', limits.maxBytes, '256MiB'],
    ['cache-ttl', limits.ttlMs, '7d'],
  ];
  for (const [option, value, example] of options) {
    if (!isPositiveWholeNumber(value)) {
      throw new MimoProxyError('BAD_OPTION', `--${option} ${JSON.stringify(value)} is not valid`, `pass a positive whole number, e.g. --${option} ${example}`);
    }
  }
}

/** For constructors, which trust checked limits: a programming error if they were never checked. */
export function assertCheckedLimits(limits: CacheLimits): void {
  if (![limits.maxEntries, limits.maxBytes, limits.ttlMs].every(isPositiveWholeNumber)) {
    throw new TypeError('cache limits must be positive whole numbers (validateCacheLimits checks them at startup)');
  }
}
