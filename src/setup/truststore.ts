/**
 * Installing our CA in the OS trust store, for clients that read only that
 * (VS Code's extensions, browsers). `planTrust` is pure: facts about the
 * machine in, the commands to run out; `gatherTrustFacts` is the only part
 * that looks at the machine. Modelled on mkcert's truststore_*.go.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { splitPemCertificates } from './bundle.js';

export type TrustAction = 'install' | 'uninstall';

export interface LinuxStore {
  name: string;
  anchorDir: string;
  /** The file name our CA gets in anchorDir. */
  fileName: string;
  /** Rebuilds the system bundle from the anchors. */
  refresh: string[];
}

/** The anchor folders mkcert knows, in its order (truststore_linux.go); the first that exists is the store. */
export const LINUX_STORES: readonly LinuxStore[] = [
  { name: 'Fedora/RHEL', anchorDir: '/etc/pki/ca-trust/source/anchors', fileName: 'mimo-proxy.pem', refresh: ['update-ca-trust', 'extract'] },
  { name: 'Debian/Ubuntu', anchorDir: '/usr/local/share/ca-certificates', fileName: 'mimo-proxy.crt', refresh: ['update-ca-certificates'] },
  { name: 'Arch', anchorDir: '/etc/ca-certificates/trust-source/anchors', fileName: 'mimo-proxy.crt', refresh: ['trust', 'extract-compat'] },
  { name: 'openSUSE', anchorDir: '/usr/share/pki/trust/anchors', fileName: 'mimo-proxy.pem', refresh: ['update-ca-certificates'] },
];

export const MACOS_SYSTEM_KEYCHAIN = '/Library/Keychains/System.keychain';
/** The nickname of our CA in an NSS database (Firefox, Chromium on Linux). */
export const NSS_NICKNAME = 'mimo-proxy';
/** A trust-store query runs a local tool; it answers at once or is stuck. */
export const CHECK_TIMEOUT_MS = 10_000;

export interface TrustFacts {
  platform: NodeJS.Platform;
  /** undefined where we cannot tell (Windows: we try, and explain on failure). */
  isRoot: boolean | undefined;
  caPath: string;
  /** SHA-1 of the CA's DER, hex without colons: how macOS and Windows name a certificate. */
  caSha1: string;
  /** Linux only: the first anchor folder that exists. */
  linuxStore: LinuxStore | undefined;
  /** This very certificate is already in the OS store. */
  systemTrusted: boolean;
  /** NSS's certutil is on PATH and the user has a database (~/.pki/nssdb). */
  nss: { db: string; trusted: boolean } | undefined;
}

export interface TrustStep {
  store: 'system' | 'nss';
  argv: string[];
  /** Needs root (sudo) or an administrator prompt. */
  privileged: boolean;
}

export interface TrustPlan {
  steps: TrustStep[];
  /** One line each: what is already done, what was skipped. */
  notes: string[];
  /** Set when the OS store cannot be handled here: why, and what to do by hand. */
  unsupported: string | undefined;
}

function systemSteps(action: TrustAction, facts: TrustFacts): { steps: TrustStep[]; unsupported?: string; where: string } {
  const privileged = true;
  switch (facts.platform) {
    case 'linux': {
      const store = facts.linuxStore;
      if (!store) {
        return {
          steps: [],
          where: 'the system trust store',
          unsupported: `no known system trust store on this Linux (looked for ${LINUX_STORES.map((s) => s.anchorDir).join(', ')}); add ${facts.caPath} to it by hand`,
        };
      }
      const target = path.posix.join(store.anchorDir, store.fileName);
      const copy = action === 'install' ? ['install', '-m', '0644', facts.caPath, target] : ['rm', '-f', target];
      return { steps: [{ store: 'system', argv: copy, privileged }, { store: 'system', argv: store.refresh, privileged }], where: `the ${store.name} trust store (${target})` };
    }
    case 'darwin': {
      const steps: TrustStep[] =
        action === 'install'
          ? [{ store: 'system', argv: ['security', 'add-trusted-cert', '-d', '-r', 'trustRoot', '-k', MACOS_SYSTEM_KEYCHAIN, facts.caPath], privileged }]
          : [
              { store: 'system', argv: ['security', 'remove-trusted-cert', '-d', facts.caPath], privileged },
              { store: 'system', argv: ['security', 'delete-certificate', '-Z', facts.caSha1, MACOS_SYSTEM_KEYCHAIN], privileged },
            ];
      return { steps, where: `the macOS System keychain` };
    }
    case 'win32': {
      const argv = action === 'install' ? ['certutil', '-addstore', '-f', 'ROOT', facts.caPath] : ['certutil', '-delstore', 'ROOT', facts.caSha1];
      return { steps: [{ store: 'system', argv, privileged }], where: 'the Windows ROOT store' };
    }
    default:
      return { steps: [], where: 'the system trust store', unsupported: `no known trust store on ${facts.platform}; add ${facts.caPath} to it by hand` };
  }
}

