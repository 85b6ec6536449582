/**
 * The X.509 nameConstraints extension (RFC 5280 §4.2.1.10), which limits what our CA can vouch
 * for: with permitted dNSName subtrees, a leaf for any other DNS name fails verification even
 * if the CA key leaks. node-forge has no named support, so the DER is built with forge.asn1.
 *
 *   NameConstraints ::= SEQUENCE {
 *     permittedSubtrees [0] IMPLICIT GeneralSubtrees OPTIONAL, ... }
 *   GeneralSubtree  ::= SEQUENCE { base GeneralName, ... }
 *   dNSName         ::= [2] IMPLICIT IA5String
 *
 * A dNSName subtree "xiaomimimo.com" covers the name itself and every subdomain (the matching
 * rule is net/hosts.ts isCoveredBy).
 * IP addresses are excluded outright (excludedSubtrees [1] with iPAddress 0.0.0.0/0 and ::/0):
 * the proxy never intercepts an IP literal (it tunnels them), so a leaked key must not be able
 * to vouch for one either.
 */
import forge from 'node-forge';

export const NAME_CONSTRAINTS_OID = '2.5.29.30';

const { asn1 } = forge;
const PERMITTED_SUBTREES_TAG = 0;
const EXCLUDED_SUBTREES_TAG = 1;
const DNS_NAME_TAG = 2;
const IP_ADDRESS_TAG = 7;
/** iPAddress subtrees are address + mask: all-zero covers every IPv4 (8 bytes) / IPv6 (32 bytes) address. */
const ALL_IPV4 = '\0'.repeat(8);
const ALL_IPV6 = '\0'.repeat(32);

/** DER (as a forge binary string) of NameConstraints permitting exactly `domains`. */
export function encodeNameConstraints(domains: readonly string[]): string {
  if (domains.length === 0) throw new Error('nameConstraints needs at least one permitted domain');
  const subtrees = domains.map((domain) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, DNS_NAME_TAG, false, domain),
    ]),
  );
  const excluded = [ALL_IPV4, ALL_IPV6].map((range) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, IP_ADDRESS_TAG, false, range),
    ]),
  );
  const value = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, PERMITTED_SUBTREES_TAG, true, subtrees),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, EXCLUDED_SUBTREES_TAG, true, excluded),
  ]);
  return asn1.toDer(value).getBytes();
}

/** The permitted dNSName subtrees in a NameConstraints DER value (other name types are ignored). */
export function decodePermittedDomains(der: string): string[] {
  const root = asn1.fromDer(der);
  const domains: string[] = [];
  if (!Array.isArray(root.value)) return domains;
  for (const part of root.value) {
    if (part.tagClass !== asn1.Class.CONTEXT_SPECIFIC || part.type !== PERMITTED_SUBTREES_TAG) continue;
    if (!Array.isArray(part.value)) continue;
    for (const subtree of part.value) {
      const base = Array.isArray(subtree.value) ? subtree.value[0] : undefined;
      if (base === undefined || base.tagClass !== asn1.Class.CONTEXT_SPECIFIC || base.type !== DNS_NAME_TAG) continue;
      if (typeof base.value === 'string') domains.push(base.value.toLowerCase());
    }
  }
  return domains;
}
