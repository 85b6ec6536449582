/**
 * Host names, in one place: their canonical form, what a valid DNS name is,
 * and which hosts are ours. A host is ours when it equals a configured domain
 * or is a subdomain of one, matched on a label boundary: with
 * `xiaomimimo.com`, `api.xiaomimimo.com` is ours, `evilxiaomimimo.com` and
 * `xiaomimimo.com.evil.net` are not. The CA (ca/) applies the same rules to
 * the names it vouches for. Pure.
 */
import { MimoProxyError } from '../errors.js';

/** RFC 1035 §2.3.1 labels: letters, digits, inner hyphens; 1-63 characters. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** RFC 1035 §2.3.4: at most 253 characters in text form. */
const MAX_DNS_NAME_LENGTH = 253;

/** Canonical form: lower-case, IPv6 brackets stripped, one trailing dot dropped. */
export function normaliseHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/**
 * A lower-case LDH DNS name (letters, digits, dashes; dots between non-empty labels). Nothing
 * else passes, so such a name is safe as a file name: no slashes, no "..", no leading dot.
 * A last label of digits only is refused: it would read as a (malformed) IPv4 address.
 */
export function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_DNS_NAME_LENGTH) return false;
  const labels = name.split('.');
  if (!labels.every((label) => DNS_LABEL.test(label))) return false;
  return !/^[0-9]+$/.test(labels[labels.length - 1] ?? '');
}

/**
 * Whether `name` is one of `domains` or a subdomain of one, on a label boundary, compared
 * lower-case. A domain written with a leading dot (".example.com", OpenSSL's reading of an
 * X.509 name constraint) covers its subdomains only.
 */
export function isCoveredBy(name: string, domains: readonly string[]): boolean {
  const host = name.toLowerCase();
  return domains.some((domain) => {
    const base = domain.toLowerCase();
    if (base.startsWith('.')) return host.endsWith(base);
    return host === base || host.endsWith(`.${base}`);
  });
}

/** Parse `--hosts` (comma or space separated) into validated domains: DNS names of two labels or more. */
export function parseDomains(list: string): string[] {
  const domains = list
    .split(/[\s,]+/)
    .map((d) => normaliseHost(d.replace(/^\*\./, '')))
    .filter((d) => d !== '');
  if (domains.length === 0) {
    throw new MimoProxyError('BAD_OPTION', '--hosts is empty', 'pass --hosts xiaomimimo.com (a comma-separated list of domains)');
  }
  for (const d of domains) {
    if (!isDnsName(d) || !d.includes('.')) {
      throw new MimoProxyError('BAD_OPTION', `--hosts has an invalid domain ${JSON.stringify(d)}`, 'pass domain names such as xiaomimimo.com, separated by commas');
    }
  }
  return [...new Set(domains)];
}

export function isOurHost(host: string, domains: readonly string[]): boolean {
  return isCoveredBy(normaliseHost(host), domains);
}
