/**
 * What to put in place of reasoning that was not kept, for an assistant
 * message MiMo would otherwise refuse (see MIMO-API.md, "The rule that
 * breaks clients"):
 *
 *   placeholder  a short reasoning text specific to its turn: the step's
 *                position and the tools it called. Never one constant text:
 *                a constant placeholder repeated every turn made a model
 *                parrot it and stall. Tool calls and results stay as they are.
 *   flatten      the tool exchange becomes plain text, which no rule
 *                applies to: the assistant message keeps only its own text
 *                (or goes, when it has none), and its tool results become one
 *                user message naming each call, its arguments and its result.
 *                Never "[Called X]" markers in the assistant's text: those
 *                teach a model to write tool calls as text.
 * Pure: functions over the parsed request's plain objects.
 */
import { contentText, hasReasoning, isRecord, toolCallArguments, toolCallId, toolCallName, toolCallsOf } from './types.js';

/** How many distinct tool names a placeholder lists before "and N more". */
const MAX_NAMED_TOOLS = 4;

/** "Reasoning for step 3 was not kept; this step called read_file and grep (2 calls)." */
export function toolCallPlaceholder(step: number, message: Record<string, unknown>): string {
  return `Reasoning for step ${step} was not kept; this step called ${describeCalls(toolCallsOf(message))}.`;
}

/** The placeholder for a plain assistant turn (no tool calls). */
export function plainPlaceholder(step: number): string {
  return `Reasoning for step ${step} was not kept; this step answered in text.`;
}

/** The placeholder for the text an assistant kept when its tool calls were flattened. */
export function flattenedPlaceholder(step: number, message: Record<string, unknown>): string {
  return `Reasoning for step ${step} was not kept; the results of ${describeCalls(toolCallsOf(message))} follow as text.`;
}

function describeCalls(calls: readonly unknown[]): string {
  const counts = new Map<string, number>();
  let unnamed = 0;
  for (const call of calls) {
    const name = toolCallName(call);
    if (name === '') unnamed++;
    else counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const parts: string[] = [];
  for (const [name, count] of counts) {
    if (parts.length === MAX_NAMED_TOOLS) break;
    parts.push(count > 1 ? `${name} (${count} calls)` : name);
  }
  const more = counts.size - parts.length;
  if (more > 0) parts.push(`${more} more tool${more === 1 ? '' : 's'}`);
  if (unnamed > 0) parts.push(unnamed === 1 ? 'an unnamed tool' : `${unnamed} unnamed tools`);
  if (parts.length === 0) return 'a tool';
  if (parts.length === 1) return parts[0] ?? 'a tool';
  return `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

export interface Flattened {
  /** What replaces the assistant message: its text alone and the results as a user message. */
  replacement: Record<string, unknown>[];
  /** Indexes of the `role: "tool"` messages folded into the user message (to be removed). */
  consumed: number[];
}

/**
 * Flattens the tool exchange of the assistant message at `index`. Its
 * results are the `role: "tool"` messages after it, up to the next assistant
 * message, whose tool_call_id is one of its call ids.
 * `plainTurns`: the kept assistant text also gets a placeholder reasoning.
 */
export function flattenToolExchange(messages: readonly unknown[], index: number, step: number, plainTurns: boolean): Flattened {
  const message = messages[index];
  const assistant = isRecord(message) ? message : {};
  const calls = toolCallsOf(assistant);
  // Every id, '' included: a result that names an empty id belongs to that call and must go with it.
  const ids = new Set(calls.map(toolCallId));

  const results = new Map<string, unknown[]>();
  const consumed: number[] = [];
  for (let i = index + 1; i < messages.length; i++) {
    const next = messages[i];
    if (!isRecord(next)) continue;
    if (next['role'] === 'assistant') break;
    if (next['role'] !== 'tool') continue;
    const callId = next['tool_call_id'];
    if (typeof callId !== 'string' || !ids.has(callId)) continue;
    consumed.push(i);
    const list = results.get(callId) ?? [];
    list.push(next['content']);
    results.set(callId, list);
  }

  const replacement: Record<string, unknown>[] = [];
  if (contentText(assistant['content']).trim() !== '') {
    const kept: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(assistant)) {
      if (key === 'tool_calls' || key === 'function_call') continue;
      if (key === 'reasoning_content' && !hasReasoning(value)) continue;
      kept[key] = value;
    }
    if (plainTurns && !hasReasoning(kept['reasoning_content'])) kept['reasoning_content'] = flattenedPlaceholder(step, assistant);
    replacement.push(kept);
  }

  const sections = calls.map((call) => {
    const name = toolCallName(call) || 'an unnamed tool';
    const args = toolCallArguments(call).trim();
    const id = toolCallId(call);
    const outputs = id === '' ? [] : (results.get(id) ?? []);
    const head = `The tool ${name} was called with arguments ${args === '' ? '(none)' : args}.`;
    if (outputs.length === 0) return `${head}\nNo result was recorded.`;
    return outputs.map((output) => `${head}\nResult:\n${resultText(output)}`).join('\n\n');
  });
  replacement.push({
    role: 'user',
    content: `Step ${step} used tools; here are the calls and their results, as text:\n\n${sections.join('\n\n')}`,
  });
  return { replacement, consumed };
}

/** A tool result's text: a string, or the text of its parts (other parts named, not inlined). */
export function resultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (content === null || content === undefined) return '(empty)';
  if (!Array.isArray(content)) {
    try {
      return JSON.stringify(content) ?? '(empty)';
    } catch {
      return '(unreadable)';
    }
  }
  const pieces: string[] = [];
  for (const part of content) {
    if (typeof part === 'string') pieces.push(part);
    else if (isRecord(part) && typeof part['text'] === 'string') pieces.push(part['text']);
    else if (isRecord(part) && typeof part['type'] === 'string') pieces.push(`(a part of type ${part['type']}, not shown)`);
  }
  return pieces.length === 0 ? '(empty)' : pieces.join('\n');
}
