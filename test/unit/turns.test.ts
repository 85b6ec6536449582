/**
 * The turn loop on its own, over a toy dialect: assistant messages
 * `{role, text, calls?: string[], why?: string}` and `{role: 'result', of}`
 * results. What the chat and Anthropic tests pin through their dialects
 * (counts, bytes, contexts) is not repeated here; this is the loop's own logic.
 */
import { describe, expect, it } from 'vitest';
import { body, memory, rewritten, type Json } from '../support/unit.js';
import { ContextWindows, learnKeys, sha256, type TurnIdentity } from '../../src/reasoning/match.js';
import type { RewritePolicy } from '../../src/reasoning/rewrite.js';
import { rewriteTurns, type Edits, type TurnDialect } from '../../src/reasoning/turns.js';

const PLACEHOLDER: RewritePolicy = { degrade: 'placeholder' };
const FLATTEN: RewritePolicy = { degrade: 'flatten' };

const callsOf = (message: Json): string[] => (Array.isArray(message['calls']) ? (message['calls'] as string[]) : []);
const contextForm = (message: unknown): string | undefined => {
  const m = message as Json;
  return m?.['role'] === 'system' ? undefined : JSON.stringify([m?.['role'], m?.['text'] ?? m?.['of'] ?? null, callsOf(m ?? {})]);
};
const identityOf = (message: Json): TurnIdentity | undefined => (typeof message['text'] === 'string' ? { turn: sha256(JSON.stringify([message['text'], callsOf(message)])), ids: [] } : undefined);

/** The toy dialect; `seen` records every message contextForm was asked about, `alternatives` every turn asked for one. */
function toy(options: { alternative?: boolean } = {}) {
  const seen: unknown[] = [];
  const alternatives: string[] = [];
  const dialect: TurnDialect<Json, string> = {
    contextForm: (message) => {
      seen.push(message);
      return contextForm(message);
    },
    turn: (message, plainTurns) => (message['skip'] === true && !plainTurns ? undefined : message),
    ownReasoning: (message) => (typeof message['why'] === 'string' && message['why'] !== '' ? message['why'] : undefined),
    identity: identityOf,
    toolNames: callsOf,
    decode: (value) => (value.startsWith('why:') ? value.slice(4) : undefined),
    putBack: (message, found) => ({ ...message, why: found }),
    withPlaceholder: (message, text) => ({ ...message, why: text }),
    flatten(messages, index) {
      const edits: Edits = new Map();
      const message = messages[index] as Json;
      edits.set(index, [{ role: 'assistant', text: message['text'] }, { role: 'user', text: `called ${callsOf(message).join(', ')}` }]);
      if ((messages[index + 1] as Json | undefined)?.['role'] === 'result') edits.set(index + 1, []);
      return edits;
    },
  };
  if (options.alternative) {
    dialect.alternative = (message) => {
      alternatives.push(String(message['text']));
      const identity = identityOf({ ...message, text: String(message['text']).trim() });
      return identity && { identity, accept: (value) => (value.startsWith('alt:') ? value.slice(4) : undefined) };
    };
  }
  return { dialect, seen, alternatives };
}

/** The keys the toy turn at `index` is remembered under (learned from a request: its context key). */
const remembered = (messages: readonly Json[], index: number, value: string, text = messages[index]?.['text']) => ({
  keys: learnKeys({ identity: identityOf({ ...messages[index], text })!, reasoning: value, context: new ContextWindows(messages, contextForm).before(index), upstreamIds: false }),
  reasoning: value,
});

const conversation: Json[] = [
  { role: 'system', text: 'sys' },
  { role: 'user', text: 'go' },
  { role: 'assistant', text: 'a', calls: ['ls'] },
  { role: 'result', of: 'ls' },
  { role: 'assistant', text: 'plain answer' },
  { role: 'user', text: 'more' },
  { role: 'assistant', text: 'b', calls: ['grep', 'grep'] },
  { role: 'result', of: 'grep' },
];

