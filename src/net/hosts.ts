/**
 * Which hosts are ours. A host is ours when it equals a configured domain or is
 * a subdomain of one, matched on a label boundary: with `xiaomimimo.com`,
 * `api.xiaomimimo.com` is ours, `evilxiaomimimo.com` and
 * `xiaomimimo.com.evil.net` are not. Pure.
 */
import { MimoProxyError } from '../errors.js';

/** RFC 1035 labels (letters, digits, hyphens; 1-63 chars), at least two of them. */
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** Lower-case, drop one trailing dot, strip IPv6 brackets. */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** Parse `--hosts` (comma or space separated) into validated domains. */
export function parseDomains(list: string): string[] {
  const domains = list
    .split(/[\s,]+/)
    .map((d) => normaliseHost(d.replace(/^\*\./, '')))
    .filter((d) => d !== '');
  if (domains.length === 0) {
    throw new MimoProxyError('BAD_OPTION', '--hosts is empty', 'pass --hosts xiaomimimo.com (a comma-separated list of domains)');
  }
  for (const d of domains) {
    if (!DOMAIN.test(d)) {
      throw new MimoProxyError('BAD_OPTION', `--hosts has an invalid domain ${JSON.stringify(d)}`, 'pass domain names such as xiaomimimo.com, separated by commas');
    }
  }
  return [...new Set(domains)];
}

export function isOurHost(host: string, domains: readonly string[]): boolean {
  const h = normaliseHost(host);
  for (const d of domains) {
    if (h === d || (h.length > d.length && h.endsWith(d) && h[h.length - d.length - 1] === '.')) return true;
  }
  return false;
}
