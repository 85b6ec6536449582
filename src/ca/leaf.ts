/**
 * Leaf (server) certificates: one RSA key shared by every leaf (as mockttp does, so a new host
 * costs one signature, not a keygen), one certificate per host, cached on disk under hosts/.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import path from 'node:path';
import forge from 'node-forge';
import { BACKDATE_MS, DAY_MS, generateRsaKeyPair, randomSerialHex, signCertificate, type Authority } from './authority.js';
import { PRIVATE_FILE_MODE, readIfExists, replaceFile, tightenKeyFile, unwritableError, writeNewFile } from './files.js';
import { isDnsName } from './name-constraints.js';

export const LEAF_KEY_FILE = 'leaf-key.pem';
export const HOSTS_DIR = 'hosts';

/**
 * 397 days plus the day of backdating makes 398 in all: the CA/Browser Forum Baseline
 * Requirements' limit (§6.3.2, for certificates issued from 2020-09-01) and Apple's
 * (support.apple.com/HT211025). Both bind publicly trusted CAs; Apple's 825-day rule
 * (support.apple.com/HT210176) binds private ones too. Staying within 398 satisfies all.
 */
export const LEAF_VALIDITY_DAYS = 397;
/** A leaf with less than this left is replaced (and so is the CA warned about). */
export const RENEW_BEFORE_MS = 30 * DAY_MS;

export interface LeafCertificate {
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

/** A host name checked and put in canonical form; `fileName` is safe to join to a folder. */
export interface HostName {
  readonly name: string;
  readonly ip: boolean;
  readonly fileName: string;
}

/**
 * Canonical form of a host for a certificate, or undefined when it is neither an LDH DNS name
 * nor an IP literal. Lower-cases, drops one trailing dot and IPv6 brackets. IPv6 file names
 * use '_' for ':' ('_' never occurs in a DNS name we accept, so names cannot collide).
 */
export function parseHostname(input: string): HostName | undefined {
  let name = input.toLowerCase();
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  if (isIP(name) !== 0) {
    let canonical: string;
    try {
      canonical = new URL(`http://${isIP(name) === 6 ? `[${name}]` : name}/`).hostname;
    } catch {
      return undefined; // e.g. an IPv6 zone id
    }
    if (canonical.startsWith('[')) canonical = canonical.slice(1, -1);
    return { name: canonical, ip: true, fileName: canonical.replace(/:/g, '_') };
  }
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (!isDnsName(name)) return undefined;
  return { name, ip: false, fileName: name };
}

export function hostFilePath(dir: string, host: HostName): string {
  return path.join(dir, HOSTS_DIR, `${host.fileName}.pem`);
}

/**
 * True when a leaf ending at `notAfter` should be replaced: under 30 days left, unless a new
 * leaf would end no later (leaves never outlive the CA, so near the CA's end this would
 * re-sign on every call).
 */
export function needsRenewal(notAfter: Date, now: Date, caNotAfter: Date): boolean {
  return notAfter.getTime() - now.getTime() < RENEW_BEFORE_MS && notAfter.getTime() < caNotAfter.getTime();
}

export interface LeafKey {
  readonly keyPem: string;
  readonly publicKey: KeyObject;
  readonly forgePublicKey: forge.pki.PublicKey;
}

function parseLeafKey(keyPem: string): LeafKey {
  const publicKey = createPublicKey(createPrivateKey(keyPem));
  const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { keyPem, publicKey, forgePublicKey: forge.pki.publicKeyFromPem(spkiPem) };
}

/**
 * The shared leaf key from `<dir>/leaf-key.pem`, made once and reused across restarts. Unlike
 * the CA, nobody trusts this key directly, so an unreadable one is simply replaced (its old
 * leaves then fail the key check in checkLeaf and are re-issued).
 */
export async function loadOrCreateLeafKey(dir: string): Promise<LeafKey> {
  const file = path.join(dir, LEAF_KEY_FILE);
  const existing = await readIfExists(file);
  if (existing !== undefined) {
    try {
      const key = parseLeafKey(existing);
      await tightenKeyFile(file);
      return key;
    } catch {
      // Fall through and replace it.
    }
  }
  const { privateKeyPem } = await generateRsaKeyPair();
  try {
    if (existing !== undefined) {
      await replaceFile(file, privateKeyPem, PRIVATE_FILE_MODE);
    } else if (!(await writeNewFile(file, privateKeyPem, PRIVATE_FILE_MODE))) {
      // Another process wrote one first: use theirs, so both serve the same key.
      const theirs = await readIfExists(file);
      if (theirs !== undefined) return parseLeafKey(theirs);
    }
  } catch (error) {
    throw unwritableError('the leaf key', file, error);
  }
  return parseLeafKey(privateKeyPem);
}

/** Drops milliseconds: certificate times have whole seconds, and notAfter must match the cert. */
function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

/** Signs a new leaf for `host`, valid from a day ago for 397 days (never past the CA's end). */
export function issueLeaf(host: HostName, authority: Authority, leafKey: LeafKey, now: Date): LeafCertificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = leafKey.forgePublicKey;
  cert.serialNumber = randomSerialHex();
  const notAfter = wholeSeconds(Math.min(now.getTime() + LEAF_VALIDITY_DAYS * DAY_MS, authority.notAfter.getTime()));
  cert.validity.notBefore = wholeSeconds(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: host.name }]);
  cert.setIssuer(authority.cert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    // Clients match the SAN, not the CN (RFC 6125; Chrome ignores the CN entirely).
    { name: 'subjectAltName', altNames: [host.ip ? { type: 7, ip: host.name } : { type: 2, value: host.name }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: authority.keyIdentifier },
  ]);
  signCertificate(cert, authority.privateKey);
  return { certPem: forge.pki.certificateToPem(cert), keyPem: leafKey.keyPem, notAfter };
}

/**
 * A leaf read back from disk, if it can still be served: issued and signed by this CA, for
 * this host, with the shared leaf key, already valid and not due for renewal.
 */
export function checkLeaf(certPem: string, host: HostName, authority: Authority, leafKey: LeafKey, now: Date): LeafCertificate | undefined {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch {
    return undefined;
  }
  if (!x509.checkIssued(authority.x509) || !x509.verify(authority.x509.publicKey)) return undefined;
  if (!x509.publicKey.equals(leafKey.publicKey)) return undefined;
  const named = host.ip ? x509.checkIP(host.name) : x509.checkHost(host.name, { wildcards: false, subject: 'never' });
  if (named === undefined) return undefined;
  if (x509.validFromDate.getTime() > now.getTime()) return undefined;
  if (needsRenewal(x509.validToDate, now, authority.notAfter)) return undefined;
  return { certPem, keyPem: leafKey.keyPem, notAfter: x509.validToDate };
}
