// What every stand-in controller shares: its API client, informers, status
// writes that retry on resourceVersion conflicts, a per-object work queue, and
// the /healthz and /metrics endpoints.
import { createServer, type Server } from "node:http";
import {
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { Counter, Registry } from "prom-client";

export const GROUP = "kubernaut.ai";
export const VERSION = "v1alpha1";

export interface Ref {
  namespace: string;
  name: string;
}

/** A kubernaut.ai object as the stand-ins see it: spec and status are theirs to read. */
export interface KubernautObject extends KubernetesObject {
  metadata: NonNullable<KubernetesObject["metadata"]> & { name: string; namespace: string; uid?: string };
  spec: Record<string, unknown>;
  status?: Record<string, unknown>;
}

export const refOf = (obj: KubernautObject): Ref => ({ namespace: obj.metadata.namespace, name: obj.metadata.name });
const keyOf = (ref: Ref) => `${ref.namespace}/${ref.name}`;

/** One line of JSON per event on stdout: the harness keeps it as the component's log. */
export function log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}

export class Metrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: "standin_reconciles_total",
    help: "Reconciliations by kind and result (ok, error)",
    labelNames: ["kind", "result"],
    registers: [this.registry],
  });
  readonly transitions = new Counter({
    name: "standin_phase_transitions_total",
    help: "Phases written through the status subresource, by kind and phase",
    labelNames: ["kind", "phase"],
    registers: [this.registry],
  });
  readonly conflicts = new Counter({
    name: "standin_status_conflicts_total",
    help: "Status writes refused for a stale resourceVersion and retried on the object as it is now",
    labelNames: ["kind"],
    registers: [this.registry],
  });
}

/** /healthz answers 200 once every informer has listed and while none has failed for good. */
export function serve(listen: string, metrics: Metrics, healthy: () => boolean): Promise<Server> {
  const [host, port] = splitHostPort(listen);
  const server = createServer((req, res) => {
    if (req.url === "/healthz") {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: ok ? "healthy" : "starting" }));
    } else if (req.url === "/metrics") {
      metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(text);
      });
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

export function splitHostPort(listen: string): [string, number] {
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen: expected host:port, got ${JSON.stringify(listen)}`);
  return [m[1] as string, Number(m[2])];
}

/** The API's error code, if the call got an answer. */
export function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/**
 * An informer of a kubernaut.ai kind in every namespace (list, then watch).
 * Synced once the first list arrived. On a failed list or an ended watch it
 * lists and watches again after a pause, as client-go does.
 */
export function kindInformer(
  kc: KubeConfig,
  plural: string,
  onChange: (obj: KubernautObject) => void,
): StartedInformer<KubernautObject> {
  const api = kc.makeApiClient(CustomObjectsApi);
  return startInformer(kc, `/apis/${GROUP}/${VERSION}/${plural}`, plural, onChange, () =>
    api.listClusterCustomObject({ group: GROUP, version: VERSION, plural }),
  );
}

export interface StartedInformer<T extends KubernetesObject> {
  cache: ObjectCache<T>;
  synced(): boolean;
  stop(): Promise<void>;
}

export function startInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  what: string,
  onChange: (obj: T) => void,
  list: () => Promise<KubernetesListObject<T>>,
  onDelete?: (obj: T) => void,
): StartedInformer<T> {
  let synced = false;
  let stopped = false;
  const informer = makeInformer<T>(kc, path, async () => {
    const result = await list();
    synced = true;
    return result;
  });
  informer.on("add", onChange);
  informer.on("update", onChange);
  if (onDelete) informer.on("delete", onDelete);
  const again = (err: unknown) => {
    if (stopped) return;
    log("warn", `list or watch of ${what} failed; again in 1 s`, { err: String((err as Error)?.message ?? err) });
    setTimeout(begin, 1_000).unref();
  };
  const begin = () => {
    if (!stopped) informer.start().catch(again);
  };
  informer.on("error", again);
  begin();
  return {
    cache: informer,
    synced: () => synced,
    stop: async () => {
      stopped = true;
      await informer.stop();
    },
  };
}

/**
 * Reconciliation, one object at a time: a key queued while its reconcile runs
 * is run again afterwards (with the object as the cache has it then), never twice at once.
 */
export class WorkQueue {
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly kind: string,
    private readonly metrics: Metrics,
    private readonly reconcile: (ref: Ref) => Promise<void>,
  ) {}

  add(ref: Ref): void {
    if (this.stopped) return;
    const key = keyOf(ref);
    if (this.running.has(key)) {
      this.again.add(key);
      return;
    }
    this.running.add(key);
    void this.run(ref, key);
  }

  /** Reconcile `ref` again after `ms` (a step delay or a phase deadline); a later call replaces an earlier one. */
  after(ref: Ref, ms: number): void {
    const key = keyOf(ref);
    clearTimeout(this.timers.get(key));
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(ref);
    }, ms);
    timer.unref();
    this.timers.set(key, timer);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
  }

  private async run(ref: Ref, key: string): Promise<void> {
    try {
      await this.reconcile(ref);
      this.metrics.reconciles.inc({ kind: this.kind, result: "ok" });
    } catch (err) {
      this.metrics.reconciles.inc({ kind: this.kind, result: "error" });
      log("warn", `reconcile of ${this.kind} ${key} failed; retrying in 1 s`, { err: (err as Error).message });
      this.after(ref, 1_000);
    } finally {
      this.running.delete(key);
      if (this.again.delete(key)) this.add(ref);
    }
  }
}

/**
 * Writes status through the status subresource: reads the object, asks
 * `decide` what to write (undefined: nothing), and sends it as a merge patch
 * guarded by the resourceVersion read. On 409 the object changed meanwhile
 * (the gateway's count, another writer): read again and decide again.
 */
export async function writeStatus(
  kc: KubeConfig,
  plural: string,
  ref: Ref,
  metrics: Metrics,
  decide: (obj: KubernautObject) => Record<string, unknown> | undefined,
): Promise<KubernautObject | undefined> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const params = { group: GROUP, version: VERSION, plural, namespace: ref.namespace, name: ref.name };
  for (let attempt = 0; attempt < 10; attempt++) {
    let current: KubernautObject;
    try {
      current = (await api.getNamespacedCustomObjectStatus(params)) as KubernautObject;
    } catch (err) {
      if (statusCode(err) === 404) return undefined; // deleted: nothing to drive
      throw err;
    }
    const status = decide(current);
    if (!status) return current;
    try {
      const written = (await api.patchNamespacedCustomObjectStatus(
        { ...params, body: { metadata: { resourceVersion: current.metadata.resourceVersion }, status } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      )) as KubernautObject;
      const phase = (status.overallPhase ?? status.phase) as string | undefined;
      if (phase) metrics.transitions.inc({ kind: plural, phase });
      return written;
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
      metrics.conflicts.inc({ kind: plural });
    }
  }
  throw new Error(`status of ${plural} ${keyOf(ref)}: still conflicting after 10 attempts`);
}

export const nowIso = () => new Date().toISOString();
