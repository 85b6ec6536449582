/**
 * The certificate authority mimo-proxy intercepts with: a name-constrained CA made once per
 * --certs folder (ca.pem to trust, ca-key.pem private), and leaf certificates for the hosts
 * we intercept, signed on demand and cached in memory and on disk.
 */
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { MimoProxyError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { isCoveredBy, isDnsName, normaliseHost } from '../net/hosts.js';
import { CA_KEY_FILE, DAY_MS, loadOrCreateAuthority, type Authority } from './authority.js';
import { ensurePrivateDir, errnoCode, replaceFile, unwritableError, PUBLIC_FILE_MODE } from './files.js';
import {
  checkLeaf,
  createLeafIssuer,
  HOSTS_DIR,
  hostFilePath,
  loadOrCreateLeafKey,
  needsRenewal,
  RENEW_BEFORE_MS,
  type LeafCertificate,
  type LeafKey,
} from './leaf.js';

export type { LeafCertificate } from './leaf.js';

export interface CaOptions {
  /** The --certs folder. */
  dir: string;
  /** Permitted domains, e.g. ['xiaomimimo.com']: the CA can vouch for these and their subdomains only. */
  domains: readonly string[];
  /** The clock, for tests. */
  now?: () => Date;
  /** Where the few non-fatal problems (a leaf that could not be cached on disk) are reported. */
  logger?: Logger;
}

export interface CertificateAuthority {
  readonly dir: string;
  /** <dir>/ca.pem */
  readonly caCertPath: string;
  readonly caPem: string;
  /** SHA-256 of the DER, 'AB:CD:...' like Node's X509Certificate.fingerprint256. */
  readonly fingerprint256: string;
  readonly notAfter: Date;
  /** Read back from the CA's nameConstraints. */
  readonly permittedDomains: readonly string[];
  /** undefined when fine; a one-line human message when the CA expires within 30 days or has expired. */
  expiryWarning(): string | undefined;
  /** A leaf for hostname (cached in memory and on disk; renewed when < 30 days left or not issued by this CA). Concurrent calls for one host share one signing. */
  leafFor(hostname: string): Promise<LeafCertificate>;
}

/** Leaves kept in memory; more hosts than this are re-read from disk (we intercept a handful). */
export const MAX_LEAVES_IN_MEMORY = 256;
/** Cached leaf files are a few KB; anything bigger is not ours and is re-issued. */
const MAX_LEAF_FILE_BYTES = 64 * 1024;

function normaliseDomains(domains: readonly string[]): string[] {
  if (domains.length === 0) {
    throw new MimoProxyError('CA_DOMAINS', 'no domains to permit in the CA', 'pass at least one domain, e.g. xiaomimimo.com');
  }
  const out: string[] = [];
  for (const raw of domains) {
    const domain = normaliseHost(raw);
    if (!isDnsName(domain)) {
      throw new MimoProxyError('CA_DOMAINS', `${JSON.stringify(raw)} is not a DNS domain`, 'pass domains like xiaomimimo.com (letters, digits, dots and dashes)');
    }
    if (!out.includes(domain)) out.push(domain);
  }
  return out;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
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

function expiryMessage(authority: Authority, dir: string, now: Date): string | undefined {
  const left = authority.notAfter.getTime() - now.getTime();
  if (left >= RENEW_BEFORE_MS) return undefined;
  const day = authority.notAfter.toISOString().slice(0, 10);
  const fix = `move ca.pem and ca-key.pem out of ${dir} (or pass --certs DIR with a new folder) to make a new CA, then trust the new ca.pem`;
  if (left <= 0) return `the CA at ${authority.certPath} expired on ${day}; ${fix}`;
  const days = Math.ceil(left / DAY_MS);
  return `the CA at ${authority.certPath} expires on ${day} (in ${days} day${days === 1 ? '' : 's'}); ${fix}`;
}

export async function loadOrCreateCa(options: CaOptions): Promise<CertificateAuthority> {
  const clock = options.now ?? (() => new Date());
  const logger = options.logger ?? silentLogger;
  const dir = path.resolve(options.dir);
  const domains = normaliseDomains(options.domains);

  try {
    // A folder that already holds our CA key is ours: narrow it to 0700 too.
    await ensurePrivateDir(dir, await exists(path.join(dir, CA_KEY_FILE)));
  } catch (error) {
    throw unwritableError('the CA', dir, error);
  }
  const authority = await loadOrCreateAuthority(dir, domains, clock());
  const leafKey = await loadOrCreateLeafKey(dir);
  const leaves = createLeafSource(dir, authority, leafKey, clock, logger);

  return {
    dir,
    caCertPath: authority.certPath,
    caPem: authority.certPem,
    fingerprint256: authority.x509.fingerprint256,
    notAfter: new Date(authority.notAfter.getTime()),
    permittedDomains: authority.permittedDomains,
    expiryWarning: () => expiryMessage(authority, dir, clock()),
    leafFor: leaves,
  };
}

function createLeafSource(
  dir: string,
  authority: Authority,
  leafKey: LeafKey,
  clock: () => Date,
  logger: Logger,
): (hostname: string) => Promise<LeafCertificate> {
  const memory = new LRUCache<string, LeafCertificate>({ max: MAX_LEAVES_IN_MEMORY });
  // One entry per host being signed right now, removed when it settles.
  const pending = new Map<string, Promise<LeafCertificate>>();
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

  return async (hostname: string): Promise<LeafCertificate> => {
    const name = permittedName(hostname);
    const now = clock();
    const cached = memory.get(name);
    if (cached !== undefined && !needsRenewal(cached.notAfter, now, authority.notAfter)) return cached;
    const running = pending.get(name);
    if (running !== undefined) return running;

    const job = fromDiskOrNew(name, now)
      .then((leaf) => {
        memory.set(name, leaf);
        return leaf;
      })
      .finally(() => pending.delete(name));
    pending.set(name, job);
    return job;
  };
}
