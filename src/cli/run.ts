/**
 * `mimo-proxy run [options] -- CMD ARGS...`: one command with the activation
 * variables set on it alone (like `aws-vault exec`, `op run --`). Uses the
 * proxy on the port when one answers, else runs one in-process for the
 * command's lifetime. The exit code is the command's (128+N for signal N).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { activationValues, applyOps, type EnvOp } from '../setup/activation.js';
import type { ProxyConfig } from '../config.js';
import { formatHostPort } from '../net/connect-target.js';
import { MimoProxyError } from '../errors.js';
import { createLogger } from '../log.js';
import type { RunningProxy } from '../proxy/server.js';
import { activationWarnings, prepareActivation } from './env.js';
import type { CommandIo } from './io.js';
import { parseArgs, resolveConfig, withEnvironment } from './options.js';
import { clientHost, portTaken, probeProxy } from './status.js';

/** Signals a terminal or a supervisor sends us that the command should get too. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** The shell convention for "not found" and "found but not executable". */
const EXIT_NOT_FOUND = 127;
const EXIT_NOT_EXECUTABLE = 126;

export const RUN_USAGE = 'mimo-proxy run [--port P] [--host H] [--certs DIR] [start options] -- CMD ARGS...';

/** Split `[options] -- CMD ARGS` (parseArgs keeps `--` and what follows in rest). */
function splitCommand(rest: readonly string[]): string[] {
  const dash = rest.indexOf('--');
  if (dash > 0) throw new MimoProxyError('BAD_ARGUMENT', `unexpected argument ${JSON.stringify(rest[0])} before --`, `run ${RUN_USAGE}`);
  const command = dash === -1 ? [...rest] : rest.slice(dash + 1);
  if (dash === -1 && command.length > 0) throw new MimoProxyError('BAD_ARGUMENT', `put -- before the command (${command[0]})`, `run ${RUN_USAGE}`);
  if (command.length === 0) throw new MimoProxyError('BAD_ARGUMENT', 'no command to run', `run ${RUN_USAGE}, e.g. mimo-proxy run -- claude`);
  return command;
}

export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { options, rest } = parseArgs(argv);
  const [file, ...args] = splitCommand(rest) as [string, ...string[]];
  const raw = withEnvironment(options, io.env);
  // The command owns the terminal: the in-process proxy only speaks up for problems.
  raw['log-level'] ??= 'warn';
  const config = resolveConfig(raw);

  let proxy: RunningProxy | undefined;
  if (config.port !== 0) {
    const host = clientHost(config.host);
    const probe = await probeProxy(host, config.port);
    if (probe.kind === 'other') throw portTaken(formatHostPort(host, config.port), probe);
    if (probe.kind === 'nothing') proxy = await startInProcess(config);
  } else {
    proxy = await startInProcess(config);
  }

  try {
    const port = proxy?.port ?? config.port;
    const activation = await prepareActivation({ ...config, port }, io.env);
    if (!proxy) for (const warning of await activationWarnings(activation, { ...config, port }, 1000)) io.stderr(`mimo-proxy: warning: ${warning}\n`);
    const values = activationValues(io.env, activation.target);
    const ops: EnvOp[] = Object.entries(values).map(([name, value]) => ({ op: 'set', name, value }));
    return await runChild(file, args, applyOps(io.env, ops), io);
  } finally {
    await proxy?.close();
  }
}

/** The proxy for the command's lifetime; loaded only then, since a running one is the usual case. */
async function startInProcess(config: ProxyConfig): Promise<RunningProxy> {
  const { startProxy } = await import('../proxy/server.js');
  return startProxy(config, createLogger(config.logLevel));
}

/** Spawn with inherited stdio, forward signals, resolve with the exit code. */
export function runChild(file: string, args: readonly string[], env: Record<string, string>, io: CommandIo): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: 'inherit', env });
    const forwarders = FORWARDED_SIGNALS.map((signal) => {
      const forward = (): void => {
        // On a terminal, Ctrl-C already reached the child (the whole foreground process group
        // gets it): forwarding it again would make one press count twice.
        if (signal === 'SIGINT' && process.stdin.isTTY) return;
        child.kill(signal);
      };
      process.on(signal, forward);
      return () => process.off(signal, forward);
    });
    const done = (code: number): void => {
      for (const remove of forwarders) remove();
      resolve(code);
    };
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') {
        io.stderr(`ERROR: command not found: ${file}. Fix: check the name, or give its full path\n`);
        done(EXIT_NOT_FOUND);
      } else if (err.code === 'EACCES') {
        io.stderr(`ERROR: ${file} is not executable (EACCES). Fix: chmod +x it, or run it through its interpreter\n`);
        done(EXIT_NOT_EXECUTABLE);
      } else {
        io.stderr(`ERROR: could not start ${file}: ${err.message}\n`);
        done(EXIT_NOT_EXECUTABLE);
      }
    });
    child.once('exit', (code, signal) => {
      if (signal !== null) done(128 + (os.constants.signals[signal] ?? 0));
      else done(code ?? 1);
    });
  });
}
