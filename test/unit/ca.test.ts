import { execFile, spawnSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateCa, type CertificateAuthority, type LeafCertificate } from '../../src/ca/index.js';
import { decodePermittedDomains, encodeNameConstraints } from '../../src/ca/name-constraints.js';
import { MimoProxyError } from '../../src/errors.js';
import { isCoveredBy } from '../../src/net/hosts.js';

const DAY = 24 * 60 * 60 * 1000;
const DOMAINS = ['xiaomimimo.com'];
const NAME_CONSTRAINTS_OID = '2.5.29.30';

let root: string;
let certsDir: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'mimo-ca-test-'));
  certsDir = path.join(root, 'certs');
  ca = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS });
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

function mode(stat: { mode: number }): number {
  return stat.mode & 0o777;
}

/** The INTEGER content bytes of a certificate's serial number, read from the DER. */
function serialBytes(pem: string): string {
  const der = forge.pem.decode(pem)[0]?.body ?? '';
  const certificate = forge.asn1.fromDer(der).value as forge.asn1.Asn1[];
  const tbs = certificate[0]?.value as forge.asn1.Asn1[];
  // tbs[0] is the explicit [0] version, tbs[1] the serial.
  return tbs[1]?.value as string;
}

function expectPositiveSerial(pem: string): void {
  const serial = serialBytes(pem);
  expect(serial.length).toBe(16);
  expect(serial.charCodeAt(0)).toBeGreaterThan(0); // non-zero first byte: minimal DER, never zero
  expect(serial.charCodeAt(0)).toBeLessThan(0x80); // top bit clear: positive
}

function run(command: string, args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

function caErrorOf(promise: Promise<unknown>): Promise<MimoProxyError> {
  return promise.then(
    () => {
      throw new Error('expected a MimoProxyError, got success');
    },
    (error: unknown) => {
      expect(error).toBeInstanceOf(MimoProxyError);
      return error as MimoProxyError;
    },
  );
}

/**
 * A leaf for any host signed with the CA's own key, bypassing leafFor: what an attacker who
 * stole ca-key.pem could make. Name constraints must make clients reject it.
 */
async function forgeLeafWithCaKey(hostname: string, ip = false): Promise<LeafCertificate> {
  const caCert = forge.pki.certificateFromPem(await fs.readFile(path.join(certsDir, 'ca.pem'), 'utf8'));
  const caKey = forge.pki.privateKeyFromPem(await fs.readFile(path.join(certsDir, 'ca-key.pem'), 'utf8'));
  const keyPem = await fs.readFile(path.join(certsDir, 'leaf-key.pem'), 'utf8');
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = '3a5f0c11';
  const now = Date.now();
  cert.validity.notBefore = new Date(now - DAY);
  cert.validity.notAfter = new Date(now + 30 * DAY);
  cert.setSubject([{ name: 'commonName', value: hostname }]);
  cert.setIssuer(caCert.subject.attributes);
  const ski = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string };
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [ip ? { type: 7, ip: hostname } : { type: 2, value: hostname }] },
    { name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(ski.subjectKeyIdentifier) },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem, notAfter: cert.validity.notAfter };
}

async function writeTemp(name: string, text: string): Promise<string> {
  const file = path.join(root, name);
  await fs.writeFile(file, text);
  return file;
}

/** Runs `use` against an HTTPS server on 127.0.0.1 serving `leaf`, and always closes it. */
async function withHttpsServer<T>(leaf: LeafCertificate, use: (port: number) => Promise<T>): Promise<T> {
  const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_request, response) => response.end('ok'));
  // Handshake failures are the point of some tests; keep them quiet.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await use((server.address() as AddressInfo).port);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function tlsHandshake(port: number, servername: string, caPem: string): Promise<{ ok: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: caPem });
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
    socket.once('secureConnect', () => {
      socket.end();
      resolve({ ok: true });
    });
    socket.once('error', (error) => resolve({ ok: false, error: error.message }));
  });
}

