/** Small socket and memory helpers the integration tests share. Loopback only, always bounded. */
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';

/** Send raw bytes to a port on 127.0.0.1 and collect what comes back until it closes (at most waitMs). */
export function rawExchange(port: number, bytes: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

/** A port nothing listens on (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A full GC, so live memory can be told from garbage not yet collected. */
const collect = ((): (() => void) => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

/** JS heap + Buffers that survive a full collection: what the process really holds. */
export function liveBytes(): number {
  collect();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Growth of RSS and of live bytes (liveBytes) at their peak, sampled every `everyMs` until stop(). */
export function memoryGrowth(everyMs: number): { stop(): { rss: number; live: number } } {
  const rssBaseline = process.memoryUsage().rss;
  const baseline = liveBytes();
  let rssPeak = rssBaseline;
  let peak = baseline;
  const sample = (): void => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    peak = Math.max(peak, liveBytes());
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      return { rss: rssPeak - rssBaseline, live: peak - baseline };
    },
  };
}
