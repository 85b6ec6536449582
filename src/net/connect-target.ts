/**
 * The target of a CONNECT request: `host:port`, `[v6]:port`. Anything else
 * (userinfo, a path, spaces, CR/LF, a missing or out-of-range port) is
 * refused before a socket is opened. Pure.
 */
import { isIP } from 'node:net';
import { normaliseHost } from './hosts.js';

export interface ConnectTarget {
  host: string;
  port: number;
}

const TARGET = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;

export function parseConnectTarget(url: string | undefined): ConnectTarget | undefined {
  const m = TARGET.exec(url ?? '');
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!(port >= 1 && port <= 65535)) return undefined;
  const host = normaliseHost(m[1] as string);
  if (m[1]?.startsWith('[') && isIP(host) !== 6) return undefined;
  if (host === '' || host.startsWith('.') || host.includes('..')) return undefined;
  return { host, port };
}

/** `host:port` for messages, with IPv6 in brackets. */
export function formatHostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}
