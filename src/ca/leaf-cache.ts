/**
 * Leaves as served: one LRU of certificates with their TLS contexts, in front of the copies on
 * disk (hosts/<name>.pem), in front of signing. lru-cache's fetch() runs one load per host at a
 * time (concurrent callers share it) and keeps each leaf until it is due for renewal (its TTL).
 */
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { MimoProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { isCoveredBy, isDnsName, normaliseHost } from '../net/hosts.js';
import type { Authority } from './authority.js';
import { ensurePrivateDir, errnoCode, PUBLIC_FILE_MODE, replaceFile } from './files.js';
import { checkLeaf, createLeafIssuer, HOSTS_DIR, hostFilePath, timeUntilRenewal, type LeafCertificate, type LeafKey } from './leaf.js';

/** Leaves (with their TLS contexts) kept in memory; more hosts than this are re-read from disk (we intercept a handful). */
export const MAX_LEAVES_IN_MEMORY = 256;
/** Cached leaf files are a few KB; anything bigger is not ours and is re-issued. */
const MAX_LEAF_FILE_BYTES = 64 * 1024;

export interface LeafCache {
  leafFor(hostname: string): Promise<LeafCertificate>;
  contextFor(hostname: string): SecureContext | Promise<SecureContext>;
}

export interface LeafCacheOptions {
  dir: string;
  authority: Authority;
  leafKey: LeafKey;
  /** The CA's clock: renewal dates are calendar dates (and tests move it). */
  clock: () => Date;
  logger: Logger;
}

/** A leaf as served: the certificate and the TLS context built from it. */
interface ServedLeaf {
  readonly leaf: LeafCertificate;
  readonly context: SecureContext;
}

async function readLeafFile(file: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile() || stat.size > MAX_LEAF_FILE_BYTES) return undefined;
    return await fs.readFile(file, 'utf8');
  } catch {
    return undefined; // Missing or unreadable: issue a new one.
  }
}

export function createLeafCache({ dir, authority, leafKey, clock, logger }: LeafCacheOptions): LeafCache {
  const issue = createLeafIssuer(authority, leafKey);

  async function fromDiskOrNew(name: string, now: Date): Promise<LeafCertificate> {
    const file = hostFilePath(dir, name);
    const stored = await readLeafFile(file);
    const usable = stored === undefined ? undefined : checkLeaf(stored, name, authority, leafKey, now);
    if (usable !== undefined) return usable;

    const leaf = await issue(name, now);
    try {
      await ensurePrivateDir(path.join(dir, HOSTS_DIR));
      await replaceFile(file, leaf.certPem, PUBLIC_FILE_MODE);
    } catch (error) {
      // The disk copy only saves a signature at the next start: serve the leaf anyway.
      logger.warn('could not cache a leaf certificate on disk', { host: name, code: errnoCode(error) ?? 'unknown' });
    }
    return leaf;
  }

  const served = new LRUCache<string, ServedLeaf>({
    max: MAX_LEAVES_IN_MEMORY,
    // The CA's clock, not performance.now(): a leaf's TTL runs to a calendar date.
    perf: { now: () => clock().getTime() },
    // Read the clock on every check (once per CONNECT), not a copy up to 1 ms old.
    ttlResolution: 0,
    // A load that outlives its slot (more hosts than the cache holds) still answers its callers.
    ignoreFetchAbort: true,
    fetchMethod: async (name, _stale, { options }) => {
      const now = clock();
      const leaf = await fromDiskOrNew(name, now);
      const untilRenewal = timeUntilRenewal(leaf.notAfter, now, authority.notAfter);
      // lru-cache's ttl 0 means "never stale": right for a leaf that ends with the CA.
      options.ttl = Number.isFinite(untilRenewal) ? Math.max(1, untilRenewal) : 0;
      return { leaf, context: createSecureContext({ cert: leaf.certPem, key: leaf.keyPem }) };
    },
  });

  /** The canonical name for hostname, or the reason the CA will not vouch for it. */
  function permittedName(hostname: string): string {
    const name = normaliseHost(hostname);
    const ip = isIP(name) !== 0;
    if (!ip && !isDnsName(name)) {
      throw new MimoProxyError(
        'CA_HOSTNAME',
        `cannot make a certificate for ${JSON.stringify(hostname.slice(0, 100))}: not a DNS name or IP address`,
        'use a host name of letters, digits, dots and dashes, or an IP address',
      );
    }
    // The CA's name constraints would make any client reject such a leaf: say so here instead.
    if (ip || !isCoveredBy(name, authority.permittedDomains)) {
      throw new MimoProxyError(
        'CA_HOST_NOT_PERMITTED',
        `${name} is outside the CA's permitted domains (${authority.permittedDomains.join(', ')})`,
        'intercept only hosts under the configured domains and tunnel the rest',
      );
    }
    return name;
  }

  function load(hostname: string): Promise<ServedLeaf> {
    try {
      return served.forceFetch(permittedName(hostname));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  return {
    leafFor: async (hostname) => (await load(hostname)).leaf,
    contextFor: (hostname) => {
      const fresh = served.get(normaliseHost(hostname));
      return fresh !== undefined ? fresh.context : load(hostname).then((leaf) => leaf.context);
    },
  };
}
