import { KubeApiError, type KubeClient } from "./kube.js";
import type { Log } from "./log.js";
import type { Metrics } from "./metrics.js";
import { type RemediationRequestObject, RR_API } from "./remediation-request.js";

/** Objects per LIST page: bounds one response (requests carry their original payload). */
const PAGE_SIZE = 500;
/** Watches end on the server side after about this long and are reopened from the last resourceVersion. */
const WATCH_SECONDS = 240;
const MAX_BACKOFF_MS = 10_000;
/** Beyond this many requests the index gives up (memory) and lookups go to the API server again. */
export const MAX_INDEXED = 100_000;

interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: RemediationRequestObject & { code?: number; message?: string };
}

/** The fields a lookup needs; the rest of a request (payload, labels, spec) is not kept. */
function slim(rr: RemediationRequestObject): RemediationRequestObject {
  const { name, namespace, resourceVersion, creationTimestamp } = rr.metadata;
  const status = rr.status && { overallPhase: rr.status.overallPhase, deduplication: rr.status.deduplication };
  return {
    metadata: { name, namespace, resourceVersion, creationTimestamp },
    spec: { signalFingerprint: rr.spec?.signalFingerprint },
    ...(status ? { status } : {}),
  };
}

const keyOf = (namespace: string, fingerprint: string) => `${namespace}/${fingerprint}`;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/**
 * Every RemediationRequest of the cluster by namespace and fingerprint, kept
 * by list+watch (the informer pattern): a paginated LIST, then a WATCH from
 * its resourceVersion, reopened where it ended; a 410 (history compacted)
 * means LIST again. It replaces a LIST by fingerprint per creation (the
 * generation count and "is one still active") with a memory lookup.
 *
 * Lookups answer only while the watch is open: while it is down (API server
 * restarting, relisting) they return undefined and the caller asks the API
 * server as before. A stale answer is safe for D1: names are derived from the
 * fingerprint and the generation, so a missed creation collides on the name
 * (409) and is adopted, and an adopted request is confirmed with a GET first.
 */
export class RemediationRequestIndex {
  private byKey = new Map<string, Map<string, RemediationRequestObject>>();
  private size = 0;
  private resourceVersion = "";
  private watching = false;
  private overflowed = false;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(
    private readonly kube: KubeClient,
    private readonly metrics: Metrics,
    private readonly log: Log,
  ) {
    kube.onWritten((rr) => this.observe(rr));
  }

  /** Starts list+watch; resolves once the first watch is open, or after `waitMs` (lookups then fall back). */
  async start(waitMs: number): Promise<void> {
    this.loop = this.run();
    const deadline = Date.now() + waitMs;
    while (!this.usable() && Date.now() < deadline && !this.stop.signal.aborted) await sleep(20, this.stop.signal);
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.loop;
  }

  usable(): boolean {
    return this.watching && !this.overflowed;
  }

  /** Requests of this fingerprint in the namespace, any phase; undefined when the index cannot tell. */
  lookup(namespace: string, fingerprint: string): RemediationRequestObject[] | undefined {
    if (!this.usable()) return undefined;
    const entry = this.byKey.get(keyOf(namespace, fingerprint));
    return entry ? [...entry.values()] : [];
  }

  /**
   * A request this process just wrote: known before its watch event arrives.
   * An answer may be processed after a newer watch event, so an older version never replaces a newer one.
   */
  private observe(rr: RemediationRequestObject): void {
    if (!this.usable() || !rr.metadata?.name || !rr.spec?.signalFingerprint) return;
    const known = this.byKey.get(keyOf(rr.metadata.namespace, rr.spec.signalFingerprint))?.get(rr.metadata.name);
    if (known && Number(known.metadata.resourceVersion) > Number(rr.metadata.resourceVersion)) return;
    this.add(slim(rr));
  }

  /** Adds or replaces; true when the request was not in `index` before. */
  private put(index: Map<string, Map<string, RemediationRequestObject>>, rr: RemediationRequestObject): boolean {
    const key = keyOf(rr.metadata.namespace, rr.spec.signalFingerprint);
    let entry = index.get(key);
    if (!entry) {
      entry = new Map();
      index.set(key, entry);
    }
    const added = !entry.has(rr.metadata.name);
    entry.set(rr.metadata.name, rr);
    return added;
  }

  private add(rr: RemediationRequestObject): void {
    if (this.put(this.byKey, rr) && ++this.size > MAX_INDEXED) this.overflow();
    this.metrics.rrIndexEntries.set(this.size);
  }

