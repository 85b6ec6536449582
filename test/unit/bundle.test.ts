import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { combineBundle, ensureBundle, splitPemCertificates } from '../../src/setup/bundle.js';

/** A PEM block with a random body: the bundle works on PEM text, not on parsed certificates. */
function fakeCert(width = 64, eol = '\n'): string {
  const body = randomBytes(300).toString('base64');
  return `-----BEGIN CERTIFICATE-----${eol}${body.match(new RegExp(`.{1,${width}}`, 'g'))!.join(eol)}${eol}-----END CERTIFICATE-----${eol}`;
}

function bodyOf(pem: string): string {
  return pem.replace(/-----[A-Z ]+-----|\s+/g, '');
}

function bodies(text: string): string[] {
  return splitPemCertificates(text).map(bodyOf);
}

describe('PEM splitting and combining', () => {
  it('keeps certificates only, from CRLF files with comments and keys, re-wrapped at 64 columns', () => {
    const a = fakeCert(76, '\r\n');
    const text = `# 公司根证书\r\n${a}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\nsubject=CN = x\n${fakeCert()}`;
    const certs = splitPemCertificates(text);
    expect(certs).toHaveLength(2);
    expect(bodyOf(certs[0]!)).toBe(bodyOf(a));
    for (const line of certs[0]!.split('\n')) expect(line.length).toBeLessThanOrEqual(64);
  });

  it('puts each certificate in once, whatever its line breaks, with ours last', () => {
    const a = fakeCert();
    const b = fakeCert();
    const ca = fakeCert();
    const sameAsA = `-----BEGIN CERTIFICATE-----\n${bodyOf(a)}\n-----END CERTIFICATE-----\n`;
    const { text, certificates } = combineBundle([{ label: 'x', pem: a + b }, { label: 'y', pem: sameAsA + ca }], ca);
    expect(certificates).toBe(3);
    expect(bodies(text)).toEqual([a, b, ca].map(bodyOf));
  });
});

describe('the bundle file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mimo-bundle-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, text: string): string => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('holds the previous bundle, the corporate CA and ours, mode 0644, rewritten only when stale', async () => {
    const previous = [fakeCert(), fakeCert()];
    const corporate = fakeCert();
    const system = file('system.pem', fakeCert());
    const replacing = [file('previous bundle.pem', previous.join(''))];
    const adding = [file("corp's ca.pem", corporate)];
    const bundlePath = path.join(dir, 'bundle.pem');
    const ca1 = fakeCert();

    const first = await ensureBundle({ bundlePath, caPem: ca1, replacing, adding, systemCandidates: [system] });
    expect(first.written).toBe(true);
    expect(first.certificates).toBe(4);
    expect(first.sources).toEqual([...replacing, ...adding]);
    expect(bodies(readFileSync(bundlePath, 'utf8'))).toEqual([...previous, corporate, ca1].map(bodyOf));
    if (process.platform !== 'win32') expect(statSync(bundlePath).mode & 0o777).toBe(0o644);

    const again = await ensureBundle({ bundlePath, caPem: ca1, replacing, adding, systemCandidates: [system] });
    expect(again.written).toBe(false);

    // A new CA: the old one must leave the bundle (our own bundle is never a source).
    const ca2 = fakeCert();
    const renewed = await ensureBundle({ bundlePath, caPem: ca2, replacing: [...replacing, bundlePath], adding, systemCandidates: [system] });
    expect(renewed.written).toBe(true);
    const after = bodies(readFileSync(bundlePath, 'utf8'));
    expect(after).toContain(bodyOf(ca2));
    expect(after).not.toContain(bodyOf(ca1));

    // A changed source refreshes it too.
    const extra = fakeCert();
    writeFileSync(replacing[0]!, previous.join('') + extra);
    const refreshed = await ensureBundle({ bundlePath, caPem: ca2, replacing, adding, systemCandidates: [system] });
    expect(refreshed.written).toBe(true);
    expect(bodies(readFileSync(bundlePath, 'utf8'))).toContain(bodyOf(extra));
  });

  it('starts from the system roots when no replacing variable was set, and reports unreadable files', async () => {
    const systemCert = fakeCert();
    const system = file('ca-certificates.crt', systemCert);
    const ca = fakeCert();
    const result = await ensureBundle({
      bundlePath: path.join(dir, 'bundle.pem'),
      caPem: ca,
      replacing: [path.join(dir, 'missing.pem')],
      adding: [],
      systemCandidates: [path.join(dir, 'absent.crt'), system],
    });
    expect(result.unreadable).toEqual([path.join(dir, 'missing.pem')]);
    expect(result.sources).toEqual([system]);
    expect(bodies(readFileSync(result.path, 'utf8'))).toEqual([systemCert, ca].map(bodyOf));
  });

  it('gives two activations with different trust their own files, so neither overwrites the other', async () => {
    const ca = fakeCert();
    const corporate = file('corp.pem', fakeCert());
    const system = file('system.pem', fakeCert());
    const bundlePath = path.join(dir, 'bundle-{hash}.pem');
    const withCorp = await ensureBundle({ bundlePath, caPem: ca, replacing: [corporate], adding: [], systemCandidates: [system] });
    const without = await ensureBundle({ bundlePath, caPem: ca, replacing: [], adding: [], systemCandidates: [system] });
    expect(withCorp.path).toMatch(/bundle-[0-9a-f]{16}\.pem$/);
    expect(without.path).not.toBe(withCorp.path);
    expect(bodies(readFileSync(withCorp.path, 'utf8'))).toContain(bodyOf(readFileSync(corporate, 'utf8')));
    expect(bodies(readFileSync(without.path, 'utf8'))).not.toContain(bodyOf(readFileSync(corporate, 'utf8')));
    // A previous bundle of ours named by a variable is never a source.
    const again = await ensureBundle({ bundlePath, caPem: ca, replacing: [withCorp.path], adding: [], systemCandidates: [system] });
    expect(again.path).toBe(without.path);
  });

  it("falls back to Node's view of the trust store when no distribution file exists", async () => {
    const result = await ensureBundle({ bundlePath: path.join(dir, 'bundle.pem'), caPem: fakeCert(), replacing: [], adding: [], systemCandidates: [] });
    expect(result.sources[0]).toMatch(/Node/);
    expect(result.certificates).toBeGreaterThan(10);
  });
});
