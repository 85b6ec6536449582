/**
 * `mimo-proxy ca`: the CA's path (default), its PEM, or installing it in the
 * OS trust store (mkcert-style: prints each command first, safe to re-run).
 * The CA is created if missing. `--renew` makes a new one for the domains of
 * --providers and --hosts (a CA's name constraints are fixed when it is made),
 * keeping the old files aside and saying what to trust and remove by hand.
 */
import { execFileSync } from 'node:child_process';
import { CA_CERT_FILE, CA_KEY_FILE } from '../ca/authority.js';
import { loadOrCreateCa, renewCa, type Renewal } from '../ca/index.js';
import { caRenewCommand } from '../providers.js';
import { MimoProxyError } from '../errors.js';
import { formatCommand, gatherTrustFacts, planTrust, type TrustAction, type TrustFacts, type TrustPlan } from '../setup/truststore.js';
import type { CommandIo } from './io.js';
import { OPTIONS, parseArgs, resolveConfig, withEnvironment } from './options.js';

const CA_WHERE = { certs: OPTIONS.certs!, hosts: OPTIONS.hosts!, providers: OPTIONS.providers! };
const CA_OPTIONS = {
  ...CA_WHERE,
  path: { kind: 'bool' as const, help: 'print the path of ca.pem (the default)' },
  pem: { kind: 'bool' as const, help: 'print the CA certificate (PEM)' },
  install: { kind: 'bool' as const, help: 'add the CA to the OS trust store (and NSS)' },
  uninstall: { kind: 'bool' as const, help: 'remove it again' },
  renew: { kind: 'bool' as const, help: 'make a new CA for the domains of --providers and --hosts (the old files are kept aside)' },
  'dry-run': { kind: 'bool' as const, help: 'with --install/--uninstall: print the commands, run nothing' },
};

type CaAction = 'path' | 'pem' | 'renew' | TrustAction;
const ACTIONS: readonly CaAction[] = ['path', 'pem', 'install', 'uninstall', 'renew'];

export const CA_USAGE = 'mimo-proxy ca [--path | --pem | --install | --uninstall | --renew] [--dry-run] [--certs DIR] [--providers LIST] [--hosts LIST]';

function pickAction(options: Record<string, unknown>, rest: readonly string[]): CaAction {
  const chosen = ACTIONS.filter((a) => options[a] === true);
  for (const word of rest) {
    if (!(ACTIONS as readonly string[]).includes(word)) throw new MimoProxyError('BAD_ARGUMENT', `unexpected argument ${JSON.stringify(word)}`, `run ${CA_USAGE}`);
    chosen.push(word as CaAction);
  }
  const unique = [...new Set(chosen)];
  if (unique.length > 1) throw new MimoProxyError('BAD_ARGUMENT', `choose one of --${unique.join(', --')}`, `run ${CA_USAGE}`);
  return unique[0] ?? 'path';
}

export async function caCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { options, rest } = parseArgs(argv, CA_OPTIONS);
  const action = pickAction(options, rest);
  const { path: _p, pem: _m, install: _i, uninstall: _u, renew: _r, 'dry-run': dryRun, ...where } = options;
  const config = resolveConfig(withEnvironment(where, io.env, CA_WHERE));
  if (action === 'renew') {
    io.stdout(renewalReport(await renewCa({ dir: config.certsDir, domains: config.domains }), config.domains));
    return 0;
  }
  const ca = await loadOrCreateCa({ dir: config.certsDir, domains: config.domains, renewCommand: caRenewCommand(config) });
  const expiry = ca.expiryWarning();
  if (expiry) io.stderr(`mimo-proxy: warning: ${expiry}\n`);

  if (action === 'path') {
    io.stdout(`${ca.caCertPath}\n`);
    return 0;
  }
  if (action === 'pem') {
    io.stdout(ca.caPem.endsWith('\n') ? ca.caPem : `${ca.caPem}\n`);
    return 0;
  }
  const facts = gatherTrustFacts(ca.caCertPath, ca.caPem, io.env);
  const plan = planTrust(action, facts);
  return carryOut(action, plan, facts, dryRun === true, io, `${ca.caCertPath} (SHA-256 ${ca.fingerprint256}, expires ${ca.notAfter.toISOString().slice(0, 10)})`);
}

