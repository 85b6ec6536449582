/**
 * Node's own memory floor for open streams, run by the benchmark as its own process:
 * an HTTPS server and an HTTPS client in one process, with `count` streamed exchanges
 * open between them (an event every 50 ms). Per stream that is what the proxy holds at the
 * least, with none of its own work: one TLS connection it accepts and one it opens, each
 * with an HTTP exchange on it. Prints one JSON line, {idleMiB, openMiB}: RSS after a few
 * warm-up exchanges, and one second after every stream had its first event. Loopback
 * only; bounded by `count` and a 60 s timer.
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { makeTestCa } from '../test/support/pki.js';

const count = Number(process.argv[2] ?? 500);
const rssMiB = (): number => Math.round((Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]) / 1024) * 10) / 10;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    console.error('tls-floor: not done within 60 s');
    process.exit(1);
  }, 60_000);
  const ca = makeTestCa('tls-floor');
  const leaf = ca.issue(['api.xiaomimimo.com']);
  const timers = new Set<NodeJS.Timeout>();
  const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem, keepAlive: true }, (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: {"choices":[]}\n\n');
    const timer = setInterval(() => res.write('data: {"choices":[]}\n\n'), 50);
    timers.add(timer);
    res.on('close', () => {
      clearInterval(timer);
      timers.delete(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  // One secure context for every client connection, as the proxy's upstream agent has.
  const agent = new https.Agent({ keepAlive: true, maxSockets: Infinity, secureContext: tls.createSecureContext({ ca: ca.certPem }) });
  const open = (): Promise<http.ClientRequest> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, servername: 'api.xiaomimimo.com', path: '/v1/chat/completions', method: 'POST', agent }, (res) => {
        res.once('data', () => resolve(req));
        res.resume();
      });
      req.on('error', reject);
      req.end('{"stream":true}');
    });
  for (let i = 0; i < 5; i++) (await open()).destroy();
  await sleep(500);
  const idleMiB = rssMiB();
  const requests = await Promise.all(Array.from({ length: count }, open));
  await sleep(1000);
  const openMiB = rssMiB();
  for (const req of requests) req.destroy();
  for (const timer of timers) clearInterval(timer);
  agent.destroy();
  server.closeAllConnections();
  server.close();
  ca.cleanup();
  clearTimeout(deadline);
  console.log(JSON.stringify({ idleMiB, openMiB }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
