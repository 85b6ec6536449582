/** Helpers the pure modules' unit tests share: fixtures, seeded random splits, a cache stand-in. */
import { readFileSync } from 'node:fs';
import zlib from 'node:zlib';
import type { Coding } from '../../src/reasoning/encoding.js';
import { anthropicContextForm, anthropicTurnIdentity } from '../../src/anthropic/fingerprint.js';
import { chatContextForm, chatTurnIdentity } from '../../src/chat/fingerprint.js';
import { ContextWindows, learnKeys, type Learned } from '../../src/reasoning/match.js';
import type { RewriteOutcome } from '../../src/reasoning/rewrite.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = Record<string, any>;

export const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/${name}`, import.meta.url));

export const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

export /** A small seeded PRNG (mulberry32), so random splits are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cut `bytes` at up to maxCuts random offsets (duplicates collapse). */
export function randomSplit(bytes: Buffer, random: () => number, maxCuts: number): Buffer[] {
  const cuts = new Set<number>();
  const count = 1 + Math.floor(random() * maxCuts);
  for (let i = 0; i < count; i++) cuts.add(Math.floor(random() * (bytes.length + 1)));
  const sorted = [...cuts].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const cut of sorted) {
    pieces.push(bytes.subarray(from, cut));
    from = cut;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

/** A remembered reasoning with the cache keys it is stored under. */
export interface Entry {
  keys: string[];
  reasoning: string;
}

/**
 * What an exchange learns for the chat turn at `index` of `messages` (the
 * conversation as the request that it answered, or a later one, holds it):
 * the turn's keys in its context, as ../../src/reasoning/exchange.ts stores them.
 * `upstreamIds`: learned from the upstream's answer (default) or from a request.
 */
export function chatEntry(messages: readonly unknown[], index: number, reasoning: string, upstreamIds = true): Entry {
  const identity = chatTurnIdentity(messages[index]);
  if (!identity) throw new Error(`message ${index} has no identity`);
  const context = new ContextWindows(messages, chatContextForm).before(index);
  return { keys: learnKeys({ identity, reasoning, context, upstreamIds }), reasoning };
}

/** The same for the Anthropic turn at `index` (`reasoning`: the stored encoding, encodeThinking). */
export function anthropicEntry(messages: readonly unknown[], index: number, reasoning: string, upstreamIds = true): Entry {
  const identity = anthropicTurnIdentity(messages[index]);
  if (!identity) throw new Error(`message ${index} has no identity`);
  const context = new ContextWindows(messages, anthropicContextForm).before(index);
  return { keys: learnKeys({ identity, reasoning, context, upstreamIds }), reasoning };
}

/** What `learned` (a rewrite outcome's) would be stored under, as entries. */
export function entriesOf(learned: readonly Learned[]): Entry[] {
  return learned.map((entry) => ({ keys: learnKeys(entry), reasoning: entry.reasoning }));
}

/** A cache stand-in: the first key it holds wins, as the real one does; `calls` has the keys each lookup read. */
export function memory(entries: readonly Entry[] = []): { lookup: (keys: Iterable<string>) => string | undefined; calls: string[][] } {
  const map = new Map<string, string>();
  for (const entry of entries) for (const key of entry.keys) map.set(key, entry.reasoning);
  const calls: string[][] = [];
  return {
    calls,
    lookup: (keys) => {
      const read: string[] = [];
      calls.push(read);
      // Read lazily, as the real cache does: keys after a hit are never made.
      for (const key of keys) {
        read.push(key);
        const value = map.get(key);
        if (value !== undefined) return value;
      }
      return undefined;
    },
  };
}

/** The rewritten request and its messages; throws unless the outcome is a rewrite. */
export function rewritten(outcome: RewriteOutcome): { request: Json; messages: Json[] } {
  if (outcome.kind !== 'rewritten') throw new Error(`expected a rewrite, got ${outcome.kind}`);
  const request = JSON.parse(outcome.body.toString('utf8')) as Json;
  return { request, messages: request['messages'] as Json[] };
}

/** Every content coding the proxy decodes. */
export const CODINGS: readonly Coding[] = ['gzip', 'deflate', 'br', 'zstd'];

/** `data` compressed with `coding`, as an upstream or a client would send it. */
export function encode(coding: Coding, data: Buffer): Buffer {
  if (coding === 'gzip') return zlib.gzipSync(data);
  if (coding === 'deflate') return zlib.deflateSync(data);
  if (coding === 'br') return zlib.brotliCompressSync(data);
  return zlib.zstdCompressSync(data);
}