/** What `ca --renew` did, and what is left to the user: trust the new CA, untrust the old one. */
export function renewalReport({ ca, keptAside, kept, oldFingerprint256 }: Renewal, domains: readonly string[]): string {
  const lines = [
    `Made a new mimo-proxy CA for ${domains.join(', ')} (and subdomains): ${ca.caCertPath}`,
    `  SHA-256 ${ca.fingerprint256}, expires ${ca.notAfter.toISOString().slice(0, 10)}`,
    'Trust it again where you trusted the old one: npx mimo-proxy ca --install (the OS store),',
    '  eval "$(npx mimo-proxy env)" in each shell, and restart a running mimo-proxy.',
  ];
  if (keptAside !== undefined) {
    lines.push(
      keptLine(keptAside, kept, oldFingerprint256),
      'Remove the old CA from every trust store you added it to, by hand (mimo-proxy ca --uninstall',
      `  only knows the new one), then delete that folder: its key can still vouch for the old domains.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Which of the old files were kept aside, said as they were: a folder may have held only one of them. */
function keptLine(folder: string, kept: readonly string[], fingerprint: string | undefined): string {
  const ca = `The old CA${fingerprint ? ` (SHA-256 ${fingerprint})` : ''}`;
  if (!kept.includes(CA_KEY_FILE)) return `${ca} is kept in ${folder} (its key was not there).`;
  if (!kept.includes(CA_CERT_FILE)) return `The old CA's key is kept in ${folder} (its certificate was not there).`;
  return `${ca} and its key are kept in ${folder}.`;
}

/** Runs the plan's commands, printing each first; privileged ones are printed for sudo when we are not root. */
export function carryOut(action: TrustAction, plan: TrustPlan, facts: TrustFacts, dryRun: boolean, io: CommandIo, what: string): number {
  const say = (line: string): void => io.stdout(`${line}\n`);
  say(`${action === 'install' ? 'Installing' : 'Uninstalling'} the mimo-proxy CA ${what}`);
  for (const note of plan.notes) say(`  ${note}`);
  if (plan.unsupported) say(`  cannot: ${plan.unsupported}`);

  const forUser: string[] = [];
  let failed = false;
  let skipStore: string | undefined;
  for (const step of plan.steps) {
    if (step.store === skipStore) continue;
    const command = formatCommand(step.argv, facts.platform);
    const needsSudo = step.privileged && facts.isRoot === false;
    if (dryRun) {
      say(`  would run: ${needsSudo ? 'sudo ' : ''}${command}`);
      continue;
    }
    if (needsSudo) {
      forUser.push(`sudo ${command}`);
      continue;
    }
    say(`  $ ${command}`);
    try {
      execFileSync(step.argv[0] as string, step.argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
    } catch (err) {
      failed = true;
      skipStore = step.store;
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${step.argv[0]} is not installed` : `it failed (${(err as Error).message.split('\n')[0]})`;
      const fix = facts.platform === 'win32' && step.privileged ? 'run this again in a terminal opened with "Run as administrator"' : `run it by hand: ${command}`;
      io.stderr(`ERROR: could not update the ${step.store === 'nss' ? 'NSS database' : 'system trust store'}: ${why}. Fix: ${fix}\n`);
    }
  }
  if (dryRun) return 0;
  if (forUser.length > 0) {
    say(`\nThe system trust store needs root. Run:\n${forUser.map((c) => `  ${c}`).join('\n')}`);
    return 1;
  }
  if (failed || plan.unsupported) return 1;
  if (plan.steps.length > 0) {
    say(action === 'install' ? 'Done: the CA is trusted by the OS store (restart the editor or browser to pick it up).' : 'Done: the CA is no longer trusted by the OS store.');
    if (action === 'install') say('Command-line clients read variables instead: eval "$(npx mimo-proxy env)", or npx mimo-proxy run -- CMD');
  }
  return 0;
}
