// A stand-in for the gateway's HTTP contract (201/202/207 with fingerprints, optional 429/503 with
// or without Retry-After), to test the load scripts' plumbing. The real gateway is tested by the suites.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface StubOptions {
  /** Answer every n-th request with 429 (odd) / 503 (even) instead of processing it. */
  backpressureEvery?: number;
  /** Whether those answers carry Retry-After (default true). */
  retryAfter?: boolean;
}

export interface StubGateway {
  url: string;
  /** Requests received per path. */
  received: Map<string, number>;
  /** Distinct fingerprints seen. */
  fingerprints: Set<string>;
  close(): Promise<void>;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function alertFingerprint(labels: Record<string, string>): string {
  const kind = labels.pod ? "Pod" : labels.deployment ? "Deployment" : "Unknown";
  const name = labels.pod ?? labels.deployment ?? "unknown";
  return sha256(`${labels.alertname}:${labels.namespace ?? "default"}:${kind}:${name}`);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
}

export async function startStubGateway(options: StubOptions = {}): Promise<StubGateway> {
  const received = new Map<string, number>();
  const fingerprints = new Set<string>();
  let count = 0;
  const answer = (fp: string) => {
    const duplicate = fingerprints.has(fp);
    fingerprints.add(fp);
    return { fingerprint: fp, status: duplicate ? "duplicate" : "created", duplicate };
  };
  const server: Server = createServer(async (req, res) => {
    const path = req.url ?? "";
    received.set(path, (received.get(path) ?? 0) + 1);
    const body = await readJson(req);
    count++;
    res.setHeader("Content-Type", "application/json");
    if (options.backpressureEvery && count % options.backpressureEvery === 0) {
      if (options.retryAfter !== false) res.setHeader("Retry-After", "1");
      res.statusCode = count % 2 === 0 ? 503 : 429;
      res.end(JSON.stringify({ status: res.statusCode, title: "shedding" }));
      return;
    }
    if (path === "/api/v1/signals/kubernetes-event") {
      const o = body.involvedObject as Record<string, string>;
      const result = answer(sha256(`${body.reason}:${o.namespace}:${o.kind}:${o.name}`));
      res.statusCode = result.duplicate ? 202 : 201;
      res.end(JSON.stringify(result));
      return;
    }
    const alerts = body.alerts as { labels: Record<string, string> }[];
    const results = alerts.map((a) => answer(alertFingerprint(a.labels)));
    if (results.length > 1) {
      res.statusCode = 207;
      res.end(JSON.stringify({ results, summary: { total: results.length } }));
      return;
    }
    res.statusCode = results[0]?.duplicate ? 202 : 201;
    res.end(JSON.stringify(results[0]));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    fingerprints,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
