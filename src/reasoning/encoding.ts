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
import { kMaxLength } from 'node:buffer';
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

/** True when a `Content-Encoding` header says the body is not plain (a known or an unknown coding). */
export function isEncoded(header: string | readonly string[] | undefined): boolean {
  const codings = contentCodings(header);
  return codings === undefined || codings.length > 0;
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

export type DecodedBody = { kind: 'decoded'; body: Buffer } | { kind: 'too-large' } | { kind: 'invalid' };

/**
 * A whole body decoded (codings as contentCodings gives them), never more than
 * maxBytes out of any stage: past it, `too-large`; a decode error, `invalid`.
 * Never rejects.
 */
export async function decodeBody(body: Buffer, codings: readonly Coding[], maxBytes: number): Promise<DecodedBody> {
  let out = body;
  try {
    for (const coding of [...codings].reverse()) {
      out = await decodeOnce(coding, out, Math.min(Math.max(1, maxBytes), kMaxLength));
      if (out.length > maxBytes) return { kind: 'too-large' };
    }
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? { kind: 'too-large' } : { kind: 'invalid' };
  }
  return { kind: 'decoded', body: out };
}

function decodeOnce(coding: Coding, body: Buffer, maxOutputLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, out: Buffer): void => (err ? reject(err) : resolve(out));
    const options = { maxOutputLength };
    switch (coding) {
      case 'gzip':
        return zlib.gunzip(body, options, done);
      case 'deflate':
        return zlib.inflate(body, options, done);
      case 'br':
        return zlib.brotliDecompress(body, options, done);
      case 'zstd':
        return zlib.zstdDecompress(body, options, done);
    }
  });
}
