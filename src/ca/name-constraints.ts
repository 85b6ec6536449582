/**
 * The X.509 nameConstraints extension (RFC 5280 §4.2.1.10), which limits what our CA can vouch
 * for: with permitted dNSName subtrees, a leaf for any other DNS name fails verification even
 * if the CA key leaks. node-forge has no named support for it, and Node's X509Certificate does
 * not expose it, so its DER is written and read here (der.ts):
 *
 *   NameConstraints ::= SEQUENCE {
 *     permittedSubtrees [0] IMPLICIT GeneralSubtrees OPTIONAL,
 *     excludedSubtrees  [1] IMPLICIT GeneralSubtrees OPTIONAL }
 *   GeneralSubtree  ::= SEQUENCE { base GeneralName, ... }
 *   dNSName         ::= [2] IMPLICIT IA5String
 *   iPAddress       ::= [7] IMPLICIT OCTET STRING
 *
 * A dNSName subtree "xiaomimimo.com" covers the name itself and every subdomain (the matching
 * rule is net/hosts.ts isCoveredBy). IP addresses are excluded outright (excludedSubtrees with
 * iPAddress 0.0.0.0/0 and ::/0): the proxy never intercepts an IP literal (it tunnels them), so
 * a leaked key must not be able to vouch for one either.
 */
import { childrenOf, contentsOf, DER_TAG, encodeElement, readElement } from './der.js';

export const NAME_CONSTRAINTS_OID = '2.5.29.30';
/** The OID's DER contents (X.690 §8.19: 2.5 -> 0x55, then 29 and 30). */
const NAME_CONSTRAINTS_OID_DER = Buffer.from([0x55, 0x1d, 0x1e]);

const PERMITTED_SUBTREES = DER_TAG.contextConstructed(0);
const EXCLUDED_SUBTREES = DER_TAG.contextConstructed(1);
const DNS_NAME = DER_TAG.context(2);
const IP_ADDRESS = DER_TAG.context(7);
/** iPAddress subtrees are address + mask: all-zero covers every IPv4 (8 bytes) / IPv6 (32 bytes) address. */
const ALL_IPV4 = Buffer.alloc(8);
const ALL_IPV6 = Buffer.alloc(32);
/** X.509 v3 extensions are the [3] EXPLICIT field of the TBSCertificate (RFC 5280 §4.1). */
const EXTENSIONS = DER_TAG.contextConstructed(3);

const subtree = (tag: number, base: Uint8Array): Buffer => encodeElement(DER_TAG.SEQUENCE, [encodeElement(tag, base)]);

/** DER of NameConstraints permitting exactly `domains` (and no IP address). */
export function encodeNameConstraints(domains: readonly string[]): Buffer {
  if (domains.length === 0) throw new Error('nameConstraints needs at least one permitted domain');
  const permitted = domains.map((domain) => subtree(DNS_NAME, Buffer.from(domain, 'ascii')));
  const excluded = [ALL_IPV4, ALL_IPV6].map((range) => subtree(IP_ADDRESS, range));
  return encodeElement(DER_TAG.SEQUENCE, [encodeElement(PERMITTED_SUBTREES, permitted), encodeElement(EXCLUDED_SUBTREES, excluded)]);
}

/** The permitted dNSName subtrees in a NameConstraints DER value (other name types are ignored). */
export function decodePermittedDomains(der: Uint8Array): string[] {
  const domains: string[] = [];
  const root = readElement(der, 0);
  if (root.tag !== DER_TAG.SEQUENCE) throw new Error('NameConstraints is not a SEQUENCE');
  for (const part of childrenOf(der, root)) {
    if (part.tag !== PERMITTED_SUBTREES) continue;
    for (const tree of childrenOf(der, part)) {
      const base = tree.tag === DER_TAG.SEQUENCE ? childrenOf(der, tree)[0] : undefined;
      if (base?.tag === DNS_NAME) domains.push(Buffer.from(contentsOf(der, base)).toString('latin1').toLowerCase());
    }
  }
  return domains;
}

/**
 * The nameConstraints value of a DER certificate, or undefined when it has none.
 * Certificate ::= SEQUENCE { tbsCertificate, ... }; the extensions are the TBSCertificate's
 * [3] field: a SEQUENCE of Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue }.
 */
export function nameConstraintsOf(certificate: Uint8Array): Uint8Array | undefined {
  const cert = readElement(certificate, 0);
  const tbs = childrenOf(certificate, cert)[0];
  if (cert.tag !== DER_TAG.SEQUENCE || tbs?.tag !== DER_TAG.SEQUENCE) throw new Error('not a certificate');
  const field = childrenOf(certificate, tbs).find((element) => element.tag === EXTENSIONS);
  const list = field === undefined ? undefined : childrenOf(certificate, field)[0];
  if (list === undefined) return undefined;
  for (const extension of childrenOf(certificate, list)) {
    const parts = childrenOf(certificate, extension);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag !== DER_TAG.OID || value?.tag !== DER_TAG.OCTET_STRING) continue;
    if (NAME_CONSTRAINTS_OID_DER.equals(contentsOf(certificate, id))) return contentsOf(certificate, value);
  }
  return undefined;
}