function curl(host: string, port: number): Promise<{ code: number; output: string }> {
  return run('curl', [
    '--silent',
    '--show-error',
    '--noproxy',
    '*',
    '--max-time',
    '10',
    '--cacert',
    ca.caCertPath,
    '--resolve',
    `${host}:${port}:127.0.0.1`,
    `https://${host}:${port}/`,
  ]);
}

describe('creating and loading the CA', () => {
  it('creates the folder 0700, ca.pem 0644 and both keys 0600', async () => {
    expect(mode(await fs.stat(certsDir))).toBe(0o700);
    expect(mode(await fs.stat(path.join(certsDir, 'ca.pem')))).toBe(0o644);
    expect(mode(await fs.stat(path.join(certsDir, 'ca-key.pem')))).toBe(0o600);
    expect(mode(await fs.stat(path.join(certsDir, 'leaf-key.pem')))).toBe(0o600);
    expect(ca.caCertPath).toBe(path.join(certsDir, 'ca.pem'));
    expect(await fs.readFile(ca.caCertPath, 'utf8')).toBe(ca.caPem);
    // No temp files are left behind.
    expect((await fs.readdir(certsDir)).sort()).toEqual(['ca-key.pem', 'ca.pem', 'leaf-key.pem']);
  });

  it('loading the same folder again returns the same CA and rewrites no file', async () => {
    const files = ['ca.pem', 'ca-key.pem', 'leaf-key.pem'].map((name) => path.join(certsDir, name));
    const before = await Promise.all(files.map(async (file) => ({ text: await fs.readFile(file, 'utf8'), mtime: (await fs.stat(file)).mtimeMs })));
    const again = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS });
    const after = await Promise.all(files.map(async (file) => ({ text: await fs.readFile(file, 'utf8'), mtime: (await fs.stat(file)).mtimeMs })));
    expect(again.fingerprint256).toBe(ca.fingerprint256);
    expect(after).toEqual(before);
  });

  it('narrows a folder that holds our CA key back to 0700 on load', async () => {
    await fs.chmod(certsDir, 0o755);
    await fs.chmod(path.join(certsDir, 'ca-key.pem'), 0o644);
    await loadOrCreateCa({ dir: certsDir, domains: DOMAINS });
    expect(mode(await fs.stat(certsDir))).toBe(0o700);
    expect(mode(await fs.stat(path.join(certsDir, 'ca-key.pem')))).toBe(0o600);
  });

  it('reports the fingerprint the way Node does', () => {
    expect(ca.fingerprint256).toBe(new X509Certificate(ca.caPem).fingerprint256);
    expect(ca.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('accepts a configured domain that is a subdomain of a permitted one', async () => {
    const narrower = await loadOrCreateCa({ dir: certsDir, domains: ['api.xiaomimimo.com'] });
    expect(narrower.fingerprint256).toBe(ca.fingerprint256);
  });
});

describe('the CA certificate', () => {
  it('has critical basicConstraints (CA, pathlen 0) and keyUsage (keyCertSign, cRLSign)', () => {
    const cert = forge.pki.certificateFromPem(ca.caPem);
    const basic = cert.getExtension('basicConstraints') as { critical: boolean; cA: boolean; pathLenConstraint?: number };
    expect(basic.critical).toBe(true);
    expect(basic.cA).toBe(true);
    expect(basic.pathLenConstraint).toBe(0);
    const usage = cert.getExtension('keyUsage') as Record<string, boolean>;
    expect(usage.critical).toBe(true);
    expect(usage.keyCertSign).toBe(true);
    expect(usage.cRLSign).toBe(true);
    expect(usage.digitalSignature).toBe(false);
    expect(cert.getExtension('subjectKeyIdentifier')).toBeDefined();
    expect(new X509Certificate(ca.caPem).ca).toBe(true);
  });

  it('has critical nameConstraints permitting exactly the configured domains', async () => {
    const cert = forge.pki.certificateFromPem(ca.caPem);
    const constraints = cert.extensions.find((extension: { id: string }) => extension.id === NAME_CONSTRAINTS_OID) as {
      critical: boolean;
      value: string;
    };
    expect(constraints.critical).toBe(true);
    expect(decodePermittedDomains(Buffer.from(constraints.value, 'binary'))).toEqual(DOMAINS);
    expect(ca.permittedDomains).toEqual(DOMAINS);
    const text = await run('openssl', ['x509', '-noout', '-text', '-in', ca.caCertPath]);
    expect(text.output).toMatch(/X509v3 Name Constraints: critical\s+Permitted:\s+DNS:xiaomimimo\.com\s/);
  });

  it('is RSA 2048 signed with SHA-256, named for mimo-proxy, valid 10 years from a day ago, with a positive serial', () => {
    const cert = forge.pki.certificateFromPem(ca.caPem);
    const x509 = new X509Certificate(ca.caPem);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(forge.pki.oids[cert.signatureOid]).toBe('sha256WithRSAEncryption');
    expect(cert.subject.getField('CN').value).toMatch(/^mimo-proxy CA \(.+\)$/);
    expect(cert.subject.getField('O').value).toBe('mimo-proxy');
    expect(x509.issuer).toBe(x509.subject);
    const notBefore = x509.validFromDate.getTime();
    expect(Math.abs(notBefore - (Date.now() - DAY))).toBeLessThan(5 * 60 * 1000);
    const years = (ca.notAfter.getTime() - notBefore - DAY) / (365.25 * DAY);
    expect(years).toBeGreaterThan(9.99);
    expect(years).toBeLessThan(10.01);
    expect(ca.notAfter.getTime()).toBe(x509.validToDate.getTime());
    expectPositiveSerial(ca.caPem);
    expect(ca.expiryWarning()).toBeUndefined();
  });
});

describe('leaf certificates', () => {
  it('carry the SAN, AKI, serverAuth and a positive serial, valid from a day ago for at most 397 days', async () => {
    const leaf = await ca.leafFor('api.xiaomimimo.com');
    const x509 = new X509Certificate(leaf.certPem);
    expect(x509.subjectAltName).toBe('DNS:api.xiaomimimo.com');
    expect(x509.subject).toBe('CN=api.xiaomimimo.com');
    expect(x509.ca).toBe(false);
    expect(x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // Node's keyUsage lists the extended key usages: serverAuth
    expect(x509.checkIssued(new X509Certificate(ca.caPem))).toBe(true);

    const cert = forge.pki.certificateFromPem(leaf.certPem);
    const caSki = (forge.pki.certificateFromPem(ca.caPem).getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier: string })
      .subjectKeyIdentifier;
    const aki = cert.getExtension('authorityKeyIdentifier') as { value: string };
    // AuthorityKeyIdentifier ::= SEQUENCE { [0] keyIdentifier }
    const akiKeyId = ((forge.asn1.fromDer(aki.value).value as forge.asn1.Asn1[])[0]?.value ?? '') as string;
    expect(forge.util.bytesToHex(akiKeyId)).toBe(caSki);
    expect(cert.getExtension('subjectKeyIdentifier')).toBeDefined();
    const usage = cert.getExtension('keyUsage') as Record<string, boolean>;
    expect(usage.digitalSignature && usage.keyEncipherment).toBe(true);
    expect(usage.keyCertSign).toBe(false);
    expect(forge.pki.oids[cert.signatureOid]).toBe('sha256WithRSAEncryption');

    const notBefore = x509.validFromDate.getTime();
    expect(Math.abs(notBefore - (Date.now() - DAY))).toBeLessThan(5 * 60 * 1000);
    expect(x509.validToDate.getTime() - notBefore).toBeLessThanOrEqual(398 * DAY);
    expect(x509.validToDate.getTime() - Date.now()).toBeLessThanOrEqual(397 * DAY);
    expect(x509.validToDate.getTime() - Date.now()).toBeGreaterThan(396 * DAY);
    expect(leaf.notAfter.getTime()).toBe(x509.validToDate.getTime());
    expectPositiveSerial(leaf.certPem);
    expect(leaf.keyPem).toBe(await fs.readFile(path.join(certsDir, 'leaf-key.pem'), 'utf8'));
  });

  it('for two hosts share one key pair but not one serial', async () => {
    const a = await ca.leafFor('api.xiaomimimo.com');
    const b = await ca.leafFor('platform.xiaomimimo.com');
    const keyA = new X509Certificate(a.certPem).publicKey;
    const keyB = new X509Certificate(b.certPem).publicKey;
    expect(keyA.equals(keyB)).toBe(true);
    expect(a.keyPem).toBe(b.keyPem);
    expect(serialBytes(a.certPem)).not.toBe(serialBytes(b.certPem));
  });

  it('are signed once when several calls for one host arrive together', async () => {
    const leaves = await Promise.all(Array.from({ length: 5 }, () => ca.leafFor('together.xiaomimimo.com')));
    for (const leaf of leaves) expect(leaf.certPem).toBe(leaves[0]?.certPem);
  });

  it('are stored under hosts/ in a 0700 folder and served unchanged after a restart', async () => {
    const first = await ca.leafFor('restart.xiaomimimo.com');
    const hostsDir = path.join(certsDir, 'hosts');
    expect(mode(await fs.stat(hostsDir))).toBe(0o700);
    expect(await fs.readFile(path.join(hostsDir, 'restart.xiaomimimo.com.pem'), 'utf8')).toBe(first.certPem);

    const restarted = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS });
    const second = await restarted.leafFor('restart.xiaomimimo.com');
    expect(second.certPem).toBe(first.certPem);
    expect(second.keyPem).toBe(first.keyPem);
  });

  it('are renewed when fewer than 30 days are left', async () => {
    const first = await ca.leafFor('renew.xiaomimimo.com');
    const later = new Date(Date.now() + 380 * DAY); // 17 days before the leaf ends
    const restarted = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS, now: () => later });
    const renewed = await restarted.leafFor('renew.xiaomimimo.com');
    expect(renewed.certPem).not.toBe(first.certPem);
    expect(renewed.notAfter.getTime()).toBeGreaterThan(later.getTime() + 396 * DAY);
    expect(await fs.readFile(path.join(certsDir, 'hosts', 'renew.xiaomimimo.com.pem'), 'utf8')).toBe(renewed.certPem);

    // 40 days before its end, a leaf is still served as it is.
    const calm = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS, now: () => new Date(Date.now() + 357 * DAY) });
    expect((await calm.leafFor('platform.xiaomimimo.com')).certPem).toBe((await ca.leafFor('platform.xiaomimimo.com')).certPem);
  });

  it('on disk that another CA issued are replaced', async () => {
    const file = path.join(certsDir, 'hosts', 'foreign.xiaomimimo.com.pem');
    // Self-signed with the leaf key: right host, right key, wrong issuer.
    const keyPem = await fs.readFile(path.join(certsDir, 'leaf-key.pem'), 'utf8');
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString());
    cert.serialNumber = '01';
    cert.validity.notBefore = new Date(Date.now() - DAY);
    cert.validity.notAfter = new Date(Date.now() + 300 * DAY);
    cert.setSubject([{ name: 'commonName', value: 'foreign.xiaomimimo.com' }]);
    cert.setIssuer([{ name: 'commonName', value: 'foreign.xiaomimimo.com' }]);
    cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: 'foreign.xiaomimimo.com' }] }]);
    cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
    const foreign = forge.pki.certificateToPem(cert);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, foreign);

    const leaf = await ca.leafFor('foreign.xiaomimimo.com');
    expect(leaf.certPem).not.toBe(foreign);
    expect(new X509Certificate(leaf.certPem).verify(new X509Certificate(ca.caPem).publicKey)).toBe(true);
    expect(await fs.readFile(file, 'utf8')).toBe(leaf.certPem);
  });

  it('are refused for IP literals, which the CA excludes (the proxy tunnels them)', async () => {
    for (const ip of ['127.0.0.1', '[::1]']) {
      expect((await caErrorOf(ca.leafFor(ip))).code, ip).toBe('CA_HOST_NOT_PERMITTED');
    }
  });

  it('treat host names case-insensitively and ignore one trailing dot', async () => {
    const plain = await ca.leafFor('api.xiaomimimo.com');
    expect((await ca.leafFor('API.XiaoMiMiMo.com.')).certPem).toBe(plain.certPem);
  });

  it('are refused for names that are not DNS names, which keeps file names inside hosts/', async () => {
    const before = (await fs.readdir(root)).sort();
    for (const bad of ['', '../evil.xiaomimimo.com', 'a/b.xiaomimimo.com', 'a..xiaomimimo.com', '.xiaomimimo.com', 'a_b.xiaomimimo.com', 'x\0.xiaomimimo.com', '小米.xiaomimimo.com']) {
      expect((await caErrorOf(ca.leafFor(bad))).code).toBe('CA_HOSTNAME');
    }
    expect((await fs.readdir(root)).sort()).toEqual(before);
  });

  it('are refused for hosts outside the permitted domains, on a label boundary', async () => {
    for (const outside of ['example.com', 'evilxiaomimimo.com', 'xiaomimimo.com.evil.net']) {
      const error = await caErrorOf(ca.leafFor(outside));
      expect(error.code).toBe('CA_HOST_NOT_PERMITTED');
    }
    expect(new X509Certificate((await ca.leafFor('xiaomimimo.com')).certPem).subjectAltName).toBe('DNS:xiaomimimo.com');
  });
});

