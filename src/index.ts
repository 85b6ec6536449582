/**
 * The public API of the mimo-proxy package (`main`/`types` in package.json):
 * build a configuration the way the CLI does, and start a proxy with it.
 * Importing this module starts nothing, reads no environment and writes
 * nothing.
 *
 *   import { parseArgs, resolveConfig, startProxy, createLogger } from 'mimo-proxy';
 *   const config = resolveConfig(parseArgs(['--port', '0']).options);
 *   const proxy = await startProxy(config, createLogger(config.logLevel));
 *   // ... proxy.url, proxy.ca.caCertPath ... then: await proxy.close();
 */
export { startProxy, CONNECTION_LIMITS, type ConnectionLimits, type RunningProxy } from './proxy/server.js';
export { OPTIONS, parseArgs, resolveConfig, withEnvironment, type OptionSpec, type RawOptions } from './cli/options.js';
export type { Degrade, ProxyConfig } from './config.js';
export { ERRORS, MimoProxyError, type ErrorCode } from './errors.js';
export { createLogger, silentLogger, LOG_LEVELS, type Logger, type LogLevel } from './log.js';
export type { StatusReport } from './proxy/local.js';
export type { Counters } from './stats.js';
export { VERSION } from './version.js';
