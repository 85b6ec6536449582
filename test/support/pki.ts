/**
 * A throwaway certificate authority for test servers: it plays a public CA
 * (a name unrelated to mimo-proxy's), so a test can tell "the client saw our
 * interception certificate" from "the client saw the upstream's own".
 * Test-only: keys live in memory and one temp file (the CA certificate).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';

export interface TestCa {
  certPem: string;
  keyPem: string;
  /** The CA certificate written to `dir`, for tools that want a file (curl --cacert, --upstream-ca). */
  certPath: string;
  dir: string;
  /** A serverAuth leaf with one SAN (dNSName or iPAddress) per name, signed by this CA. */
  issue(names: string[]): { certPem: string; keyPem: string };
  cleanup(): void;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Backdated a day because clocks disagree (as mockttp does). */
const BACKDATE_MS = DAY_MS;
const CA_VALIDITY_MS = 365 * DAY_MS;
const LEAF_VALIDITY_MS = 30 * DAY_MS;

function rsaKeyPair(): { forgePublic: forge.pki.PublicKey; forgePrivate: forge.pki.rsa.PrivateKey; keyPem: string } {
  // Node's native keygen: forge's JS one takes seconds for 2048 bits.
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    forgePublic: forge.pki.publicKeyFromPem(publicKey),
    forgePrivate: forge.pki.privateKeyFromPem(privateKey),
    keyPem: privateKey,
  };
}

/** 16 random bytes with the top bit clear: DER INTEGERs are signed, serials must be positive (RFC 5280 §4.1.2.2). */
function positiveSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) || 0x01;
  return bytes.toString('hex');
}

function altName(name: string): { type: number; value?: string; ip?: string } {
  // 7 = iPAddress, 2 = dNSName (RFC 5280 §4.2.1.6).
  return isIP(name) !== 0 ? { type: 7, ip: name } : { type: 2, value: name };
}

export function makeTestCa(label: string): TestCa {
  const now = Date.now();
  const caKeys = rsaKeyPair();
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = caKeys.forgePublic;
  caCert.serialNumber = positiveSerialHex();
  caCert.validity.notBefore = new Date(now - BACKDATE_MS);
  caCert.validity.notAfter = new Date(now + CA_VALIDITY_MS);
  const caName = [
    { name: 'commonName', value: `Test Public Root CA (${label})` },
    { name: 'organizationName', value: 'Test Trust Services' },
  ];
  caCert.setSubject(caName);
  caCert.setIssuer(caName);
  caCert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: true },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(caKeys.forgePrivate, forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(caCert);
  const caKeyId = caCert.generateSubjectKeyIdentifier().getBytes();

  const dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-testca-'));
  const certPath = path.join(dir, 'ca.pem');
  writeFileSync(certPath, certPem);

  return {
    certPem,
    keyPem: caKeys.keyPem,
    certPath,
    dir,
    issue(names: string[]) {
      if (names.length === 0) throw new Error('a leaf needs at least one name');
      const leafKeys = rsaKeyPair();
      const leaf = forge.pki.createCertificate();
      leaf.publicKey = leafKeys.forgePublic;
      leaf.serialNumber = positiveSerialHex();
      const issued = Date.now();
      leaf.validity.notBefore = new Date(issued - BACKDATE_MS);
      leaf.validity.notAfter = new Date(issued + LEAF_VALIDITY_MS);
      leaf.setSubject([{ name: 'commonName', value: names[0]! }]);
      leaf.setIssuer(caName);
      leaf.setExtensions([
        { name: 'basicConstraints', critical: true, cA: false },
        { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true },
        // Clients match the SAN, not the CN (RFC 6125).
        { name: 'subjectAltName', altNames: names.map(altName) },
        { name: 'subjectKeyIdentifier' },
        { name: 'authorityKeyIdentifier', keyIdentifier: caKeyId },
      ]);
      leaf.sign(caKeys.forgePrivate, forge.md.sha256.create());
      return { certPem: forge.pki.certificateToPem(leaf), keyPem: leafKeys.keyPem };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
