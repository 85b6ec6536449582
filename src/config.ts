/**
 * What a running proxy is configured with. Built and validated once, at
 * startup, by cli/options.ts (flags, then MIMO_PROXY_* variables, then
 * defaults); everything after trusts it. A leaf: types only, so the proxy,
 * the reasoning core and the CLI can all name it.
 */
import type { ConnectToRule } from './net/connect-to.js';
import type { LogLevel } from './log.js';

export type Degrade = 'placeholder' | 'flatten';

export interface ProxyConfig {
  host: string;
  port: number;
  certsDir: string;
  dataDir: string;
  /** Every domain intercepted: the enabled providers' domains together. */
  domains: string[];
  /** The enabled providers (--providers), in order, each with its domains (MiMo's from --hosts). */
  providers: { id: string; domains: string[] }[];
  upstream: URL;
  connectTo: ConnectToRule[];
  upstreamCaFile: string | undefined;
  /** The --upstream-ca file's text; every certificate block in it parsed at startup. */
  upstreamCaPem: string | undefined;
  logLevel: LogLevel;
  /** Upstream idle timeout: no byte for this long ends the request with a 504. */
  timeoutMs: number;
  degrade: Degrade;
  maxBodyBytes: number;
  cacheMax: number;
  cacheMaxBytes: number;
  cacheTtlMs: number;
  persist: boolean;
  /** --store: a redis:// or rediss:// URL shared by several proxies; undefined: SQLite in dataDir (or memory only). */
  store: URL | undefined;
  /** With --auth, /metrics is open anyway (--metrics-open). */
  metricsOpen: boolean;
  /** `USER:PASS` required as Proxy-Authorization (Basic); required for a non-loopback --host. */
  auth: string | undefined;
}