describe('leaves in memory', () => {
  it('come with their TLS context, at once when the host is known, from one signing for concurrent callers', async () => {
    const dir = path.join(root, 'contexts');
    const fresh = await loadOrCreateCa({ dir, domains: DOMAINS });
    const first = fresh.contextFor('ctx.xiaomimimo.com');
    expect(first).toBeInstanceOf(Promise); // nothing in memory or on disk yet
    const [context, leaf, again] = await Promise.all([first, fresh.leafFor('ctx.xiaomimimo.com'), fresh.contextFor('CTX.xiaomimimo.com.')]);
    expect(again).toBe(context);
    expect(fresh.contextFor('ctx.xiaomimimo.com')).toBe(context); // no promise: the CONNECT is answered in the same tick
    expect(await fs.readdir(path.join(dir, 'hosts'))).toEqual(['ctx.xiaomimimo.com.pem']);
    expect(await fs.readFile(path.join(dir, 'hosts', 'ctx.xiaomimimo.com.pem'), 'utf8')).toBe(leaf.certPem);
    // The context serves that very leaf to a verifying client.
    const server = tls.createServer({ SNICallback: (_name, done) => done(null, context) });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const socket = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername: 'ctx.xiaomimimo.com', ca: fresh.caPem });
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      expect(socket.getPeerX509Certificate()?.fingerprint256).toBe(new X509Certificate(leaf.certPem).fingerprint256);
      socket.destroy();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('refuse a name the CA cannot vouch for with a rejected promise, never a throw', async () => {
    for (const [bad, code] of [['example.com', 'CA_HOST_NOT_PERMITTED'], ['127.0.0.1', 'CA_HOST_NOT_PERMITTED'], ['a_b.xiaomimimo.com', 'CA_HOSTNAME']] as const) {
      let result: unknown;
      expect(() => (result = ca.contextFor(bad))).not.toThrow();
      expect((await caErrorOf(result as Promise<unknown>)).code, bad).toBe(code);
    }
  });

  it('are renewed by the same running CA once fewer than 30 days are left', async () => {
    let now = Date.now();
    const running = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS, now: () => new Date(now) });
    const first = await running.leafFor('moving.xiaomimimo.com');
    const context = running.contextFor('moving.xiaomimimo.com');
    now += 357 * DAY; // 40 days left: still served from memory
    expect(running.contextFor('moving.xiaomimimo.com')).toBe(context);
    expect((await running.leafFor('moving.xiaomimimo.com')).certPem).toBe(first.certPem);
    now += 23 * DAY; // 17 days left
    expect(running.contextFor('moving.xiaomimimo.com')).toBeInstanceOf(Promise);
    const renewed = await running.leafFor('moving.xiaomimimo.com');
    expect(renewed.certPem).not.toBe(first.certPem);
    expect(renewed.notAfter.getTime()).toBeGreaterThan(now + 396 * DAY);
  });
});

