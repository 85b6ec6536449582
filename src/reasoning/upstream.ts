/**
 * What the reasoning core needs to know of the upstream a request goes to
 * (a provider: ../providers.ts holds the entries): how its reasoning 400
 * reads, which of its models think, how far the retry ladder goes, and which
 * other avoidable 400s it gives. Data only, so a policy built from it can be
 * posted to the rewrite worker. Pure.
 */
import type { Degrade } from '../config.js';
import type { Repairs, RewritePolicy } from './rewrite.js';

/**
 * Mentions reasoning_content (or, on the Responses API, reasoning_text) and says it is missing
 * or required, not e.g. "unsupported" (a retry cannot help the latter): MiMo's text and the
 * variants other gateways relay. Here, not in rejection.ts, so the provider registry names it
 * without loading an SSE parser.
 */
export const ANY_REASONING_REJECTION = /^(?=[^]*reasoning[_\s-]?(?:content|text))(?=[^]*(?:pass(ed)?\s+back|missing|must\s+be|required|not\s+(been\s+)?(passed|provided|present|set)))/i;

export interface UpstreamRules {
  /** Unique among providers: cache entries are scoped by it (exchange.ts), logs name it. */
  readonly id: string;
  /** Its reasoning 400 on every surface it serves: patterns over the error's texts (rejection.ts). */
  readonly rejections: readonly RegExp[];
  /** Models that think only when the request turns thinking on (`thinking.type: "enabled"`). */
  readonly thinkingOffModels?: RegExp;
  /** The retry also gives plain assistant turns their reasoning (or a placeholder) when the request declares tools. */
  readonly plainTurnsWithTools?: boolean;
  /** The other 400s it is known to give that a rewrite can prevent. */
  readonly repairs?: Repairs;
}

/** The first attempt's policy: the configured strategy, under the provider's rules. */
export function firstPolicy(degrade: Degrade, rules: UpstreamRules): RewritePolicy {
  return withRules({ degrade }, rules);
}

/**
 * The ladder: the configured strategy first; on the reasoning 400, once more with the next
 * stronger one: flatten every tool exchange whose reasoning is not remembered, and after
 * `flatten` also give plain turns a placeholder (whether MiMo needs them there is unknown). A
 * provider reported to want every turn once tools are declared (DeepSeek) gets plain turns on
 * the retry whenever the request declares tools: then a refusal after every tool-call turn was
 * restored still has a stronger rewrite.
 */
export function retryPolicy(first: Degrade, rules?: UpstreamRules): RewritePolicy {
  const plainTurns = first === 'flatten' ? true : rules?.plainTurnsWithTools === true ? 'with-tools' : false;
  const policy: RewritePolicy = { degrade: 'flatten', plainTurns };
  return rules ? withRules(policy, rules) : policy;
}

function withRules(policy: RewritePolicy, rules: UpstreamRules): RewritePolicy {
  const out: RewritePolicy = { ...policy };
  if (rules.thinkingOffModels) out.thinkingOffModels = rules.thinkingOffModels;
  if (rules.repairs) out.repairs = rules.repairs;
  return out;
}
