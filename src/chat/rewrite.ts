/**
 * The request side of the chat dialect: what a chat-completions assistant
 * message is to the turn loop (../reasoning/turns.ts), which puts remembered
 * reasoning back and degrades (degrade.ts) the tool-call messages whose
 * reasoning is not remembered, so MiMo does not answer 400 "The
 * reasoning_content in the thinking mode must be passed back".
 *
 * A message counts as lacking reasoning when `reasoning_content` is absent,
 * null, not a string, or only whitespace (hasReasoning). Any other value the
 * client sent is never touched; the loop reports it in `learned` so it can
 * be remembered. Reasoning is put back, or a placeholder written, as the
 * message's `reasoning_content`. A provider's repairs (repair.ts) are made
 * first, when its policy asks for them.
 */
import { hasReasoning } from '../reasoning/match.js';
import type { ReasoningLookup, RewriteOutcome, RewritePolicy } from '../reasoning/rewrite.js';
import { rewriteTurns, type Edits, type TurnDialect } from '../reasoning/turns.js';
import { flattenToolExchange } from './degrade.js';
import { repairChatMessages } from './repair.js';
import { chatContextForm, chatTurnIdentity } from './fingerprint.js';
import { toolCallNames } from './types.js';

/** The message with `reasoning_content` set (in place when it was there, last otherwise). */
const withReasoning = (message: Record<string, unknown>, reasoning: string): Record<string, unknown> => ({ ...message, reasoning_content: reasoning });

/** A chat turn is the assistant message itself; what is put back is its reasoning text. */
export const chatTurns: TurnDialect<Record<string, unknown>, string> = {
  contextForm: chatContextForm,
  turn: (message) => message,
  ownReasoning: (message) => {
    const reasoning = message['reasoning_content'];
    return hasReasoning(reasoning) ? reasoning : undefined;
  },
  identity: chatTurnIdentity,
  toolNames: toolCallNames,
  decode: (value) => (hasReasoning(value) ? value : undefined),
  putBack: withReasoning,
  withPlaceholder: withReasoning,
  flatten(messages, index, step, plainTurns) {
    const { replacement, consumed } = flattenToolExchange(messages, index, step, plainTurns);
    const edits: Edits = new Map(consumed.map((at) => [at, []]));
    edits.set(index, replacement);
    return edits;
  },
  repair: (messages, lookup, policy) => repairChatMessages(messages, lookup, policy.repairs ?? {}),
};

export function rewriteChatRequest(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy): RewriteOutcome {
  return rewriteTurns(body, lookup, policy, chatTurns);
}
