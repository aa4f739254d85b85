// The event exporter stand-in: watches core/v1 Events in every namespace and
// forwards each Warning event to the gateway as JSON, as kubernetes-event-exporter
// does: on creation and on every update (a repeated event bumps its count), and
// only events younger than maxEventAge, so a restart does not replay old ones.
import { readFileSync } from "node:fs";
import { CoreV1Api, type CoreV1Event, type KubeConfig } from "@kubernetes/client-node";
import { Counter } from "prom-client";
import { log, type Metrics, startInformer } from "./runtime.js";

export interface ExporterOptions {
  gatewayUrl: string;
  /** A file with the bearer token for the gateway (re-read on each send: tokens rotate). */
  tokenFile?: string;
  maxEventAgeMs: number;
}

const PATH = "/api/v1/signals/kubernetes-event";
const ATTEMPTS = 5;

const eventKey = (e: CoreV1Event) => e.metadata?.uid ?? `${e.metadata?.namespace}/${e.metadata?.name}`;

function lastSeen(e: CoreV1Event): number {
  const t = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
  return t ? new Date(t as unknown as string).getTime() : 0;
}

export function startEventExporter(
  kc: KubeConfig,
  opts: ExporterOptions,
  metrics: Metrics,
): { synced: () => boolean; stop: () => Promise<void> } {
  const forwarded = new Counter({
    name: "standin_events_forwarded_total",
    help: "Warning events sent to the gateway, by result (accepted, rejected, failed)",
    labelNames: ["result"],
    registers: [metrics.registry],
  });
  const core = kc.makeApiClient(CoreV1Api);
  /** The last version of each event sent, so one resourceVersion is sent once. */
  const sent = new Map<string, string>();
  let stopped = false;

  const send = async (event: CoreV1Event): Promise<void> => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (opts.tokenFile) headers.authorization = `Bearer ${readFileSync(opts.tokenFile, "utf8").trim()}`;
    const body = JSON.stringify(event);
    const what = `${event.metadata?.namespace}/${event.metadata?.name} (${event.reason})`;
    for (let attempt = 1; attempt <= ATTEMPTS && !stopped; attempt++) {
      try {
        const res = await fetch(`${opts.gatewayUrl}${PATH}`, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.timeout(10_000),
        });
        const text = await res.text();
        if (res.status < 300) {
          forwarded.inc({ result: "accepted" });
          log("info", `event ${what} forwarded: ${res.status}`);
          return;
        }
        if (res.status < 500 && res.status !== 429) {
          forwarded.inc({ result: "rejected" });
          log("warn", `event ${what} refused by the gateway: ${res.status} ${text.slice(0, 300)}`);
          return;
        }
        log("warn", `event ${what}: gateway answered ${res.status}; attempt ${attempt} of ${ATTEMPTS}`);
      } catch (err) {
        log("warn", `event ${what}: ${(err as Error).message}; attempt ${attempt} of ${ATTEMPTS}`);
      }
      await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
    }
    forwarded.inc({ result: "failed" });
  };

  const onEvent = (event: CoreV1Event) => {
    if (event.type !== "Warning") return;
    const key = eventKey(event);
    const version = event.metadata?.resourceVersion ?? "";
    if (sent.get(key) === version) return;
    if (Date.now() - lastSeen(event) > opts.maxEventAgeMs) return;
    sent.set(key, version);
    void send(event);
  };
  const informer = startInformer<CoreV1Event>(
    kc,
    "/api/v1/events",
    "events",
    onEvent,
    () => core.listEventForAllNamespaces(),
    // Events expire (an hour by default): so does what was sent of them.
    (event) => sent.delete(eventKey(event)),
  );
  return {
    synced: informer.synced,
    stop: async () => {
      stopped = true;
      await informer.stop();
    },
  };
}
