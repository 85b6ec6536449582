/**
 * The combined CA bundle for variables that REPLACE a client's trust store
 * (SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, GIT_SSL_CAINFO): every
 * certificate the user's environment already trusted, plus our CA, each once.
 * We tunnel every other host untouched, so their real certificates must still
 * verify through it.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { PUBLIC_FILE_MODE, replaceFile } from '../ca/files.js';

/**
 * Bundles are named by their content (`{hash}` is replaced): two shells activated with
 * different trust (one with a corporate root, one without) each keep their own file instead
 * of overwriting one shared bundle under the other.
 */
export const BUNDLE_FILE = 'bundle-{hash}.pem';
const OWN_BUNDLE = /^bundle(-[0-9a-f]{16})?\.pem$/;

/** Where distributions keep their PEM bundle, in Go's order (crypto/x509/root_linux.go, root_bsd.go). */
export const SYSTEM_BUNDLE_FILES: readonly string[] = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Gentoo, Arch
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL 6
  '/etc/ssl/ca-bundle.pem', // OpenSUSE
  '/etc/pki/tls/cacert.pem', // OpenELEC
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', // CentOS, RHEL 7
  '/etc/ssl/cert.pem', // Alpine, macOS, FreeBSD
];

/** A source file bigger than this is not a CA bundle (the Mozilla bundle is ~220 KB). */
export const MAX_SOURCE_BYTES = 16 * 1024 * 1024;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g;

/** The certificates in a PEM text, re-wrapped at 64 columns; anything else (keys, comments) is left out. */
export function splitPemCertificates(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(PEM_CERTIFICATE)) {
    const body = (m[1] ?? '').replace(/\s+/g, '');
    if (body === '') continue;
    out.push(`-----BEGIN CERTIFICATE-----\n${body.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`);
  }
  return out;
}

/** The base64 body: two copies of one certificate compare equal whatever their line breaks. */
function certificateKey(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----|\s+/g, '');
}

export interface BundleSource {
  /** A file path, or a description such as "Node's system store". */
  label: string;
  pem: string;
}

/** Sources in order, then our CA, each certificate once. */
export function combineBundle(sources: readonly BundleSource[], caPem: string): { text: string; certificates: number } {
  const seen = new Set<string>();
  let text = '';
  for (const cert of [...sources.flatMap((s) => splitPemCertificates(s.pem)), ...splitPemCertificates(caPem)]) {
    const key = certificateKey(cert);
    if (seen.has(key)) continue;
    seen.add(key);
    text += cert;
  }
  return { text, certificates: seen.size };
}

async function readSource(file: string): Promise<string | undefined> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile() || stat.size > MAX_SOURCE_BYTES) return undefined;
    const text = await fs.readFile(file, 'utf8');
    return splitPemCertificates(text).length > 0 ? text : undefined;
  } catch {
    return undefined;
  }
}

/** The machine's roots: the distribution's bundle file, else Node's view of the OS store, else Node's bundled roots. */
export async function systemRoots(candidates: readonly string[] = SYSTEM_BUNDLE_FILES): Promise<BundleSource> {
  for (const file of candidates) {
    const pem = await readSource(file);
    if (pem !== undefined) return { label: file, pem };
  }
  try {
    const certs = tls.getCACertificates('system');
    if (certs.length > 0) return { label: "the OS trust store (via Node)", pem: certs.join('\n') };
  } catch {
    // Older Node or no readable store: fall through to the bundled roots.
  }
  return { label: "Node's bundled Mozilla roots", pem: tls.rootCertificates.join('\n') };
}

export interface BundleRequest {
  /** Where to write it (next to the CA). */
  bundlePath: string;
  caPem: string;
  /** Files that replaced the trust store before activation (SSL_CERT_FILE...): used instead of the system roots. */
  replacing: readonly string[];
  /** Files that added to it (NODE_EXTRA_CA_CERTS...): used on top. */
  adding: readonly string[];
  /** For tests: where the system roots come from. */
  systemCandidates?: readonly string[];
}

export interface Bundle {
  path: string;
  certificates: number;
  /** Where the certificates came from, for one line on stderr. */
  sources: string[];
  /** Files named by a variable that could not be read (skipped). */
  unreadable: string[];
  /** False when the file on disk was already up to date. */
  written: boolean;
}

/**
 * Builds the bundle and writes it when its content differs from the file on
 * disk, so a new CA or a changed source refreshes it. Our own bundle is never
 * a source, so a stale bundle cannot carry an old CA forward.
 */
export async function ensureBundle(request: BundleRequest): Promise<Bundle> {
  // Our own bundles are skipped; a file named by several variables is read once.
  const ownDir = path.dirname(path.resolve(request.bundlePath));
  const isOwn = (file: string): boolean => path.dirname(path.resolve(file)) === ownDir && OWN_BUNDLE.test(path.basename(file));
  const done = new Set([path.resolve(request.bundlePath)]);
  const sources: BundleSource[] = [];
  const unreadable: string[] = [];
  const read = async (files: readonly string[]): Promise<BundleSource[]> => {
    const found: BundleSource[] = [];
    for (const file of files) {
      if (done.has(path.resolve(file)) || isOwn(file)) continue;
      done.add(path.resolve(file));
      const pem = await readSource(file);
      if (pem === undefined) unreadable.push(file);
      else found.push({ label: file, pem });
    }
    return found;
  };
  const replacing = await read(request.replacing);
  if (replacing.length > 0) {
    sources.push(...replacing);
  } else {
    const roots = await systemRoots(request.systemCandidates);
    if (path.isAbsolute(roots.label)) done.add(path.resolve(roots.label));
    sources.push(roots);
  }
  sources.push(...(await read(request.adding)));

  const { text, certificates } = combineBundle(sources, request.caPem);
  const bundlePath = request.bundlePath.replace('{hash}', createHash('sha256').update(text).digest('hex').slice(0, 16));
  let current: string | undefined;
  try {
    current = await fs.readFile(bundlePath, 'utf8');
  } catch {
    current = undefined;
  }
  const written = current !== text;
  if (written) await replaceFile(bundlePath, text, PUBLIC_FILE_MODE);
  return { path: bundlePath, certificates, sources: sources.map((s) => s.label), unreadable, written };
}
