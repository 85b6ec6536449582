/**
 * Small helpers the fake upstreams share (fake-mimo.ts, fake-anthropic.ts,
 * fake-responses.ts): ids, bounds and how text is spread over events.
 */
import { randomBytes } from 'node:crypto';

export function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `length` random letters and digits. */
export function randomId(length: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let out = '';
  for (const b of randomBytes(length)) out += alphabet[b % alphabet.length];
  return out;
}

/** An integer within [min, max]; min for what is not a finite number. */
export function bounded(value: number, min: number, max: number): number {
  return Number.isFinite(value) ? Math.min(max, Math.max(min, Math.floor(value))) : min;
}

/** Splits text into `pieces` parts by code point, so Chinese is spread over events (never mid-character). */
export function splitText(text: string, pieces: number): string[] {
  const chars = Array.from(text);
  const count = Math.max(1, Math.min(pieces, chars.length));
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(chars.slice(Math.floor((i * chars.length) / count), Math.floor(((i + 1) * chars.length) / count)).join(''));
  return out;
}
