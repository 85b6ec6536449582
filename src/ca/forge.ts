/**
 * node-forge, which builds our certificates, loaded on first use: it takes longer to load
 * than the rest of the CLI, and only making a CA or a leaf needs it (loading an existing CA
 * and serving leaves from disk use node:crypto alone, so `mimo-proxy env` never loads it).
 * Signatures are made with Node's crypto (native RSA), PEM is written by Node (LF line ends).
 */
import { constants, privateEncrypt, X509Certificate, type KeyObject } from 'node:crypto';
import type * as ForgeTypes from 'node-forge';

export type Forge = typeof ForgeTypes;

let loading: Promise<Forge> | undefined;

/** The node-forge module, imported once. */
export function loadForge(): Promise<Forge> {
  loading ??= import('node-forge').then((module) => module.default as Forge);
  return loading;
}

/** DER of DigestInfo { sha256, NULL } up to the digest itself (RFC 8017 §9.2, note 1). */
const SHA256_DIGEST_INFO_PREFIX = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * Signs `cert` with sha256WithRSAEncryption using a Node private key: forge hashes the
 * TBSCertificate, Node's native RSA makes the PKCS #1 v1.5 signature (forge's JS RSA takes
 * about 24 ms a signature and blocks the event loop).
 */
export function signCertificate(forge: Forge, cert: ForgeTypes.pki.Certificate, privateKey: KeyObject): void {
  const signer = {
    sign(md: ForgeTypes.md.MessageDigest): string {
      const digest = Buffer.from(md.digest().getBytes(), 'binary');
      const digestInfo = Buffer.concat([SHA256_DIGEST_INFO_PREFIX, digest]);
      return privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo).toString('binary');
    },
  };
  cert.sign(signer as unknown as ForgeTypes.pki.rsa.PrivateKey, forge.md.sha256.create());
}

/** PEM with LF line ends, as OpenSSL and Node write it (forge's own PEM has CRLF). */
export function certificatePem(forge: Forge, cert: ForgeTypes.pki.Certificate): string {
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes();
  return new X509Certificate(Buffer.from(der, 'binary')).toString();
}
