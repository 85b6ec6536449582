/**
 * The other 400s MiMo gives on chat requests that a rewrite can prevent
 * (MIMO-API.md; only for a provider whose entry asks for them, ../providers.ts):
 *   content  an assistant tool-call message whose `content` is null or absent,
 *            or a list of text parts ("`text` is not present"), gets a string:
 *            '' (what MiMo itself answers for a turn that only calls tools),
 *            or the parts' text joined as the fingerprint joins it, so the
 *            turn keeps its identity. A list with any other part (an image)
 *            is left alone: joining it would lose that part.
 *   names    a tool call whose function name is empty ("`name` is not set")
 *            gets the name the upstream gave that call id, remembered from its
 *            answer under this credential and provider; without one it stays
 *            empty: a name is never invented.
 * Applied in place, before the turn loop looks the turns up (a turn found by
 * its name needs the name back first). Pure apart from the lookup; never throws.
 */
import { isRecord } from '../reasoning/json.js';
import { nameKey } from '../reasoning/match.js';
import type { ReasoningLookup, Repairs } from '../reasoning/rewrite.js';
import { contentText, toolCallId, toolCallName, toolCallsOf } from './types.js';

/** Tool names as OpenAI-compatible APIs accept them; a remembered value that is not one is not used. */
const TOOL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Repairs the assistant tool-call messages of `messages` in place; how many changed. */
export function repairChatMessages(messages: unknown[], lookup: ReasoningLookup, repairs: Repairs): number {
  let repaired = 0;
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i];
    if (!isRecord(message) || message['role'] !== 'assistant' || toolCallsOf(message).length === 0) continue;
    let next = message;
    if (repairs.toolCallContent === true) next = withTextContent(next);
    if (repairs.toolCallNames === true) next = withNames(next, lookup);
    if (next !== message) {
      messages[i] = next;
      repaired++;
    }
  }
  return repaired;
}

/** The message with a string content, or the message itself when it has one or cannot get one losslessly. */
function withTextContent(message: Record<string, unknown>): Record<string, unknown> {
  const content = message['content'];
  if (content === null || content === undefined) return { ...message, content: '' };
  if (Array.isArray(content) && content.every(isTextPart)) return { ...message, content: contentText(content) };
  return message;
}

function isTextPart(part: unknown): boolean {
  if (typeof part === 'string') return true;
  return isRecord(part) && part['type'] === 'text' && typeof part['text'] === 'string';
}

/** The message with each unnamed call named from memory, or the message itself when none was found. */
function withNames(message: Record<string, unknown>, lookup: ReasoningLookup): Record<string, unknown> {
  const calls = toolCallsOf(message);
  let changed = false;
  const named = calls.map((call) => {
    if (!isRecord(call) || toolCallName(call) !== '') return call;
    const fn = call['function'];
    if (fn !== undefined && !isRecord(fn)) return call;
    const id = toolCallId(call);
    const name = id === '' ? undefined : rememberedName(lookup, id);
    if (name === undefined) return call;
    changed = true;
    return { ...call, function: { ...(fn ?? {}), name } };
  });
  return changed ? { ...message, tool_calls: named } : message;
}

function rememberedName(lookup: ReasoningLookup, id: string): string | undefined {
  try {
    const value = lookup([nameKey(id)]);
    return typeof value === 'string' && TOOL_NAME.test(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