  private remove(rr: RemediationRequestObject): void {
    const key = keyOf(rr.metadata.namespace, rr.spec.signalFingerprint);
    const entry = this.byKey.get(key);
    if (entry?.delete(rr.metadata.name)) this.size--;
    if (entry?.size === 0) this.byKey.delete(key);
    this.metrics.rrIndexEntries.set(this.size);
  }

  /** Memory first: past MAX_INDEXED the index stops and lookups go to the API server. */
  private overflow(): void {
    this.overflowed = true;
    this.byKey = new Map();
    this.size = 0;
    this.stop.abort();
    this.log.error(
      { limit: MAX_INDEXED },
      "too many RemediationRequests to index in memory; creations look them up in the API server",
    );
  }

  private async run(): Promise<void> {
    for (let failures = 0, expired = false; !this.stop.signal.aborted; ) {
      try {
        if (!this.resourceVersion) await this.relist();
        if (!this.overflowed) await this.watch();
        failures = 0;
        expired = false;
      } catch (err) {
        this.setWatching(false);
        if (this.stop.signal.aborted) return;
        // 410 is the server asking for a relist (e.g. a restarted API server whose watch cache
        // starts after our resourceVersion), not a failure: relist at once, as client-go's
        // reflector does; only a second one in a row backs off.
        if (err instanceof KubeApiError && err.status === 410 && !expired) {
          expired = true;
          this.resourceVersion = "";
          continue;
        }
        expired = false;
        failures++;
        this.log.warn(
          { err: (err as Error).message, failures },
          "RemediationRequest watch interrupted; lookups go to the API server until it is back",
        );
        await sleep(Math.min(250 * 2 ** failures, MAX_BACKOFF_MS), this.stop.signal);
      }
    }
    this.setWatching(false);
  }

  private collectionPath(query: string): string {
    return `/apis/${RR_API.group}/${RR_API.version}/${RR_API.plural}?${query}`;
  }

  /** A fresh, consistent snapshot (paginated), swapped in whole. */
  private async relist(): Promise<void> {
    const fresh = new Map<string, Map<string, RemediationRequestObject>>();
    let size = 0;
    let cont = "";
    let resourceVersion = "";
    do {
      const page = await this.kube.call<{
        items: RemediationRequestObject[];
        metadata: { resourceVersion: string; continue?: string };
      }>(
        "list RemediationRequests (index)",
        "GET",
        this.collectionPath(`limit=${PAGE_SIZE}${cont ? `&continue=${encodeURIComponent(cont)}` : ""}`),
      );
      for (const rr of page.items) if (this.put(fresh, slim(rr))) size++;
      if (size > MAX_INDEXED) return this.overflow();
      resourceVersion ||= page.metadata.resourceVersion;
      cont = page.metadata.continue ?? "";
    } while (cont);
    this.byKey = fresh;
    this.size = size;
    this.resourceVersion = resourceVersion;
    this.metrics.rrIndexEntries.set(size);
  }

  /** Follows changes until the server ends the watch; a 410 clears the resourceVersion (relist). */
  private async watch(): Promise<void> {
    const timeout = WATCH_SECONDS + Math.floor(Math.random() * 60);
    const path = this.collectionPath(
      `watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(this.resourceVersion)}&timeoutSeconds=${timeout}`,
    );
    const deadline = AbortSignal.any([this.stop.signal, AbortSignal.timeout((timeout + 30) * 1000)]);
    const body = await this.kube.stream("watch RemediationRequests (index)", path, deadline);
    this.setWatching(true);
    const text = new TextDecoder();
    let pending = "";
    for await (const chunk of body) {
      pending += text.decode(chunk as Uint8Array, { stream: true });
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim()) this.apply(JSON.parse(line) as WatchEvent);
      }
    }
    this.setWatching(false);
  }

  private apply(event: WatchEvent): void {
    const rr = event.object;
    if (event.type === "ERROR") {
      if (rr.code === 410) this.resourceVersion = ""; // history compacted: list again
      throw new KubeApiError("unavailable", rr.code, `watch RemediationRequests: ${rr.message ?? "error event"}`);
    }
    if (event.type === "ADDED" || event.type === "MODIFIED") this.add(slim(rr));
    else if (event.type === "DELETED") this.remove(rr);
    this.resourceVersion = rr.metadata.resourceVersion ?? this.resourceVersion;
  }

  private setWatching(on: boolean): void {
    this.watching = on;
    this.metrics.rrIndexSynced.set(this.usable() ? 1 : 0);
  }
}
