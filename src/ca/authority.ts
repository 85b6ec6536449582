/**
 * The CA itself: made once per certificates folder, then loaded; never overwritten.
 * Made with node-forge (forge.ts, loaded only then); loaded and checked with node:crypto.
 */
import { createPrivateKey, generateKeyPair, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { MimoProxyError } from '../errors.js';
import { isCoveredBy } from '../net/hosts.js';
import { describeIoError, PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, readIfExists, tightenKeyFile, unwritableError, writeNewFile } from './files.js';
import { certificatePem, loadForge, signCertificate, type Forge } from './forge.js';
import { decodePermittedDomains, encodeNameConstraints, NAME_CONSTRAINTS_OID, nameConstraintsOf } from './name-constraints.js';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';

export const DAY_MS = 24 * 60 * 60 * 1000;
/** Every certificate starts a day in the past: clocks disagree (mockttp does the same). */
export const BACKDATE_MS = DAY_MS;
/** Long enough that users trust it once; mitmproxy's CA also lasts 10 years. */
export const CA_VALIDITY_YEARS = 10;
/** Apple requires RSA keys of at least 2048 bits for TLS (support.apple.com/HT210176). */
export const RSA_MODULUS_BITS = 2048;
/** X.520 ub-common-name (RFC 5280 Appendix A). */
const MAX_COMMON_NAME_LENGTH = 64;
/** How long a process that lost the race to create the CA waits for the winner's ca.pem. */
const CREATE_RACE_POLLS = 40;
const CREATE_RACE_POLL_MS = 50;

export interface Authority {
  readonly certPath: string;
  readonly keyPath: string;
  readonly certPem: string;
  readonly x509: X509Certificate;
  readonly privateKey: KeyObject;
  readonly permittedDomains: readonly string[];
  readonly notAfter: Date;
}

export interface RsaKeyPair {
  readonly publicKeyPem: string;
  readonly privateKeyPem: string;
}

/** RSA keygen in Node's thread pool: faster than forge's and it does not block the event loop. */
export function generateRsaKeyPair(): Promise<RsaKeyPair> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: RSA_MODULUS_BITS,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (error, publicKeyPem, privateKeyPem) => (error ? reject(error) : resolve({ publicKeyPem, privateKeyPem })),
    );
  });
}

/**
 * 16 random bytes (RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B Forum BR §7.1: at least
 * 64 random bits). The top bit is cleared so the INTEGER is positive (Go rejects negative
 * serials), and the first byte is never zero so the DER is minimal and the serial never zero.
 */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) || 0x01;
  return bytes.toString('hex');
}

/** "mimo-proxy CA (<machine>)": tells users in their trust store where this CA came from. */
function caCommonName(): string {
  const prefix = 'mimo-proxy CA (';
  const room = MAX_COMMON_NAME_LENGTH - prefix.length - 1;
  // PrintableString-safe characters only (forge's default string type for names).
  const machine = os.hostname().replace(/[^A-Za-z0-9.-]/g, '').slice(0, room) || 'unknown host';
  return `${prefix}${machine})`;
}

function buildCaCertificate(forge: Forge, keys: RsaKeyPair, privateKey: KeyObject, domains: readonly string[], now: Date): string {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE_MS);
  const notAfter = new Date(now.getTime());
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  cert.validity.notAfter = notAfter;
  const name = [
    { name: 'commonName', value: caCommonName() },
    { name: 'organizationName', value: 'mimo-proxy' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    // pathLenConstraint 0: this CA signs leaves only, never another CA.
    { name: 'basicConstraints', critical: true, cA: true, pathLenConstraint: 0 },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    { name: 'subjectKeyIdentifier' },
    // Critical so that a client that cannot enforce the constraint refuses the CA instead of ignoring it.
    { id: NAME_CONSTRAINTS_OID, critical: true, value: encodeNameConstraints(domains).toString('binary') },
  ]);
  signCertificate(forge, cert, privateKey);
  return certificatePem(forge, cert);
}

