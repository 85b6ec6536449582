import { describe, expect, it } from 'vitest';
import { formatCommand, LINUX_STORES, planTrust, type TrustFacts } from '../../src/setup/truststore.js';

const debian = LINUX_STORES.find((s) => s.name === 'Debian/Ubuntu')!;
const fedora = LINUX_STORES.find((s) => s.name === 'Fedora/RHEL')!;
const arch = LINUX_STORES.find((s) => s.name === 'Arch')!;

function facts(overrides: Partial<TrustFacts>): TrustFacts {
  return {
    platform: 'linux',
    isRoot: true,
    caPath: '/home/u/my certs/ca.pem',
    caSha1: 'AB12',
    linuxStore: debian,
    systemTrusted: false,
    nss: undefined,
    ...overrides,
  };
}

const argvs = (f: TrustFacts, action: 'install' | 'uninstall' = 'install'): string[][] => planTrust(action, f).steps.map((s) => s.argv);

describe('trust store plans', () => {
  it('copies to the Debian anchor folder and runs update-ca-certificates, both privileged', () => {
    const plan = planTrust('install', facts({}));
    expect(plan.steps.map((s) => s.argv)).toEqual([
      ['install', '-m', '0644', '/home/u/my certs/ca.pem', '/usr/local/share/ca-certificates/mimo-proxy.crt'],
      ['update-ca-certificates'],
    ]);
    expect(plan.steps.every((s) => s.privileged)).toBe(true);
    expect(argvs(facts({ systemTrusted: true }), 'uninstall')).toEqual([['rm', '-f', '/usr/local/share/ca-certificates/mimo-proxy.crt'], ['update-ca-certificates']]);
  });

  it('uses update-ca-trust extract on Fedora and trust extract-compat on Arch', () => {
    expect(argvs(facts({ linuxStore: fedora }))).toEqual([
      ['install', '-m', '0644', '/home/u/my certs/ca.pem', '/etc/pki/ca-trust/source/anchors/mimo-proxy.pem'],
      ['update-ca-trust', 'extract'],
    ]);
    expect(argvs(facts({ linuxStore: arch }))[1]).toEqual(['trust', 'extract-compat']);
  });

  it('trusts the CA in the macOS System keychain, and removes trust and certificate on uninstall', () => {
    expect(argvs(facts({ platform: 'darwin', linuxStore: undefined }))).toEqual([
      ['security', 'add-trusted-cert', '-d', '-r', 'trustRoot', '-k', '/Library/Keychains/System.keychain', '/home/u/my certs/ca.pem'],
    ]);
    expect(argvs(facts({ platform: 'darwin', systemTrusted: true }), 'uninstall')).toEqual([
      ['security', 'remove-trusted-cert', '-d', '/home/u/my certs/ca.pem'],
      ['security', 'delete-certificate', '-Z', 'AB12', '/Library/Keychains/System.keychain'],
    ]);
  });

  it('adds to and deletes from the Windows ROOT store with certutil', () => {
    const win = facts({ platform: 'win32', isRoot: undefined, caPath: 'C:\\Users\\u\\certs\\ca.pem', linuxStore: undefined });
    expect(argvs(win)).toEqual([['certutil', '-addstore', '-f', 'ROOT', 'C:\\Users\\u\\certs\\ca.pem']]);
    expect(argvs({ ...win, systemTrusted: true }, 'uninstall')).toEqual([['certutil', '-delstore', 'ROOT', 'AB12']]);
  });

  it('adds the NSS database step, unprivileged, when certutil and a database exist', () => {
    const plan = planTrust('install', facts({ nss: { db: '/home/u/.pki/nssdb', trusted: false } }));
    expect(plan.steps.at(-1)).toEqual({
      store: 'nss',
      argv: ['certutil', '-A', '-d', 'sql:/home/u/.pki/nssdb', '-t', 'C,,', '-n', 'mimo-proxy', '-i', '/home/u/my certs/ca.pem'],
      privileged: false,
    });
    expect(argvs(facts({ systemTrusted: true, nss: { db: '/d', trusted: true } }), 'uninstall').at(-1)).toEqual(['certutil', '-D', '-d', 'sql:/d', '-n', 'mimo-proxy']);
  });

  it('says "already installed" and runs nothing the second time', () => {
    const plan = planTrust('install', facts({ systemTrusted: true, nss: { db: '/d', trusted: true } }));
    expect(plan.steps).toEqual([]);
    expect(plan.notes).toEqual(['already installed in the Debian/Ubuntu trust store (/usr/local/share/ca-certificates/mimo-proxy.crt)', 'already installed in the NSS database /d']);
    expect(planTrust('uninstall', facts({})).notes[0]).toMatch(/^not installed/);
  });

  it('explains an unknown Linux or OS instead of guessing, and still handles NSS', () => {
    const plan = planTrust('install', facts({ linuxStore: undefined, nss: { db: '/d', trusted: false } }));
    expect(plan.unsupported).toMatch(/no known system trust store on this Linux.*\/home\/u\/my certs\/ca\.pem/);
    expect(plan.steps.map((s) => s.store)).toEqual(['nss']);
    expect(planTrust('install', facts({ platform: 'aix' })).unsupported).toMatch(/no known trust store on aix/);
  });

  it('prints commands the way a user would type them', () => {
    expect(formatCommand(['install', '-m', '0644', "/a b/it's.pem", '/x/y.crt'], 'linux')).toBe(`install -m 0644 '/a b/it'\\''s.pem' /x/y.crt`);
    expect(formatCommand(['certutil', '-addstore', '-f', 'ROOT', 'C:\\My Certs\\ca.pem'], 'win32')).toBe('certutil -addstore -f ROOT "C:\\My Certs\\ca.pem"');
  });
});