/** The commands that install or uninstall our CA, given what the machine looks like. Pure. */
export function planTrust(action: TrustAction, facts: TrustFacts): TrustPlan {
  const steps: TrustStep[] = [];
  const notes: string[] = [];
  const system = systemSteps(action, facts);
  if (system.unsupported === undefined) {
    if (action === 'install' && facts.systemTrusted) notes.push(`already installed in ${system.where}`);
    else if (action === 'uninstall' && !facts.systemTrusted) notes.push(`not installed in ${system.where}`);
    else steps.push(...system.steps);
  }
  if (facts.nss) {
    const db = `sql:${facts.nss.db}`;
    if (action === 'install' && facts.nss.trusted) notes.push(`already installed in the NSS database ${facts.nss.db}`);
    else if (action === 'uninstall' && !facts.nss.trusted) notes.push(`not installed in the NSS database ${facts.nss.db}`);
    else if (action === 'install') steps.push({ store: 'nss', argv: ['certutil', '-A', '-d', db, '-t', 'C,,', '-n', NSS_NICKNAME, '-i', facts.caPath], privileged: false });
    else steps.push({ store: 'nss', argv: ['certutil', '-D', '-d', db, '-n', NSS_NICKNAME], privileged: false });
  }
  return { steps, notes, unsupported: system.unsupported };
}

/** A command as a user would type it (POSIX quoting; double quotes on Windows). */
export function formatCommand(argv: readonly string[], platform: NodeJS.Platform): string {
  return argv
    .map((arg) => {
      if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
      if (platform === 'win32') return `"${arg.replaceAll('"', '""')}"`;
      return `'${arg.replaceAll("'", `'\\''`)}'`;
    })
    .join(' ');
}

/** Compare by certificate, not by bytes: line endings and comments may differ. */
function samePem(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const key = (text: string): string => splitPemCertificates(text).join('');
  const left = key(a);
  return left !== '' && left === key(b);
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Runs a query tool; its stdout, or undefined when it fails or is missing. */
function query(argv: readonly string[]): string | undefined {
  try {
    return execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: CHECK_TIMEOUT_MS });
  } catch {
    return undefined;
  }
}

/** A program on PATH (no shell involved). */
export function onPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // Not in this folder.
    }
  }
  return undefined;
}

/** Looks at this machine: which store, whether our CA is already in it, whether NSS is there. */
export function gatherTrustFacts(caPath: string, caPem: string, env: NodeJS.ProcessEnv = process.env): TrustFacts {
  const platform = process.platform;
  const caSha1 = new X509Certificate(caPem).fingerprint.replaceAll(':', '');
  const isRoot = typeof process.getuid === 'function' ? process.getuid() === 0 : undefined;
  const linuxStore = platform === 'linux' ? LINUX_STORES.find((s) => existsSync(s.anchorDir)) : undefined;

  let systemTrusted = false;
  if (platform === 'linux' && linuxStore) systemTrusted = samePem(readText(path.posix.join(linuxStore.anchorDir, linuxStore.fileName)), caPem);
  else if (platform === 'darwin') systemTrusted = query(['security', 'verify-cert', '-c', caPath]) !== undefined;
  else if (platform === 'win32') systemTrusted = query(['certutil', '-verifystore', 'ROOT', caSha1]) !== undefined;

  let nss: TrustFacts['nss'];
  // On Windows `certutil` is Microsoft's, not NSS's.
  const db = path.join(env.HOME ?? os.homedir(), '.pki', 'nssdb');
  if (platform !== 'win32' && onPath('certutil', env.PATH) && existsSync(path.join(db, 'cert9.db'))) {
    nss = { db, trusted: samePem(query(['certutil', '-L', '-d', `sql:${db}`, '-n', NSS_NICKNAME, '-a']), caPem) };
  }
  return { platform, isRoot, caPath, caSha1, linuxStore, systemTrusted, nss };
}
