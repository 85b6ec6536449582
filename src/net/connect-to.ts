/**
 * Upstream routing overrides in curl's `--connect-to HOST:PORT:HOST2:PORT2`
 * syntax: traffic for HOST:PORT goes to HOST2:PORT2, while HOST stays the
 * name that the upstream certificate is verified against (and the Host
 * header). An empty HOST or PORT matches any; an empty HOST2 or PORT2 keeps
 * the original. IPv6 literals go in brackets. Pure.
 */
import { MimoProxyError } from '../errors.js';
import { normaliseHost } from './hosts.js';

export interface ConnectToRule {
  host: string | undefined;
  port: number | undefined;
  toHost: string | undefined;
  toPort: number | undefined;
}

export interface Destination {
  host: string;
  port: number;
}

/** One field: `[v6]`, a name, or empty. Nothing that could smuggle a path, userinfo or a header. */
const HOST_FIELD = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)$/;

function splitFields(spec: string): string[] {
  const fields: string[] = [];
  let current = '';
  let inBracket = false;
  for (const ch of spec) {
    if (ch === '[') inBracket = true;
    if (ch === ']') inBracket = false;
    if (ch === ':' && !inBracket) {
      fields.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  fields.push(current);
  return fields;
}

function parsePort(text: string, spec: string): number | undefined {
  if (text === '') return undefined;
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new MimoProxyError('BAD_OPTION', `--connect-to ${JSON.stringify(spec)} has an invalid port ${JSON.stringify(text)}`, 'use HOST:PORT:HOST2:PORT2 with ports from 1 to 65535, e.g. api.xiaomimimo.com:443:127.0.0.1:8443');
  }
  return port;
}

export function parseConnectTo(spec: string): ConnectToRule {
  const fields = splitFields(spec);
  const bad = (why: string): MimoProxyError =>
    new MimoProxyError('BAD_OPTION', `--connect-to ${JSON.stringify(spec)} ${why}`, 'use HOST:PORT:HOST2:PORT2, e.g. api.xiaomimimo.com:443:127.0.0.1:8443');
  if (fields.length !== 4) throw bad('must have four colon-separated fields');
  const [host = '', port = '', toHost = '', toPort = ''] = fields;
  for (const h of [host, toHost]) {
    if (!HOST_FIELD.test(h)) throw bad(`has an invalid host ${JSON.stringify(h)}`);
  }
  return {
    host: host === '' ? undefined : normaliseHost(host),
    port: parsePort(port, spec),
    toHost: toHost === '' ? undefined : normaliseHost(toHost),
    toPort: parsePort(toPort, spec),
  };
}

/** The first matching rule decides, as in curl. */
export function resolveDestination(rules: readonly ConnectToRule[], host: string, port: number): Destination {
  const h = normaliseHost(host);
  for (const rule of rules) {
    if ((rule.host === undefined || rule.host === h) && (rule.port === undefined || rule.port === port)) {
      return { host: rule.toHost ?? h, port: rule.toPort ?? port };
    }
  }
  return { host: h, port };
}
