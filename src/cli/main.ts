#!/usr/bin/env node
/** The `mimo-proxy` command: dispatch to one file per subcommand. */
import { MimoProxyError } from '../errors.js';
import { VERSION } from '../proxy/server.js';
import { startCommand } from './start.js';
import { caCommand } from './ca.js';
import { envCommand, processIo } from './env.js';
import { optionsHelp } from './options.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';

const USAGE = `mimo-proxy ${VERSION}: puts MiMo's reasoning_content back into agent conversations.
A local HTTPS proxy that intercepts only *.xiaomimimo.com; clients keep their MiMo URL.

Usage:
  mimo-proxy start [options]            run the proxy (default 127.0.0.1:8899)
  mimo-proxy env [--shell S] [--unset]  print shell code that sends this shell's clients through it
  mimo-proxy run [options] -- CMD ARGS  run one command through it (starts one if none is running)
  mimo-proxy ca [--pem|--install|--uninstall]  the CA's path, PEM, or OS trust store install
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

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    case '--version':
    case '-v':
    case 'version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case 'start':
      return startCommand(rest);
    case 'env':
      return envCommand(rest, processIo());
    case 'run':
      return runCommand(rest, processIo());
    case 'ca':
      return caCommand(rest, processIo());
    case 'status':
      return statusCommand(rest, processIo());
    default:
      process.stderr.write(`ERROR: unknown command ${JSON.stringify(command)}. Fix: run mimo-proxy --help\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof MimoProxyError) {
      process.stderr.write(`${err.format()}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`ERROR: ${(err as Error).message ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