function corrupt(certPath: string, keyPath: string, problem: string, cause?: unknown): MimoProxyError {
  return new MimoProxyError(
    'CA_CORRUPT',
    `the CA in ${path.dirname(certPath)} cannot be used: ${problem}`,
    `move ${certPath} and ${keyPath} out of the way (or pass --certs DIR with another folder) and a new CA will be made; clients must then trust the new ${CA_CERT_FILE}`,
    { cause },
  );
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Parses and cross-checks a CA's two files; never changes them. */
export function parseAuthority(certPath: string, keyPath: string, certPem: string, keyPem: string): Authority {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
  } catch (error) {
    throw corrupt(certPath, keyPath, `${certPath} is not a readable RSA certificate (${errorText(error)})`, error);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(keyPem);
  } catch (error) {
    throw corrupt(certPath, keyPath, `${keyPath} is not a readable unencrypted private key (${errorText(error)})`, error);
  }
  let matches = false;
  try {
    matches = x509.checkPrivateKey(privateKey);
  } catch {
    // A key of another type: treated as a mismatch.
  }
  if (!matches) throw corrupt(certPath, keyPath, `${keyPath} is not the key of ${certPath}`);
  if (!x509.ca) throw corrupt(certPath, keyPath, `${certPath} is not a CA certificate`);
  // Leaves are signed with RSA PKCS #1 v1.5 (forge.ts).
  if (x509.publicKey.asymmetricKeyType !== 'rsa') throw corrupt(certPath, keyPath, `${certPath} is not an RSA certificate`);

  let permittedDomains: string[];
  try {
    const constraints = nameConstraintsOf(x509.raw);
    permittedDomains = constraints === undefined ? [] : decodePermittedDomains(constraints);
  } catch (error) {
    throw corrupt(certPath, keyPath, `the nameConstraints of ${certPath} cannot be read (${errorText(error)})`, error);
  }
  return { certPath, keyPath, certPem, x509, privateKey, permittedDomains, notAfter: x509.validToDate };
}

function unreadable(file: string, error: unknown): MimoProxyError {
  return new MimoProxyError(
    'CERTS_DIR_UNREADABLE',
    `could not read ${file}: ${describeIoError(error)}`,
    'run as the user who made the CA, or pass --certs DIR with a directory you own',
    { cause: error },
  );
}

async function readCaFile(file: string): Promise<string | undefined> {
  try {
    return await readIfExists(file);
  } catch (error) {
    throw unreadable(file, error);
  }
}

async function createAuthority(certPath: string, keyPath: string, domains: readonly string[], now: Date): Promise<boolean> {
  const [keys, forge] = await Promise.all([generateRsaKeyPair(), loadForge()]);
  const certPem = buildCaCertificate(forge, keys, createPrivateKey(keys.privateKeyPem), domains, now);
  try {
    // Key first: a ca.pem on disk always has its key next to it.
    if (!(await writeNewFile(keyPath, keys.privateKeyPem, PRIVATE_FILE_MODE))) return false;
    return await writeNewFile(certPath, certPem, PUBLIC_FILE_MODE);
  } catch (error) {
    throw unwritableError('the CA', path.dirname(certPath), error);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Loads the CA in `dir`, or makes one permitting `domains` when there is none. An existing CA
 * is never replaced: if it is unreadable, or does not permit every domain, this throws.
 */
export async function loadOrCreateAuthority(dir: string, domains: readonly string[], now: Date, renewCommand = 'mimo-proxy ca --renew'): Promise<Authority> {
  const certPath = path.join(dir, CA_CERT_FILE);
  const keyPath = path.join(dir, CA_KEY_FILE);
  let certPem = await readCaFile(certPath);
  let keyPem = await readCaFile(keyPath);

  if (certPem === undefined && keyPem === undefined) {
    const created = await createAuthority(certPath, keyPath, domains, now);
    if (!created) {
      // Another process is making the CA right now: wait (bounded) for its ca.pem.
      for (let poll = 0; poll < CREATE_RACE_POLLS && (await readCaFile(certPath)) === undefined; poll += 1) {
        await sleep(CREATE_RACE_POLL_MS);
      }
    }
    certPem = await readCaFile(certPath);
    keyPem = await readCaFile(keyPath);
  }
  if (certPem === undefined) throw corrupt(certPath, keyPath, `${keyPath} exists but ${certPath} is missing`);
  if (keyPem === undefined) throw corrupt(certPath, keyPath, `${certPath} exists but its key ${keyPath} is missing`);

  const authority = parseAuthority(certPath, keyPath, certPem, keyPem);
  await tightenKeyFile(keyPath);

  const uncovered = domains.filter((domain) => !isCoveredBy(domain, authority.permittedDomains));
  if (uncovered.length > 0) {
    const permits =
      authority.permittedDomains.length > 0 ? `permits only ${authority.permittedDomains.join(', ')}` : 'has no name constraints';
    throw new MimoProxyError(
      'CA_NOT_COVERING',
      `the CA at ${certPath} ${permits}, but the domains to intercept include ${uncovered.join(', ')}`,
      `run ${renewCommand} to make a new CA (${certPath} and its key are moved aside, not deleted), then trust the new ${CA_CERT_FILE} again and remove the old CA from every trust store you added it to; or pass --certs DIR with another folder`,
    );
  }
  return authority;
}
