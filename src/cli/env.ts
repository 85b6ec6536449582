/**
 * `mimo-proxy env`: print shell code that points this shell's clients at the
 * proxy and our CA (`eval "$(mimo-proxy env)"`), or gives back what was there
 * before (`--unset`). Only shell code goes to stdout; messages go to stderr.
 */
import path from 'node:path';
import {
  activationScript,
  deactivationOps,
  deactivationScript,
  DEACTIVATE_FUNCTION,
  detectShell,
  originalEnvironment,
  previousCaFiles,
  SHELLS,
  type ActivationTarget,
  type Environment,
  type Shell,
} from '../setup/activation.js';
import { BUNDLE_FILE, ensureBundle, type Bundle } from '../setup/bundle.js';
import { loadOrCreateCa, type CertificateAuthority } from '../ca/index.js';
import type { ProxyConfig } from '../config.js';
import { formatHostPort } from '../net/connect-target.js';
import { MimoProxyError } from '../errors.js';
import { caRenewCommand } from '../providers.js';
import type { CommandIo } from './io.js';
import { OPTIONS, parseArgs, resolveConfig, withEnvironment } from './options.js';
import { clientHost, portTaken, probeProxy, startCommandFor } from './status.js';

/** The options that say where the proxy and its CA are (also read from MIMO_PROXY_*). */
const WHERE_OPTIONS = { host: OPTIONS.host!, port: OPTIONS.port!, certs: OPTIONS.certs!, hosts: OPTIONS.hosts!, providers: OPTIONS.providers!, auth: OPTIONS.auth! };

const ENV_OPTIONS = {
  ...WHERE_OPTIONS,
  shell: { kind: 'string' as const, help: 'bash|zsh|fish|powershell|cmd (default: from $SHELL)' },
  unset: { kind: 'bool' as const, help: 'print the code that restores the previous values' },
};

/** A probe of a proxy that is not there costs a refused connection; this bounds a wedged one. */
const ENV_PROBE_TIMEOUT_MS = 500;

export interface Activation {
  target: ActivationTarget;
  ca: CertificateAuthority;
  bundle: Bundle;
}

/** The proxy URL clients use (with USER:PASS when --auth is set) and the same without credentials. */
export function proxyUrls(config: Pick<ProxyConfig, 'host' | 'port' | 'auth'>): { proxyUrl: string; marker: string } {
  const where = formatHostPort(clientHost(config.host), config.port);
  let credentials = '';
  if (config.auth !== undefined) {
    const colon = config.auth.indexOf(':');
    credentials = `${encodeURIComponent(config.auth.slice(0, colon))}:${encodeURIComponent(config.auth.slice(colon + 1))}@`;
  }
  return { proxyUrl: `http://${credentials}${where}`, marker: `http://${where}` };
}

/** The CA (created if missing) and the bundle built from what `env` trusted before activation. */
export async function prepareActivation(config: ProxyConfig, env: Environment): Promise<Activation> {
  const ca = await loadOrCreateCa({ dir: config.certsDir, domains: config.domains, renewCommand: caRenewCommand(config) });
  const files = previousCaFiles(originalEnvironment(env));
  const bundle = await ensureBundle({ bundlePath: path.join(config.certsDir, BUNDLE_FILE), caPem: ca.caPem, ...files });
  return { target: { ...proxyUrls(config), caPath: ca.caCertPath, bundlePath: bundle.path }, ca, bundle };
}

/**
 * Warnings about the CA and the proxy on the port (none yet, another CA).
 * Throws PORT_TAKEN when what holds the port is not a mimo-proxy this
 * version can use: a shell sent there would reach no working proxy.
 */
export async function activationWarnings(activation: Activation, config: ProxyConfig, timeoutMs: number): Promise<string[]> {
  const warnings: string[] = [];
  const expiry = activation.ca.expiryWarning();
  if (expiry) warnings.push(expiry);
  for (const file of activation.bundle.unreadable) warnings.push(`${file} (named by a CA variable) could not be read; its certificates are not in ${activation.bundle.path}`);
  const host = clientHost(config.host);
  const where = formatHostPort(host, config.port);
  const probe = await probeProxy(host, config.port, timeoutMs);
  if (probe.kind === 'nothing') {
    warnings.push(`nothing listens on ${where} yet: HTTPS from this shell fails until you start the proxy (${startCommandFor(config.port)})`);
  } else if (probe.kind === 'other') {
    throw portTaken(where, probe);
  } else if (probe.report.ca.fingerprint256 !== activation.ca.fingerprint256) {
    warnings.push(`the proxy on ${where} uses another CA (${probe.report.ca.path}); pass the --certs folder it was started with`);
  }
  return warnings;
}

function pickShell(value: unknown, io: CommandIo): Shell {
  if (value === undefined) return detectShell(io.env.SHELL, io.platform);
  if (typeof value === 'string' && (SHELLS as readonly string[]).includes(value)) return value as Shell;
  throw new MimoProxyError('BAD_OPTION', `--shell ${JSON.stringify(value)} is not valid`, `pass one of ${SHELLS.join(', ')}`);
}

function undoHint(shell: Shell): string {
  if (shell === 'cmd') return `for /f "delims=" %i in ('npx mimo-proxy env --shell cmd --unset') do @%i`;
  return DEACTIVATE_FUNCTION;
}

export async function envCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { options, rest } = parseArgs(argv, ENV_OPTIONS);
  if (rest.length > 0) throw new MimoProxyError('BAD_ARGUMENT', `unexpected argument ${JSON.stringify(rest[0])}`, 'run mimo-proxy env [--shell bash|zsh|fish|powershell|cmd] [--unset] [--port P]');
  const shell = pickShell(options.shell, io);

  if (options.unset === true) {
    if (deactivationOps(io.env).length === 0) io.stderr('mimo-proxy: this shell is not activated (no saved variables); nothing to undo\n');
    io.stdout(deactivationScript(shell, io.env));
    return 0;
  }

  const { shell: _shell, unset: _unset, ...where } = options;
  const config = resolveConfig(withEnvironment(where, io.env, WHERE_OPTIONS));
  if (config.port === 0) throw new MimoProxyError('BAD_OPTION', '--port 0 names no proxy', 'pass the port the proxy listens on (mimo-proxy start prints it)');
  const activation = await prepareActivation(config, io.env);
  let script: string;
  try {
    script = activationScript(shell, io.env, activation.target);
  } catch (err) {
    throw new MimoProxyError('ENV_UNQUOTABLE', (err as Error).message, 'use another shell, or unset that variable first');
  }
  // Everything that can fail comes first: `eval "$(mimo-proxy env)"` runs whatever reached stdout, exit code or not.
  const warnings = await activationWarnings(activation, config, ENV_PROBE_TIMEOUT_MS);
  io.stdout(script);
  for (const warning of warnings) io.stderr(`mimo-proxy: warning: ${warning}\n`);
  io.stderr(
    `mimo-proxy: this shell now goes through ${activation.target.marker}; CA ${activation.target.caPath}; ` +
      `bundle ${activation.bundle.path} (${activation.bundle.certificates} certificates: ${activation.bundle.sources.join(', ')} + ours). Undo: ${undoHint(shell)}\n`,
  );
  if (shell === 'cmd') io.stderr('mimo-proxy: cmd has no functions, so there is no mimo_proxy_deactivate; the command above undoes it\n');
  return 0;
}
