/**
 * Content codings (RFC 9110 8.4): which ones a message was sent with, and
 * decoding them with Node's zlib, always bounded, always off the event loop's
 * critical path (threadpool work; no *Sync calls).
 *
 * The proxy asks upstream for `accept-encoding: identity`, but an upstream or
 * a middlebox may compress anyway, and some clients compress request bodies.
 * Known codings: gzip (and its alias x-gzip), deflate (the zlib format, as
 * RFC 9110 defines it), br, zstd. Anything else is unknown: such a message is
 * forwarded as sent and never parsed.
 */
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';

export type Coding = 'gzip' | 'deflate' | 'br' | 'zstd';

/** More stacked codings than this are not decoded (treated as unknown). */
export const MAX_CODINGS = 3;

const ALIASES: Record<string, Coding> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'br', zstd: 'zstd' };

/**
 * The codings of a `Content-Encoding` header, in the order they were applied
 * (decode in reverse). [] for none or only `identity`; undefined when one is
 * unknown (`compress`, `x-foo`) or there are more than MAX_CODINGS.
 * Case-insensitive; a list (`gzip, identity`) or repeated headers are fine.
 */
export function contentCodings(header: string | readonly string[] | undefined): Coding[] | undefined {
  if (header === undefined) return [];
  const codings: Coding[] = [];
  for (const token of (typeof header === 'string' ? header : header.join(',')).split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || name === 'identity') continue;
    const coding = ALIASES[name];
    if (!coding) return undefined;
    codings.push(coding);
  }
  return codings.length > MAX_CODINGS ? undefined : codings;
}

/** A streaming decoder for one coding. */
export function createDecoder(coding: Coding): Transform {
  switch (coding) {
    case 'gzip':
      return zlib.createGunzip();
    case 'deflate':
      return zlib.createInflate();
    case 'br':
      return zlib.createBrotliDecompress();
    case 'zstd':
      return zlib.createZstdDecompress();
  }
}
