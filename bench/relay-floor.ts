/**
 * Node's own floor for one extra hop, run by the benchmark as its own process: the least
 * a relay can do in Node for what the proxy's direct mode does. Plain HTTP in, HTTPS out
 * over kept-alive connections to the same upstream (one shared TLS context), bodies and
 * answers piped through untouched: no routing, no parsing, no rewriting, no learning.
 * Argv: upstream port, CA file, TLS server name. Prints `listening on PORT` and serves
 * until SIGTERM. Loopback only.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';

const [upstreamPort, caFile, servername] = process.argv.slice(2);
const agent = new https.Agent({ keepAlive: true, scheduling: 'lifo', secureContext: tls.createSecureContext({ ca: readFileSync(caFile ?? '', 'utf8') }) });

const server = http.createServer({ keepAlive: true }, (req, res) => {
  const upstream = https.request(
    { host: '127.0.0.1', port: Number(upstreamPort), servername, method: req.method, path: req.url, headers: { ...req.headers, host: servername }, agent },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
});
server.listen(0, '127.0.0.1', () => console.log(`listening on ${(server.address() as { port: number }).port}`));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close();
  agent.destroy();
});
