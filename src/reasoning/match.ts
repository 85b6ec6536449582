/**
 * How a put-back is matched to its turn and to its conversation: the cache
 * keys, the same for every dialect (each dialect only says what a turn and a
 * context message look like, in its fingerprint module), and what counts as
 * a turn's reasoning.
 *
 * A remembered reasoning is put back only when it is provably for the same
 * turn of the same conversation:
 *   the turn     its text and its calls must match: the turn digest (the
 *                dialect's canonical form: text trimmed, each call's name and
 *                canonical JSON arguments; no ids, no reasoning) is part of
 *                every key, so an id alone never finds anything;
 *   its place    the conversation before the turn must match too: the context
 *                digest covers the last CONTEXT_WINDOW messages before the
 *                turn (system and developer messages left out, so a client
 *                that rewrites its system prompt still matches; older turns
 *                left out, so a client that trims its history still matches
 *                while the window before the turn is intact).
 * Keys, tried in this order:
 *   `t:` turn digest + the call ids, only for turns learned from an upstream
 *        response (ids the upstream issued, unique per call). Found again
 *        when the client keeps the ids, even if it changed the history
 *        before the turn (pruned old tool results, compaction).
 *   `c:` turn digest + context digest, for every learned turn (ids left out:
 *        some clients rewrite them, others number them per conversation).
 * When two different reasonings are learned under one key, nothing decides
 * between them: the cache marks the key conflicted and a lookup there is a
 * miss (the turn degrades), never a guess.
 * Pure.
 */
import { hash } from 'node:crypto';

/** Messages before a turn that its context digest covers. */
export const CONTEXT_WINDOW = 8;

/** What identifies one assistant turn. */
export interface TurnIdentity {
  /** sha256 hex of the dialect's canonical turn (text and calls, no ids, no reasoning). */
  turn: string;
  /** The turn's tool call ids in order, without repeats or empty ones. */
  ids: readonly string[];
}

/**
 * Reasoning worth keeping or counting as "passed back", in every dialect: a
 * string with something besides whitespace. `''`, `' '`, null and absent all
 * count as absent (DeepSeek rejects `''`; a lone space is a gateway's
 * backfill, not the model's reasoning).
 */
export function hasReasoning(value: unknown): value is string {
  return typeof value === 'string' && value.trim() !== '';
}

/** A turn's reasoning, as a response fold or a request yields it. */
export interface TurnReasoning {
  identity: TurnIdentity;
  /** The text to remember (the dialect's encoding). */
  reasoning: string;
  /** The turn's calls with both an id and a name (a response fold gives them: the name repair needs them). */
  calls?: readonly { id: string; name: string }[];
}

/** A turn to remember, with where it sits. */
export interface Learned extends TurnReasoning {
  /** Digest of the conversation before the turn (ContextWindows). */
  context: string;
  /** The ids came from the upstream's own response (so they are its unique ids). */
  upstreamIds: boolean;
}

export function sha256(text: string): string {
  return hash('sha256', text, 'hex');
}

function idKey(identity: TurnIdentity): string {
  return `t:${sha256(`${identity.turn}\u0000${identity.ids.join('\u0000')}`)}`;
}

function contextKey(identity: TurnIdentity, context: string): string {
  return `c:${sha256(`${identity.turn}\u0000${context}`)}`;
}

/** The key a tool call's name is remembered under, by the call id the upstream issued (the name repair). */
export function nameKey(callId: string): string {
  return `n:${sha256(callId)}`;
}

/** The keys to remember a turn's reasoning under. */
export function learnKeys(entry: Learned): string[] {
  const keys = [contextKey(entry.identity, entry.context)];
  if (entry.upstreamIds && entry.identity.ids.length > 0) keys.unshift(idKey(entry.identity));
  return keys;
}

/**
 * The keys to look a turn up by, most specific first, made as they are asked
 * for: a turn found by its ids never has its context digested.
 */
export function* lookupKeys(identity: TurnIdentity, context: () => string): Generator<string, void, undefined> {
  if (identity.ids.length > 0) yield idKey(identity);
  yield contextKey(identity, context());
}

/**
 * The context digests of one request's messages, computed lazily and once per
 * message. `digestOf` gives a message's canonical context form, or undefined
 * for a message that does not count (system, developer).
 */
export class ContextWindows {
  readonly #messages: readonly unknown[];
  readonly #digestOf: (message: unknown) => string | undefined;
  readonly #digests: (string | null | undefined)[] = [];

  constructor(messages: readonly unknown[], digestOf: (message: unknown) => string | undefined) {
    this.#messages = messages;
    this.#digestOf = digestOf;
  }

  #digest(index: number): string | null {
    let digest = this.#digests[index];
    if (digest === undefined) {
      const form = this.#digestOf(this.#messages[index]);
      digest = form === undefined ? null : sha256(form);
      this.#digests[index] = digest;
    }
    return digest;
  }

  /** The context of the message at `index`: the window of messages before it. */
  before(index: number): string {
    const window: string[] = [];
    for (let i = Math.min(index, this.#messages.length) - 1; i >= 0 && window.length < CONTEXT_WINDOW; i--) {
      const digest = this.#digest(i);
      if (digest !== null) window.push(digest);
    }
    return sha256(window.reverse().join(','));
  }

  /** The context of the turn that answers this request: the window at its end. */
  end(): string {
    return this.before(this.#messages.length);
  }
}