describe('the turn loop', () => {
  it('numbers every assistant message as a step, also those it leaves alone', () => {
    const messages: Json[] = [
      { role: 'assistant', text: 'own', calls: ['x'], why: 'mine' },
      { role: 'assistant', text: 'skipped', calls: ['x'], skip: true },
      { role: 'assistant', text: 'plain' },
      null as unknown as Json,
      { role: 'assistant', text: 'c', calls: ['ls'] },
    ];
    const outcome = rewriteTurns(body({ messages }), memory().lookup, PLACEHOLDER, toy().dialect);
    expect(rewritten(outcome).messages[4]?.['why']).toBe('Reasoning for step 4 was not kept; this step called ls.');
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 0, placeholders: 1, flattened: 0, missing: 1 });
  });

  it('reports a turn with its own reasoning as learned, in its context, and never looks it up', () => {
    const messages = [{ role: 'user', text: 'q' }, { role: 'assistant', text: 'a', calls: ['ls'], why: 'mine' }];
    const cache = memory();
    const outcome = rewriteTurns(body({ messages }), cache.lookup, PLACEHOLDER, toy().dialect);
    expect(outcome.kind).toBe('unchanged');
    expect(outcome.kind === 'unchanged' && outcome.learned).toEqual([{ identity: identityOf(messages[1]!), reasoning: 'mine', context: new ContextWindows(messages, contextForm).before(1), upstreamIds: false }]);
    expect(cache.calls).toEqual([]);
  });

  it('looks a plain turn up only with plainTurns', () => {
    const cache = memory([remembered(conversation, 4, 'why:直接回答。')]);
    expect(rewriteTurns(body({ messages: conversation }), cache.lookup, PLACEHOLDER, toy().dialect).kind).toBe('rewritten');
    expect(cache.calls).toHaveLength(2);
    const { messages } = rewritten(rewriteTurns(body({ messages: conversation }), cache.lookup, { degrade: 'placeholder', plainTurns: true }, toy().dialect));
    expect(messages[4]?.['why']).toBe('直接回答。');
  });

  it('applies its edits after the walk: contexts are those of the messages as sent, and each edit replaces its index', () => {
    // The first tool turn flattens (its result is removed, a user message inserted); the second is found by its context.
    const cache = memory([remembered(conversation, 6, 'why:再搜。')]);
    const { dialect, seen } = toy();
    const outcome = rewriteTurns(body({ messages: conversation }), cache.lookup, FLATTEN, dialect);
    const { messages } = rewritten(outcome);
    expect(messages.map((m) => m['role'])).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'result']);
    expect(messages[3]).toEqual({ role: 'user', text: 'called ls' });
    expect(messages[6]?.['why']).toBe('再搜。');
    expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 1, placeholders: 0, flattened: 1, missing: 1 });
    expect(outcome.kind === 'rewritten' && outcome.context).toBe(new ContextWindows(conversation, contextForm).end());
    // Only the messages as the client sent them were ever digested, never an edited one.
    const sent = JSON.parse(JSON.stringify(conversation)) as Json[];
    for (const message of seen) expect(sent).toContainEqual(message);
  });

  it('asks the alternative only after the identity finds nothing, and puts back what it accepts', () => {
    const messages: Json[] = [{ role: 'user', text: 'go' }, { role: 'assistant', text: ' a ', calls: ['ls'] }, { role: 'assistant', text: 'b', calls: ['ls'] }];
    const cache = memory([remembered(messages, 1, 'alt:trimmed', 'a'), remembered(messages, 2, 'why:direct')]);
    const { dialect, alternatives } = toy({ alternative: true });
    const { messages: out } = rewritten(rewriteTurns(body({ messages }), cache.lookup, PLACEHOLDER, dialect));
    expect(out[1]?.['why']).toBe('trimmed');
    expect(out[2]?.['why']).toBe('direct');
    expect(alternatives).toEqual([' a ']);
  });

  it('takes a value the dialect does not decode, a non-string and a lookup that throws for a miss', () => {
    const messages: Json[] = [{ role: 'assistant', text: 'a', calls: ['ls'] }];
    const lookups = [() => 'not ours', () => 42 as unknown as string, () => { throw new Error('cache broke'); }];
    for (const lookup of lookups) {
      const outcome = rewriteTurns(body({ messages }), lookup, PLACEHOLDER, toy({ alternative: true }).dialect);
      expect(outcome.kind === 'rewritten' && outcome.changes).toEqual({ injected: 0, placeholders: 1, flattened: 0, missing: 1 });
    }
  });

  it('counts but never degrades when thinking is disabled, and still puts back', () => {
    const disabled = body({ messages: conversation, thinking: { type: 'disabled' } });
    const outcome = rewriteTurns(disabled, memory().lookup, FLATTEN, toy().dialect);
    expect(outcome.kind === 'unchanged' && outcome.body).toBe(disabled);
    expect(outcome.kind === 'unchanged' && outcome.changes.missing).toBe(2);
    const cache = memory([remembered(conversation, 2, 'why:先列目录。')]);
    const { messages } = rewritten(rewriteTurns(disabled, cache.lookup, FLATTEN, toy().dialect));
    expect(messages[2]?.['why']).toBe('先列目录。');
    expect(messages[6]?.['why']).toBeUndefined();
  });

  it('returns the very same Buffer when nothing changed, and skips a body it cannot read', () => {
    const original = Buffer.from(JSON.stringify({ messages: [{ role: 'user', text: 'hi' }, { role: 'assistant', text: 'plain' }] }, null, 3));
    const outcome = rewriteTurns(original, memory().lookup, PLACEHOLDER, toy().dialect);
    expect(outcome.kind === 'unchanged' && outcome.body).toBe(original);
    expect(rewriteTurns(Buffer.from('{"messages": 1}'), memory().lookup, PLACEHOLDER, toy().dialect)).toEqual({ kind: 'skipped', reason: 'no-messages' });
  });

  it('turns a dialect that throws into a skip, never into an exception', () => {
    const { dialect } = toy();
    const broken = { ...dialect, putBack: () => { throw new Error('bug'); } };
    const cache = memory([remembered(conversation, 2, 'why:x')]);
    expect(rewriteTurns(body({ messages: conversation }), cache.lookup, PLACEHOLDER, broken)).toEqual({ kind: 'skipped', reason: 'internal-error' });
  });
});
