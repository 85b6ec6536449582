#!/usr/bin/env node
/**
 * The `mimo-proxy` command: check the Node version, then dispatch to one file
 * per subcommand, each imported only when it runs. `env` runs in every
 * `eval "$(mimo-proxy env)"`, so it must not load the proxy; `--help` and
 * `--version` load next to nothing. The static imports here stay plain enough
 * for an old Node to reach the version check and say so in one line.
 */
import module from 'node:module';
import { MimoProxyError } from '../errors.js';
import { nodeTooOld, VERSION } from '../version.js';
import { processIo, type CommandIo } from './io.js';

// V8 keeps the compiled code of the modules loaded below in the OS temp folder, so later runs
// skip compiling them. NODE_DISABLE_COMPILE_CACHE=1 turns it off. Node before 22.1 has no such
// function (and is refused below).
module.enableCompileCache?.();

/**
 * V8 settings `start` runs with, so the shipped command stays small with no flag from the user
 * (README, Performance). The proxy makes short-lived garbage per request and per chunk, and
 * keeps a live heap of a few tens of MiB (the cache):
 *  - a young generation of 2 MiB semi-spaces instead of V8's default of up to 16 MiB each:
 *    with the default, V8 grows the young generation and the allocator keeps the pages;
 *  - the old generation grows by 50% of its live size at each full collection, where V8 lets
 *    a small heap grow up to fourfold: after 15,000 requests RSS is about 145 MiB instead of
 *    200, for about 8% more CPU per request. It is a growth step, not a limit: the heap still
 *    grows as far as the data needs.
 */
export const START_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--heap-growing-percent=50'];

/**
 * Restarts `start` in this same process (execve: same pid, stdio and environment, nothing left
 * running beside it) with START_NODE_FLAGS, which V8 reads only when the process begins. A
 * flag the user already gave, on the command line or in NODE_OPTIONS, is kept as given. Where
 * execve is unavailable (Windows), the proxy runs with V8's defaults.
 */
function withStartFlags(argv: readonly string[]): void {
  if (argv[0] !== 'start' || process.platform === 'win32' || typeof process.execve !== 'function' || process.argv[1] === undefined) return;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const missing = START_NODE_FLAGS.filter((flag) => !given.some((g) => g.split('=')[0]?.replaceAll('_', '-') === flag.split('=')[0]));
  if (missing.length === 0) return;
  try {
    process.execve(process.execPath, [process.execPath, ...missing, ...process.execArgv, process.argv[1], ...argv], process.env);
  } catch {
    // Not replaced: it runs on with V8's defaults.
  }
}

type Command = (argv: readonly string[], io: CommandIo) => Promise<number>;

const COMMANDS = new Map<string, () => Promise<Command>>([
  ['start', async () => (await import('./start.js')).startCommand],
  ['env', async () => (await import('./env.js')).envCommand],
  ['run', async () => (await import('./run.js')).runCommand],
  ['ca', async () => (await import('./ca.js')).caCommand],
  ['status', async () => (await import('./status.js')).statusCommand],
]);

async function usage(): Promise<string> {
  const { optionsHelp } = await import('./options.js');
  return `mimo-proxy ${VERSION}: puts MiMo's reasoning_content back into agent conversations.
A local HTTPS proxy that intercepts only *.xiaomimimo.com (and the --providers you enable);
clients keep their MiMo URL.

Usage:
  mimo-proxy start [options]            run the proxy (default 127.0.0.1:8899)
  mimo-proxy env [--shell S] [--unset]  print shell code that sends this shell's clients through it
  mimo-proxy run [options] -- CMD ARGS  run one command through it (starts one if none is running)
  mimo-proxy ca [--pem|--install|--uninstall|--renew]  the CA's path, PEM, OS trust store install, or a new CA
  mimo-proxy status [--port P]          what a running proxy is doing

Examples:
  npx mimo-proxy start
  npx mimo-proxy start --port 0 --degrade flatten
  eval "$(npx mimo-proxy env)"                       (fish: npx mimo-proxy env --shell fish | source)
  npx mimo-proxy env --shell powershell | Invoke-Expression
  npx mimo-proxy run -- claude
  npx mimo-proxy ca --install
  curl -x http://127.0.0.1:8899 --cacert certs/ca.pem https://api.xiaomimimo.com/v1/models -H "Authorization: Bearer $KEY"

Options (each also MIMO_PROXY_<NAME>, e.g. MIMO_PROXY_PORT=9000):
${optionsHelp()}
`;
}

async function main(argv: readonly string[], io: CommandIo): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout(await usage());
      return 0;
    case '--version':
    case '-v':
    case 'version':
      io.stdout(`${VERSION}\n`);
      return 0;
  }
  const load = COMMANDS.get(command);
  if (load === undefined) {
    io.stderr(`${new MimoProxyError('BAD_ARGUMENT', `unknown command ${JSON.stringify(command)}`, 'run mimo-proxy --help').format()}\n`);
    return 2;
  }
  return (await load())(rest, io);
}

function fail(message: string): void {
  process.stderr.write(`${message}\n`);
  process.exitCode = 1;
}

const tooOld = nodeTooOld();
if (tooOld !== undefined) {
  fail(new MimoProxyError('NODE_TOO_OLD', tooOld).format());
} else {
  withStartFlags(process.argv.slice(2));
  main(process.argv.slice(2), processIo()).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => fail(err instanceof MimoProxyError ? err.format() : `ERROR: ${(err as Error)?.message ?? String(err)}`),
  );
}
