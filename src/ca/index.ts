/**
 * The certificate authority mimo-proxy intercepts with: a name-constrained CA made once per
 * --certs folder (ca.pem to trust, ca-key.pem private), and leaf certificates for the hosts
 * we intercept (leaf-cache.ts), signed on demand, cached on disk, and kept in memory with
 * their TLS context until they are due for renewal.
 */
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { SecureContext } from 'node:tls';
import { MimoProxyError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { isDnsName, normaliseHost } from '../net/hosts.js';
import { CA_CERT_FILE, CA_KEY_FILE, DAY_MS, loadOrCreateAuthority, type Authority } from './authority.js';
import { ensurePrivateDir, PRIVATE_DIR_MODE, unwritableError } from './files.js';
import { loadOrCreateLeafKey, RENEW_BEFORE_MS, type LeafCertificate } from './leaf.js';
import type { LeafCache } from './leaf-cache.js';

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
  /** The command that makes a new CA for these domains, named when the CA there does not cover them. */
  renewCommand?: string;
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
  /** A leaf for hostname (from memory, else disk, else signed; renewed when < 30 days left or not issued by this CA). Concurrent calls for one host share one signing. */
  leafFor(hostname: string): Promise<LeafCertificate>;
  /** The TLS context serving hostname's leaf: at once when it is in memory and not due for renewal, else once leafFor's work is done. */
  contextFor(hostname: string): SecureContext | Promise<SecureContext>;
}

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
  const authority = await loadOrCreateAuthority(dir, domains, clock(), options.renewCommand);
  const leafKey = await loadOrCreateLeafKey(dir);

  // The leaf cache (lru-cache, node:tls, and node-forge to sign) is loaded with the first leaf
  // asked for: `mimo-proxy env` and `ca` only need the CA, and start faster without it.
  let leaves: LeafCache | undefined;
  let loading: Promise<LeafCache> | undefined;
  const leafCache = (): Promise<LeafCache> =>
    (loading ??= import('./leaf-cache.js').then((module) => (leaves = module.createLeafCache({ dir, authority, leafKey, clock, logger }))));

  return {
    dir,
    caCertPath: authority.certPath,
    caPem: authority.certPem,
    fingerprint256: authority.x509.fingerprint256,
    notAfter: new Date(authority.notAfter.getTime()),
    permittedDomains: authority.permittedDomains,
    expiryWarning: () => expiryMessage(authority, dir, clock()),
    leafFor: async (hostname) => (await leafCache()).leafFor(hostname),
    contextFor: (hostname) => (leaves !== undefined ? leaves.contextFor(hostname) : leafCache().then((cache) => cache.contextFor(hostname))),
  };
}

/** What `renewCa` did: the new CA, and where the old one was put (undefined: there was none). */
export interface Renewal {
  ca: CertificateAuthority;
  keptAside: string | undefined;
  /** The old files moved there (ca.pem, ca-key.pem, or one of them). */
  kept: readonly string[];
  /** The old CA's SHA-256 (to find it in trust stores), when it could be read. */
  oldFingerprint256: string | undefined;
}

/**
 * A new CA for `options.domains` in `options.dir`: the old ca.pem and ca-key.pem, when there
 * are any, are moved into a new folder `old-ca-<time>` beside them (0700, the key keeps its
 * 0600), never deleted: clients that trust the old CA are to be cleaned up by hand.
 */
export async function renewCa(options: CaOptions): Promise<Renewal> {
  const dir = path.resolve(options.dir);
  const now = (options.now ?? (() => new Date()))();
  const files = [CA_CERT_FILE, CA_KEY_FILE];
  const present: string[] = [];
  for (const name of files) if (await exists(path.join(dir, name))) present.push(name);
  let keptAside: string | undefined;
  let oldFingerprint256: string | undefined;
  if (present.length > 0) {
    try {
      oldFingerprint256 = new X509Certificate(await fs.readFile(path.join(dir, CA_CERT_FILE))).fingerprint256;
    } catch {
      oldFingerprint256 = undefined;
    }
    // To the millisecond, so two renewals never meet in one folder.
    keptAside = path.join(dir, `old-ca-${now.toISOString().replace(/[-:.]/g, '')}`);
    try {
      await fs.mkdir(keptAside, { mode: PRIVATE_DIR_MODE });
      for (const name of present) await fs.rename(path.join(dir, name), path.join(keptAside, name));
    } catch (error) {
      throw unwritableError('the old CA', keptAside, error);
    }
  }
  return { ca: await loadOrCreateCa(options), keptAside, kept: present, oldFingerprint256 };
}
