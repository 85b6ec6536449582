/** `mimo-proxy start`: run the proxy in the foreground until SIGINT/SIGTERM. */
import { MimoProxyError } from '../errors.js';
import { createLogger } from '../log.js';
import { startProxy } from '../proxy/server.js';
import { VERSION } from '../version.js';
import type { CommandIo } from './io.js';
import { parseArgs, resolveConfig, withEnvironment } from './options.js';

export async function startCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const { options, rest } = parseArgs(argv);
  if (rest.length > 0) throw new MimoProxyError('BAD_ARGUMENT', `unexpected argument ${JSON.stringify(rest[0])}`, 'run mimo-proxy start [options] (options: mimo-proxy --help)');
  const config = resolveConfig(withEnvironment(options, io.env));
  const log = createLogger(config.logLevel);
  const proxy = await startProxy(config, log);
  // One request's bug must not take every other conversation down with it.
  process.on('unhandledRejection', (err) => log.error('internal error; the proxy keeps serving', { error: (err as Error)?.name ?? typeof err }));

  // Handlers first, banner second: until a listener exists the OS default for SIGTERM applies,
  // and whoever reads the banner may send it at once.
  const stopped = new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      log.info('stopping', { signal });
      proxy.close().then(() => resolve(0), () => resolve(1));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

  io.stdout(`mimo-proxy ${VERSION} listening on ${proxy.url}\n`);
  io.stdout(`  providers:      ${config.providers.map((provider) => provider.id).join(', ')}\n`);
  io.stdout(`  intercepting ${config.domains.join(', ')} and subdomains; all other hosts are tunnelled untouched\n`);
  io.stdout(`  CA certificate: ${proxy.ca.caCertPath}\n  CA SHA-256:     ${proxy.ca.fingerprint256}\n`);
  // A Redis --store replaces the file in --data: name it (host:port/db, never its password).
  const { store } = proxy.status();
  const kept = store.kind === 'redis' ? `shared on ${store.where}` : config.persist ? `persistent in ${config.dataDir}` : 'memory only (--no-persist)';
  io.stdout(`  reasoning cache: ${kept}; on a miss: ${config.degrade}\n`);
  io.stdout(`  direct mode:    ${proxy.url}/v1 as a base URL forwards to ${config.upstream.href}\n`);
  io.stdout(`\nActivate a shell (every client started from it goes through the proxy):\n`);
  io.stdout(`  eval "$(npx mimo-proxy env --port ${proxy.port})"\n`);
  io.stdout(`Or one command:  npx mimo-proxy run --port ${proxy.port} -- <command>\n`);
  io.stdout(`Status: ${proxy.url}/   Stop: Ctrl-C\n`);

  return stopped;
}
