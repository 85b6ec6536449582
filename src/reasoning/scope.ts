/**
 * The credential scope: which API key a request was made with, as a hash.
 * Reasoning learned under one key is only ever restored into requests made
 * with the same key, so one user's thoughts never reach another's
 * conversation. The raw key is hashed here and dropped; it is never stored
 * or logged. Pure.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Requests that carry no credential at all share this scope. */
export const ANONYMOUS_SCOPE = 'anonymous';

// A fixed prefix so a scope hash is never the plain sha256 of a key that
// might be looked up elsewhere (domain separation).
const SCOPE_PREFIX = 'mimo-proxy-scope\0';

// 32 hex chars = 128 bits: collisions are out of reach, and the string stays short.
const SCOPE_HEX_CHARS = 32;

function firstValue(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  const trimmed = text?.trim();
  return trimmed ? trimmed : undefined;
}

/** The API key of a request: `Authorization: Bearer KEY`, else `api-key`, else `x-api-key`. */
function credentialOf(headers: IncomingHttpHeaders): string | undefined {
  const authorization = firstValue(headers.authorization);
  const bearer = authorization === undefined ? undefined : /^bearer\s+(\S+)$/i.exec(authorization)?.[1];
  if (bearer !== undefined) return bearer;
  const apiKey = firstValue(headers['api-key']) ?? firstValue(headers['x-api-key']);
  if (apiKey !== undefined) return apiKey;
  // Another scheme (e.g. Basic) is still a credential: scoping by its whole
  // value keeps two such users apart, where 'anonymous' would merge them.
  // A bare "Bearer" carries no key at all.
  return authorization === undefined || /^bearer$/i.test(authorization) ? undefined : authorization;
}

export function credentialScope(headers: IncomingHttpHeaders): string {
  const key = credentialOf(headers);
  if (key === undefined) return ANONYMOUS_SCOPE;
  const digest = createHash('sha256').update(SCOPE_PREFIX + key, 'utf8').digest('hex');
  return `k:${digest.slice(0, SCOPE_HEX_CHARS)}`;
}
