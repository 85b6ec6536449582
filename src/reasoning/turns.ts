/**
 * THE turn loop: the request side of every dialect (its requests' turns are
 * a `messages` list of role-tagged turns, or a list the dialect makes of them).
 * It walks the assistant turns in order, numbering them (step 1, 2, ...):
 *   reasoning of its own  the turn is left as sent and reported in
 *                         `learned`, under its context, to be remembered;
 *   no tool calls         a plain turn is left alone unless the policy asks
 *                         for plain turns (the retry): its identity is its
 *                         text alone, and a short reply would find another
 *                         conversation's reasoning;
 *   otherwise             the reasoning remembered for this turn of this
 *                         conversation (match.ts keys) is put back; else the
 *                         turn degrades (degrade.ts): a placeholder, or its tool
 *                         exchange flattened into text; never when the request
 *                         turned thinking off (counted as missing all the same).
 * Before the walk, a dialect may repair the messages for a provider's other
 * avoidable 400s (the policy's `repairs`), so turns are found as repaired.
 * The dialect (its TurnDialect) says what a turn, its reasoning and its
 * calls look like, and writes the changed messages. The loop changes nothing
 * while it walks: it collects edits and applies them at the end, so every
 * turn's context is the conversation as the client sent it, as it will be
 * when the client sends it again.
 *
 * A request whose turns are not a `messages` list (the Responses API's typed
 * `input` items) gives the loop a list of its own through the dialect's
 * `conversation` hook: the items grouped into role-tagged entries (one
 * assistant entry per run of one output's items), and how the edited list is
 * written back. Without the hook the list is `messages`, as sent.
 *
 * Returns a description of what it did; no change -> the very Buffer it was
 * given. Pure, and never throws.
 */
import { turnPlaceholder } from './degrade.js';
import { isRecord } from './json.js';
import { ContextWindows, lookupKeys, type Learned, type TurnIdentity } from './match.js';
import { declaresTools, neverThrowing, parseMessages, parseRequest, thinkingDisabled, type ReasoningLookup, type RewriteChanges, type RewriteOutcome, type RewritePolicy, type SkipReason } from './rewrite.js';

/** By message index, the messages that replace it: [] removes it; more than one inserts after it. */
export type Edits = Map<number, unknown[]>;

/** Another identity a turn may have been learned under, and whether a value found there is its reasoning. */
export interface Alternative<Found> {
  identity: TurnIdentity;
  accept(value: string): Found | undefined;
}

/** A request's turns as the loop walks them, when they are not its `messages` array. */
export interface Conversation {
  /** Role-tagged entries; those with role 'assistant' are the turns. */
  messages: unknown[];
  /** Writes the edited entries back into the request (which is then serialised). */
  write(messages: unknown[]): void;
}

/**
 * What the turn loop needs to know of one dialect's messages. `Turn` is the
 * dialect's view of an assistant message; `Found` is a remembered reasoning
 * as the dialect puts it back.
 */
export interface TurnDialect<Turn, Found> {
  /** A message's context form (match.ts ContextWindows), or undefined for one that does not count. */
  contextForm(message: unknown): string | undefined;
  /** The assistant message as a turn to handle, or undefined to leave it alone (it still counts as a step). */
  turn(message: Record<string, unknown>, plainTurns: boolean): Turn | undefined;
  /** The reasoning the turn carries itself, as the cache stores it, or undefined when it has none. */
  ownReasoning(turn: Turn): string | undefined;
  /** What identifies the turn (match.ts), or undefined when it has nothing to be found by. */
  identity(turn: Turn): TurnIdentity | undefined;
  /** The tool names of the turn's calls, in order ('' for an unnamed one); [] for a plain turn. */
  toolNames(turn: Turn): string[];
  /** A remembered value as reasoning to put back, or undefined when it holds none. */
  decode(value: string): Found | undefined;
  /** Where else to look when the turn's identity finds nothing (optional). */
  alternative?(turn: Turn): Alternative<Found> | undefined;
  /** The message with the remembered reasoning put back. */
  putBack(turn: Turn, found: Found): Record<string, unknown>;
  /** The message with a placeholder reasoning. */
  withPlaceholder(turn: Turn, text: string): Record<string, unknown>;
  /** The edits that turn the tool exchange of the turn at `index` into text; `plainTurns`: the kept text gets a placeholder too. */
  flatten(messages: readonly unknown[], index: number, step: number, plainTurns: boolean): Edits;
  /** The policy's repairs, applied to `messages` in place before the walk; how many messages changed (optional). */
  repair?(messages: unknown[], lookup: ReasoningLookup, policy: RewritePolicy): number;
  /** The request's turns when they are not its `messages` array (optional), or why it is left alone. */
  conversation?(request: Record<string, unknown>): Conversation | SkipReason;
}