describe('PEM files', () => {
  it('are written with LF line ends', async () => {
    const leaf = await ca.leafFor('lf.xiaomimimo.com');
    for (const text of [ca.caPem, leaf.certPem, leaf.keyPem, await fs.readFile(path.join(certsDir, 'hosts', 'lf.xiaomimimo.com.pem'), 'utf8')]) {
      expect(text).not.toContain('\r');
      expect(text).toMatch(/^-----BEGIN [A-Z ]+-----\n[\s\S]+\n-----END [A-Z ]+-----\n$/);
    }
    expect(await fs.readFile(path.join(certsDir, 'ca-key.pem'), 'utf8')).not.toContain('\r');
  });

  it('written with CRLF by earlier versions still load, and a CRLF leaf is served as it is', async () => {
    const dir = path.join(root, 'crlf');
    await fs.mkdir(path.join(dir, 'hosts'), { recursive: true, mode: 0o700 });
    const leaf = await ca.leafFor('api.xiaomimimo.com');
    const crlf = (text: string): string => text.replace(/\r?\n/g, '\r\n');
    for (const name of ['ca.pem', 'ca-key.pem', 'leaf-key.pem']) {
      await fs.writeFile(path.join(dir, name), crlf(await fs.readFile(path.join(certsDir, name), 'utf8')), { mode: 0o600 });
    }
    await fs.writeFile(path.join(dir, 'hosts', 'api.xiaomimimo.com.pem'), crlf(leaf.certPem));
    const loaded = await loadOrCreateCa({ dir, domains: DOMAINS });
    expect(loaded.fingerprint256).toBe(ca.fingerprint256);
    expect(loaded.permittedDomains).toEqual(DOMAINS);
    expect(loaded.caPem).toBe(crlf(ca.caPem));
    expect((await loaded.leafFor('api.xiaomimimo.com')).certPem).toBe(crlf(leaf.certPem));
    expect(new X509Certificate((await loaded.leafFor('new.xiaomimimo.com')).certPem).checkIssued(new X509Certificate(ca.caPem))).toBe(true);
  });
});

