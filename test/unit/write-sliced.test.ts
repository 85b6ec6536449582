/**
 * writeSliced (proxy/plugin.ts): a large request body goes upstream a slice at a time, each
 * after the last drained, so one TLS write never holds the event loop for the whole body.
 * Over a real loopback HTTP connection: the bytes arrive exact and in order, `done` runs once,
 * and a request destroyed midway still calls `done` (the exchange is never left hanging).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WRITE_SLICE_BYTES, writeSliced } from '../../src/proxy/plugin.js';

let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

function listen(handler: http.RequestListener): Promise<number> {
  server = http.createServer(handler);
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve((server!.address() as AddressInfo).port)));
}

describe('writeSliced', () => {
  it('hands a body of several slices over in order, each write at most one slice, and calls done once', async () => {
    const body = randomBytes(5 * WRITE_SLICE_BYTES + 12345);
    let received!: (digest: string) => void;
    const digest = new Promise<string>((resolve) => (received = resolve));
    const port = await listen((req, res) => {
      const hash = createHash('sha256');
      req.on('data', (chunk: Buffer) => hash.update(chunk));
      req.on('end', () => {
        received(hash.digest('hex'));
        res.end('ok');
      });
    });
    const request = http.request({ host: '127.0.0.1', port, method: 'POST', headers: { 'content-length': String(body.length) } });
    const sizes: number[] = [];
    const write = request.write.bind(request);
    request.write = ((chunk: Buffer) => {
      sizes.push(chunk.length);
      return write(chunk);
    }) as typeof request.write;
    let done = 0;
    await new Promise<void>((resolve) => writeSliced(request, body, () => (done++, resolve())));
    request.end();
    expect(await digest).toBe(createHash('sha256').update(body).digest('hex'));
    expect(done).toBe(1);
    expect(sizes.length).toBe(6);
    expect(Math.max(...sizes)).toBe(WRITE_SLICE_BYTES);
  });

  it('calls done when the request is destroyed before the body is handed over', async () => {
    const port = await listen((req) => req.pause()); // never reads: the slices back up
    const request = http.request({ host: '127.0.0.1', port, method: 'POST', headers: { 'content-length': String(64 * WRITE_SLICE_BYTES) } });
    request.on('error', () => undefined);
    let done = 0;
    const finished = new Promise<void>((resolve) => writeSliced(request, Buffer.alloc(64 * WRITE_SLICE_BYTES), () => (done++, resolve())));
    setTimeout(() => request.destroy(), 200);
    await finished;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(done).toBe(1);
  });
});