/** The rewrite of one request body by the turn loop (see the header). */
export function rewriteTurns<Turn, Found>(body: Buffer, lookup: ReasoningLookup, policy: RewritePolicy, dialect: TurnDialect<Turn, Found>): RewriteOutcome {
  return neverThrowing(() => {
    const parsed = dialect.conversation ? parseConversation(body, dialect.conversation) : messagesConversation(body);
    if ('kind' in parsed) return parsed;
    const { request, messages, write } = parsed;
    const repaired = policy.repairs ? (dialect.repair?.(messages, lookup, policy) ?? 0) : 0;
    const plainTurns = policy.plainTurns === true || (policy.plainTurns === 'with-tools' && declaresTools(request));
    const { learned, context, changes, edits } = walkTurns(messages, lookup, { ...policy, plainTurns }, thinkingDisabled(request, policy.thinkingOffModels), dialect);
    if (repaired > 0) changes.repaired = repaired;
    if (edits.size === 0 && repaired === 0) return { kind: 'unchanged', body, learned, context, changes };
    write(applyEdits(messages, edits));
    return { kind: 'rewritten', body: Buffer.from(JSON.stringify(request), 'utf8'), learned, context, changes };
  });
}

/** The request and its `messages` array, written back in place. */
function messagesConversation(body: Buffer): ({ request: Record<string, unknown> } & Conversation) | { kind: 'skipped'; reason: SkipReason } {
  const parsed = parseMessages(body);
  if ('kind' in parsed) return parsed;
  const { request, messages } = parsed;
  return { request, messages, write: (edited) => (request['messages'] = edited) };
}

/** The request and the dialect's own list of its turns. */
function parseConversation(
  body: Buffer,
  conversation: (request: Record<string, unknown>) => Conversation | SkipReason,
): ({ request: Record<string, unknown> } & Conversation) | { kind: 'skipped'; reason: SkipReason } {
  const parsed = parseRequest(body);
  if ('kind' in parsed) return parsed;
  const found = conversation(parsed.request);
  if (typeof found === 'string') return { kind: 'skipped', reason: found };
  return { request: parsed.request, ...found };
}

interface Walk {
  learned: Learned[];
  context: string;
  changes: RewriteChanges;
  edits: Edits;
}

function walkTurns<Turn, Found>(messages: readonly unknown[], lookup: ReasoningLookup, policy: RewritePolicy, disabled: boolean, dialect: TurnDialect<Turn, Found>): Walk {
  const windows = new ContextWindows(messages, dialect.contextForm);
  const plainTurns = policy.plainTurns === true;
  const changes: RewriteChanges = { injected: 0, placeholders: 0, flattened: 0, missing: 0 };
  const learned: Learned[] = [];
  const edits: Edits = new Map();
  let step = 0;

  for (let i = 0; i < messages.length; i++) {
    const message = messages[i];
    if (!isRecord(message) || message['role'] !== 'assistant') continue;
    step++;
    const turn = dialect.turn(message, plainTurns);
    if (turn === undefined) continue;

    const own = dialect.ownReasoning(turn);
    if (own !== undefined) {
      const identity = dialect.identity(turn);
      if (identity) learned.push({ identity, reasoning: own, context: windows.before(i), upstreamIds: false });
      continue;
    }

    const toolNames = dialect.toolNames(turn);
    if (toolNames.length === 0 && !plainTurns) continue;

    const found = find(dialect, turn, lookup, () => windows.before(i));
    if (found !== undefined) {
      edits.set(i, [dialect.putBack(turn, found)]);
      changes.injected++;
      continue;
    }

    changes.missing++;
    if (disabled) continue;
    if (toolNames.length === 0 || policy.degrade === 'placeholder') {
      edits.set(i, [dialect.withPlaceholder(turn, turnPlaceholder(step, toolNames))]);
      changes.placeholders++;
    } else {
      for (const [index, replacement] of dialect.flatten(messages, i, step, plainTurns)) edits.set(index, replacement);
      changes.flattened++;
    }
  }
  return { learned, context: windows.end(), changes, edits };
}

/** The reasoning remembered for a turn in its conversation (`context`: the digest of the messages before it). */
function find<Turn, Found>(dialect: TurnDialect<Turn, Found>, turn: Turn, lookup: ReasoningLookup, context: () => string): Found | undefined {
  const identity = dialect.identity(turn);
  if (identity === undefined) return undefined;
  const found = recall(lookup, identity, context, (value) => dialect.decode(value));
  if (found !== undefined) return found;
  const alternative = dialect.alternative?.(turn);
  return alternative && recall(lookup, alternative.identity, context, (value) => alternative.accept(value));
}

/** The value remembered under an identity's keys, as `accept` reads it; a lookup that throws is a miss. */
function recall<Found>(lookup: ReasoningLookup, identity: TurnIdentity, context: () => string, accept: (value: string) => Found | undefined): Found | undefined {
  try {
    const value = lookup(lookupKeys(identity, context));
    return typeof value === 'string' ? accept(value) : undefined;
  } catch {
    return undefined;
  }
}

function applyEdits(messages: readonly unknown[], edits: Edits): unknown[] {
  const next: unknown[] = [];
  for (let i = 0; i < messages.length; i++) {
    const replacement = edits.get(i);
    if (replacement) next.push(...replacement);
    else next.push(messages[i]);
  }
  return next;
}
