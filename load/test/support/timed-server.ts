// A plain HTTP server whose answer timing the test controls; it records when requests arrive.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface TimedServer {
  url: string;
  /** Date.now() of every request's arrival, in order. */
  arrivals: number[];
  /** "METHOD /path" of every request, in order. */
  requests: string[];
  close(): Promise<void>;
}

/** `delayMs(arrivalMs, firstArrivalMs)` says how long to hold each request before answering 200. */
export async function startTimedServer(
  delayMs: (arrivalMs: number, firstArrivalMs: number) => number,
): Promise<TimedServer> {
  const arrivals: number[] = [];
  const requests: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const now = Date.now();
    arrivals.push(now);
    requests.push(`${req.method} ${req.url}`);
    req.resume();
    setTimeout(() => res.end("ok"), delayMs(now, arrivals[0] as number));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arrivals,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
