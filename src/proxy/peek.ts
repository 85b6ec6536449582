/**
 * Reading the start of an upstream answer before relaying it (is this 400 MiMo's
 * reasoning rejection?), then handing on a stand-in that gives the client those
 * bytes and the rest, as if nothing had been read.
 */
import type http from 'node:http';
import { PassThrough } from 'node:stream';

/**
 * Read up to `limit` bytes of a response; `complete` only when it ended cleanly within them.
 * A response that fails or closes early is never taken for a whole one.
 */
export function peek(res: http.IncomingMessage, limit: number): Promise<{ head: Buffer; complete: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (complete: boolean): void => {
      if (settled) return;
      settled = true;
      res.off('data', onData);
      res.off('end', onEnd);
      res.off('error', onBroken);
      res.off('close', onBroken);
      res.pause();
      resolve({ head: Buffer.concat(chunks), complete });
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) finish(false);
    };
    const onEnd = (): void => finish(true);
    const onBroken = (): void => finish(false);
    res.on('data', onData);
    res.once('end', onEnd);
    res.once('error', onBroken);
    res.once('close', onBroken);
    res.resume();
  });
}

/** A stand-in for a response whose first bytes were already read: those bytes, then the rest. */
export function replay(res: http.IncomingMessage, head: Buffer, complete: boolean): http.IncomingMessage {
  const stream = new PassThrough();
  Object.assign(stream, { statusCode: res.statusCode, statusMessage: res.statusMessage, headers: res.headers, rawHeaders: res.rawHeaders, httpVersion: res.httpVersion });
  stream.pause();
  stream.write(head);
  if (complete) stream.end();
  else {
    res.pipe(stream);
    res.resume();
  }
  res.on('error', (err) => stream.destroy(err));
  return stream as unknown as http.IncomingMessage;
}