describe('node-forge', () => {
  /** Runs the compiled ca/ in a fresh process and lists the node-forge modules it resolved. */
  function forgeModulesLoadedBy(steps: string): string[] {
    const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'ca', 'index.js');
    const script = `
      import { registerHooks } from 'node:module';
      const seen = [];
      registerHooks({ resolve: (specifier, context, next) => { const found = next(specifier, context); seen.push(found.url); return found; } });
      const { loadOrCreateCa } = await import(${JSON.stringify(pathToFileURL(dist).href)});
      const ca = await loadOrCreateCa({ dir: ${JSON.stringify(certsDir)}, domains: ['xiaomimimo.com'] });
      ${steps}
      process.stdout.write(JSON.stringify(seen.filter((url) => url.includes('/node-forge/'))));
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    return JSON.parse(run.stdout) as string[];
  }

  it('is not loaded to load an existing CA or to serve a leaf from disk (mimo-proxy env stays fast)', async () => {
    await ca.leafFor('api.xiaomimimo.com');
    expect(forgeModulesLoadedBy("await ca.leafFor('api.xiaomimimo.com'); ca.contextFor('api.xiaomimimo.com');")).toEqual([]);
  });

  it('is loaded to sign a new leaf', () => {
    const host = `signed-${process.pid}-${Date.now()}.xiaomimimo.com`;
    expect(forgeModulesLoadedBy(`await ca.leafFor(${JSON.stringify(host)});`).length).toBeGreaterThan(0);
  });
});

describe('name constraints hold against real clients', () => {
  let good: LeafCertificate;
  let rogue: LeafCertificate;

  beforeAll(async () => {
    good = await ca.leafFor('api.xiaomimimo.com');
    rogue = await forgeLeafWithCaKey('example.com');
  });

  it('openssl verify accepts the api.xiaomimimo.com leaf and rejects an example.com leaf signed by the same key', async () => {
    const ok = await run('openssl', ['verify', '-CAfile', ca.caCertPath, await writeTemp('good.pem', good.certPem)]);
    expect(ok.code).toBe(0);
    expect(ok.output).toContain(': OK');
    const bad = await run('openssl', ['verify', '-CAfile', ca.caCertPath, await writeTemp('rogue.pem', rogue.certPem)]);
    expect(bad.code).not.toBe(0);
    expect(bad.output).toContain('permitted subtree violation');
    const ipLeaf = await forgeLeafWithCaKey('127.0.0.1', true);
    const badIp = await run('openssl', ['verify', '-CAfile', ca.caCertPath, await writeTemp('rogue-ip.pem', ipLeaf.certPem)]);
    expect(badIp.code).not.toBe(0);
    expect(badIp.output).toMatch(/excluded subtree violation|permitted subtree violation/);
    // The rogue leaf is otherwise well-formed: only the constraint rejects it.
    expect(new X509Certificate(rogue.certPem).verify(new X509Certificate(ca.caPem).publicKey)).toBe(true);
  });

  it('a Node TLS client completes the handshake with the good leaf and refuses the example.com one', async () => {
    const accepted = await withHttpsServer(good, (port) => tlsHandshake(port, 'api.xiaomimimo.com', ca.caPem));
    expect(accepted).toEqual({ ok: true });
    const refused = await withHttpsServer(rogue, (port) => tlsHandshake(port, 'example.com', ca.caPem));
    expect(refused.ok).toBe(false);
  });

  it('curl fetches through the good leaf and refuses the example.com one', async () => {
    const fetched = await withHttpsServer(good, (port) => curl('api.xiaomimimo.com', port));
    expect(fetched).toEqual({ code: 0, output: 'ok' });
    const refused = await withHttpsServer(rogue, (port) => curl('example.com', port));
    expect(refused.code).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
  });
});

describe('errors a user can act on', () => {
  it('a certs path under a regular file gives CERTS_DIR_UNWRITABLE naming the path', async () => {
    const file = await writeTemp('not-a-folder', 'x');
    const dir = path.join(file, 'certs');
    const error = await caErrorOf(loadOrCreateCa({ dir, domains: DOMAINS }));
    expect(error.code).toBe('CERTS_DIR_UNWRITABLE');
    expect(error.message).toContain(dir);
    expect(error.message).toContain('(ENOTDIR)');
    expect(error.hint).toContain('--certs');
  });

  it.skipIf(process.getuid?.() === 0)('a read-only folder gives CERTS_DIR_UNWRITABLE with the reason', async () => {
    const dir = path.join(root, 'read-only');
    await fs.mkdir(dir, { mode: 0o500 });
    try {
      const error = await caErrorOf(loadOrCreateCa({ dir, domains: DOMAINS }));
      expect(error.code).toBe('CERTS_DIR_UNWRITABLE');
      expect(error.message).toBe(`could not write the CA to ${dir}: permission denied (EACCES)`);
    } finally {
      await fs.chmod(dir, 0o700);
    }
  });

  it('a corrupt ca.pem gives CA_CORRUPT and is left untouched', async () => {
    const dir = path.join(root, 'corrupt');
    await fs.mkdir(dir);
    await fs.copyFile(path.join(certsDir, 'ca-key.pem'), path.join(dir, 'ca-key.pem'));
    const garbage = '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n';
    await fs.writeFile(path.join(dir, 'ca.pem'), garbage);
    const error = await caErrorOf(loadOrCreateCa({ dir, domains: DOMAINS }));
    expect(error.code).toBe('CA_CORRUPT');
    expect(error.hint).toContain(path.join(dir, 'ca.pem'));
    expect(error.hint).toContain(path.join(dir, 'ca-key.pem'));
    expect(await fs.readFile(path.join(dir, 'ca.pem'), 'utf8')).toBe(garbage);
    expect(await fs.readFile(path.join(dir, 'ca-key.pem'), 'utf8')).toBe(await fs.readFile(path.join(certsDir, 'ca-key.pem'), 'utf8'));
  });

  it('a ca-key.pem that is not the key of ca.pem gives CA_CORRUPT', async () => {
    const dir = path.join(root, 'mismatch');
    await fs.mkdir(dir);
    await fs.copyFile(ca.caCertPath, path.join(dir, 'ca.pem'));
    await fs.copyFile(path.join(certsDir, 'leaf-key.pem'), path.join(dir, 'ca-key.pem'));
    const error = await caErrorOf(loadOrCreateCa({ dir, domains: DOMAINS }));
    expect(error.code).toBe('CA_CORRUPT');
    expect(error.message).toContain('is not the key of');
  });

  it('a ca.pem without its key gives CA_CORRUPT and no new key is made', async () => {
    const dir = path.join(root, 'keyless');
    await fs.mkdir(dir);
    await fs.copyFile(ca.caCertPath, path.join(dir, 'ca.pem'));
    const error = await caErrorOf(loadOrCreateCa({ dir, domains: DOMAINS }));
    expect(error.code).toBe('CA_CORRUPT');
    expect(error.message).toContain('is missing');
    expect(await fs.readdir(dir)).toEqual(['ca.pem']);
  });

  it('a CA that does not permit a configured domain gives CA_NOT_COVERING with a way out', async () => {
    const error = await caErrorOf(loadOrCreateCa({ dir: certsDir, domains: ['xiaomimimo.com', 'example.com'] }));
    expect(error.code).toBe('CA_NOT_COVERING');
    expect(error.hint).toContain('mimo-proxy ca --renew');
    expect(error.message).toContain('example.com');
    expect(error.hint).toContain('--certs');
    expect(error.hint).toContain(ca.caCertPath);
    expect(await fs.readFile(ca.caCertPath, 'utf8')).toBe(ca.caPem);
  });

  it('a configured domain that is not a DNS name gives CA_DOMAINS', async () => {
    expect((await caErrorOf(loadOrCreateCa({ dir: certsDir, domains: ['../x'] }))).code).toBe('CA_DOMAINS');
    expect((await caErrorOf(loadOrCreateCa({ dir: certsDir, domains: [] }))).code).toBe('CA_DOMAINS');
  });

  it('an expired CA or one ending within 30 days gets an expiry warning', async () => {
    const dir = path.join(root, 'old');
    const longAgo = new Date(Date.now() - 11 * 365 * DAY);
    const old = await loadOrCreateCa({ dir, domains: DOMAINS, now: () => longAgo });
    expect(old.expiryWarning()).toBeUndefined();
    const reloaded = await loadOrCreateCa({ dir, domains: DOMAINS });
    expect(reloaded.expiryWarning()).toMatch(new RegExp(`^the CA at ${reloaded.caCertPath} expired on \\d{4}-\\d{2}-\\d{2}; `));

    const soon = await loadOrCreateCa({ dir: certsDir, domains: DOMAINS, now: () => new Date(ca.notAfter.getTime() - 10 * DAY) });
    expect(soon.expiryWarning()).toMatch(/expires on \d{4}-\d{2}-\d{2} \(in 10 days\)/);
  });
});

describe('nameConstraints encoding', () => {
  it('round-trips several domains, including a punycode (IDNA) label', () => {
    const domains = ['xiaomimimo.com', 'xn--fiq228c.example'];
    expect(decodePermittedDomains(encodeNameConstraints(domains))).toEqual(domains);
  });

  it('covers a domain and its subdomains on a label boundary only', () => {
    expect(isCoveredBy('xiaomimimo.com', ['xiaomimimo.com'])).toBe(true);
    expect(isCoveredBy('a.b.XIAOMIMIMO.com', ['xiaomimimo.com'])).toBe(true);
    expect(isCoveredBy('evilxiaomimimo.com', ['xiaomimimo.com'])).toBe(false);
    expect(isCoveredBy('xiaomimimo.com', ['.xiaomimimo.com'])).toBe(false);
    expect(isCoveredBy('api.xiaomimimo.com', ['.xiaomimimo.com'])).toBe(true);
  });
});
