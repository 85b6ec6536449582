/**
 * The little DER (ITU-T X.690) this folder reads and writes without node-forge: enough to
 * build the nameConstraints extension and to find it again in a CA certificate, so that
 * loading an existing CA needs only node:crypto. Single-byte tags only (tag numbers up to
 * 30), definite lengths up to 2^32-1: everything a certificate of ours holds.
 */

/** Identifier octets used here (X.690 §8.1.2): class bits, constructed bit, tag number. */
export const DER_TAG = {
  OID: 0x06,
  OCTET_STRING: 0x04,
  SEQUENCE: 0x30,
  /** [n] IMPLICIT, primitive (e.g. dNSName [2]) and constructed (e.g. permittedSubtrees [0]). */
  context: (n: number): number => 0x80 | n,
  contextConstructed: (n: number): number => 0xa0 | n,
} as const;

/** One element: its identifier octet and where its contents lie in the buffer. */
export interface DerElement {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

const MAX_LENGTH_OCTETS = 4;

/** The element at `offset`, which must end by `limit`; throws on anything malformed. */
export function readElement(der: Uint8Array, offset: number, limit = der.length): DerElement {
  const tag = der[offset];
  let length = der[offset + 1];
  if (tag === undefined || length === undefined || offset + 2 > limit) throw new Error('truncated DER');
  if ((tag & 0x1f) === 0x1f) throw new Error('DER tag numbers above 30 are not supported');
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > MAX_LENGTH_OCTETS || start + octets > limit) throw new Error('bad DER length');
    length = 0;
    for (const byte of der.subarray(start, start + octets)) length = length * 256 + byte;
    start += octets;
  }
  const end = start + length;
  if (end > limit) throw new Error('truncated DER');
  return { tag, start, end };
}

/** The elements inside a constructed element, in order. */
export function childrenOf(der: Uint8Array, parent: DerElement): DerElement[] {
  const children: DerElement[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const child = readElement(der, at, parent.end);
    children.push(child);
    at = child.end;
  }
  return children;
}

export function contentsOf(der: Uint8Array, element: DerElement): Uint8Array {
  return der.subarray(element.start, element.end);
}

/** One element: identifier, definite length (short or long form), contents. */
export function encodeElement(tag: number, contents: Uint8Array | readonly Uint8Array[]): Buffer {
  const body = contents instanceof Uint8Array ? contents : Buffer.concat(contents);
  let length: Buffer;
  if (body.length < 0x80) {
    length = Buffer.from([body.length]);
  } else {
    const octets: number[] = [];
    for (let n = body.length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
    length = Buffer.from([0x80 | octets.length, ...octets]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}
