// A test double for accounting tests: a proxy in front of the real gateway that loses every
// n-th deduplication. It forwards every request, except that among requests whose fingerprint it
// has already seen (it learns fingerprints from the gateway's single-signal answers), every n-th
// is answered 202 "duplicate" by the proxy itself and never reaches the gateway.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";

export interface LossyProxy {
  url: string;
  /** Requests answered "duplicate" without reaching the gateway. */
  readonly swallowed: number;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The fingerprint of a single-signal answer (201/202); undefined for 207 and errors. */
function answeredFingerprint(status: number, body: string): string | undefined {
  if (status !== 201 && status !== 202) return undefined;
  try {
    const fingerprint = (JSON.parse(body) as { fingerprint?: unknown }).fingerprint;
    return typeof fingerprint === "string" ? fingerprint : undefined;
  } catch {
    return undefined;
  }
}

export async function startLossyProxy(target: string, loseEvery = 10): Promise<LossyProxy> {
  // Same path and body = same signal: the traffic model sends identical bytes for a fingerprint.
  const known = new Map<string, string>();
  let seenAgain = 0;
  let swallowed = 0;
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const key = `${req.url} ${body}`;
      const fingerprint = known.get(key);
      if (fingerprint && ++seenAgain % loseEvery === 0) {
        swallowed++;
        res.writeHead(202, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: "duplicate", fingerprint, duplicate: true }));
        return;
      }
      const answer = await fetch(`${target}${req.url}`, {
        method: req.method,
        headers: { "content-type": req.headers["content-type"] ?? "application/json" },
        body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
      });
      const text = await answer.text();
      const learned = answeredFingerprint(answer.status, text);
      if (learned) known.set(key, learned);
      const retryAfter = answer.headers.get("retry-after");
      res.writeHead(answer.status, {
        "content-type": answer.headers.get("content-type") ?? "application/json",
        ...(retryAfter && { "retry-after": retryAfter }),
      });
      res.end(text);
    })().catch((err: Error) => {
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ detail: `lossy proxy: ${err.message}` }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get swallowed() {
      return swallowed;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
