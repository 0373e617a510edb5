// Plaintext HTTP for kubelet probes and Prometheus: /healthz (the process serves), /readyz (the
// backend is ready and the server is not shutting down; further lines name what is degraded, such
// as an event log that cannot be read), /metrics (text format 0.0.4).
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the HTTP endpoints ask the attestor. */
export interface HttpProbeSource {
  ready(): Promise<boolean>;
  /** Lines /readyz adds after its verdict: what is degraded without making the attestor unready. */
  readyNotes?(): string[];
  metrics(): string;
}

/** Starts the HTTP server on host:port; resolves once listening. */
export async function startHttpServer(host: string, port: number, source: HttpProbeSource): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    switch (path) {
      case '/healthz':
        send(200, 'ok\n');
        return;
      case '/readyz':
        source.ready().then(
          (ok) => send(ok ? 200 : 503, [ok ? 'ready' : 'not ready', ...(source.readyNotes?.() ?? [])].join('\n') + '\n'),
          () => send(503, 'not ready\n'),
        );
        return;
      case '/metrics':
        send(200, source.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
        return;
      default:
        send(404, 'not found\n');
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** host:port of a listening HTTP server. */
export function httpAddress(server: Server): string {
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

/** Closes the HTTP server and its idle/keep-alive connections. */
export function closeHttpServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
