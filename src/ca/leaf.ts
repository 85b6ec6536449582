/**
 * Leaf (server) certificates: one RSA key shared by every leaf (as mockttp does, so a new host
 * costs one signature, not a keygen), one certificate per host, cached on disk under hosts/.
 */
import { createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import path from 'node:path';
import type * as ForgeTypes from 'node-forge';
import { BACKDATE_MS, DAY_MS, generateRsaKeyPair, randomSerialHex, type Authority } from './authority.js';
import { PRIVATE_FILE_MODE, readIfExists, replaceFile, tightenKeyFile, unwritableError, writeNewFile } from './files.js';
import { certificatePem, loadForge, signCertificate, type Forge } from './forge.js';

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

/** `name` is a checked DNS name (net/hosts.ts isDnsName): no slash, no "..", safe to join to a folder. */
export function hostFilePath(dir: string, name: string): string {
  return path.join(dir, HOSTS_DIR, `${name}.pem`);
}

/**
 * Milliseconds until a leaf ending at `notAfter` should be replaced: 30 days before its end;
 * Infinity when a new leaf would end no later (leaves never outlive the CA, so near the CA's
 * end renewing would re-sign on every call).
 */
export function timeUntilRenewal(notAfter: Date, now: Date, caNotAfter: Date): number {
  if (notAfter.getTime() >= caNotAfter.getTime()) return Number.POSITIVE_INFINITY;
  return notAfter.getTime() - RENEW_BEFORE_MS - now.getTime();
}

export function needsRenewal(notAfter: Date, now: Date, caNotAfter: Date): boolean {
  return timeUntilRenewal(notAfter, now, caNotAfter) < 0;
}

export interface LeafKey {
  readonly keyPem: string;
  readonly publicKey: KeyObject;
}

function parseLeafKey(keyPem: string): LeafKey {
  const publicKey = createPublicKey(createPrivateKey(keyPem));
  // Leaves carry an RSA key (forge builds them); a key of another type is replaced like an unreadable one.
  if (publicKey.asymmetricKeyType !== 'rsa') throw new Error(`${LEAF_KEY_FILE} is not an RSA key`);
  return { keyPem, publicKey };
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

/** What signing needs in forge's terms, made once (on the first leaf a process signs). */
interface Signing {
  readonly forge: Forge;
  /** The CA's subject, copied into each leaf's issuer field. */
  readonly issuer: ForgeTypes.pki.CertificateField[];
  /** The CA's subjectKeyIdentifier (binary string): each leaf's authorityKeyIdentifier. */
  readonly keyIdentifier: string;
  readonly leafPublicKey: ForgeTypes.pki.PublicKey;
}

async function prepareSigning(authority: Authority, leafKey: LeafKey): Promise<Signing> {
  const forge = await loadForge();
  const ca = forge.pki.certificateFromPem(authority.certPem);
  const ski = ca.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  const keyIdentifier =
    ski?.subjectKeyIdentifier !== undefined ? forge.util.hexToBytes(ski.subjectKeyIdentifier) : ca.generateSubjectKeyIdentifier().getBytes();
  const spkiPem = leafKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { forge, issuer: ca.subject.attributes, keyIdentifier, leafPublicKey: forge.pki.publicKeyFromPem(spkiPem) };
}

/** Signs a new leaf for the DNS name `name`, valid from a day ago for 397 days (never past the CA's end). */
function issueLeaf(signing: Signing, name: string, authority: Authority, leafKey: LeafKey, now: Date): LeafCertificate {
  const { forge } = signing;
  const cert = forge.pki.createCertificate();
  cert.publicKey = signing.leafPublicKey;
  cert.serialNumber = randomSerialHex();
  const notAfter = wholeSeconds(Math.min(now.getTime() + LEAF_VALIDITY_DAYS * DAY_MS, authority.notAfter.getTime()));
  cert.validity.notBefore = wholeSeconds(now.getTime() - BACKDATE_MS);
  cert.validity.notAfter = notAfter;
  cert.setSubject([{ name: 'commonName', value: name }]);
  cert.setIssuer(signing.issuer);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    // Clients match the SAN, not the CN (RFC 6125; Chrome ignores the CN entirely).
    { name: 'subjectAltName', altNames: [{ type: 2, value: name }] },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: signing.keyIdentifier },
  ]);
  signCertificate(forge, cert, authority.privateKey);
  return { certPem: certificatePem(forge, cert), keyPem: leafKey.keyPem, notAfter };
}

/** Signs leaves for DNS names; forge is loaded, and the CA read in its terms, on the first one. */
export function createLeafIssuer(authority: Authority, leafKey: LeafKey): (name: string, now: Date) => Promise<LeafCertificate> {
  let signing: Promise<Signing> | undefined;
  return async (name, now) => {
    signing ??= prepareSigning(authority, leafKey).catch((error: unknown) => {
      signing = undefined; // Try again with the next leaf rather than remember a failure.
      throw error;
    });
    return issueLeaf(await signing, name, authority, leafKey, now);
  };
}

/**
 * A leaf read back from disk, if it can still be served: issued and signed by this CA, for
 * this name, with the shared leaf key, already valid and not due for renewal.
 */
export function checkLeaf(certPem: string, name: string, authority: Authority, leafKey: LeafKey, now: Date): LeafCertificate | undefined {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch {
    return undefined;
  }
  if (!x509.checkIssued(authority.x509) || !x509.verify(authority.x509.publicKey)) return undefined;
  if (!x509.publicKey.equals(leafKey.publicKey)) return undefined;
  if (x509.checkHost(name, { wildcards: false, subject: 'never' }) === undefined) return undefined;
  if (x509.validFromDate.getTime() > now.getTime()) return undefined;
  if (needsRenewal(x509.validToDate, now, authority.notAfter)) return undefined;
  return { certPem, keyPem: leafKey.keyPem, notAfter: x509.validToDate };
}
