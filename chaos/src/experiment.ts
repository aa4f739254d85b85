// An experiment is plain data, as a Chaos Mesh or LitmusChaos manifest is: what stack it needs,
// the background load, the steady-state probes, the faults in order and the invariants checked at
// the end. One runner (runner.ts) carries out every experiment the same way.
import type { ConfigTree } from "../../harness/src/components/gateway.js";
import type { ProxiedLink } from "../../harness/src/stack.js";
import type { Corruption } from "./corrupt.js";

/** Which link of the stack a toxic goes on; each link in the experiment's `stack.links` runs through its own Toxiproxy proxy. */
export type Link = ProxiedLink;

/** LitmusChaos probe modes. */
export type ProbeMode = "SOT" | "EOT" | "Edge" | "Continuous" | "OnChaos";

/** LitmusChaos runProperties, in milliseconds. */
export interface RunProperties {
  /** Deadline of one attempt. */
  timeoutMs: number;
  /** Pause between the attempts of one evaluation. */
  intervalMs: number;
  /** Attempts after the first one before an evaluation fails. */
  retries: number;
  /** Continuous and OnChaos: pause between evaluations. */
  pollingIntervalMs?: number;
  /** Wait before the first evaluation. */
  initialDelayMs?: number;
}

export type Comparator = { op: "==" | "!=" | "<" | "<=" | ">" | ">="; value: number };

/** `{gateway}`, `{ingress}`, `{dataStorage}`, `{prometheus}` in a URL stand for the stack's base URLs. */
export type UrlTemplate = string;

export type ProbeSpec =
  | {
      type: "http";
      url: UrlTemplate;
      method?: "GET" | "POST";
      body?: string;
      /** Status code criteria: `==` / `!=` one code, or `oneOf` a list. */
      criteria: { op: "==" | "!="; code: number } | { op: "oneOf"; codes: number[] };
    }
  | {
      type: "prom";
      /** PromQL on the run's Prometheus; the first sample is compared (no sample fails). */
      query: string;
      comparator: Comparator;
    }
  | {
      type: "k8s";
      group: string;
      version: string;
      plural: string;
      namespace?: string;
      labelSelector?: string;
      /** present: at least one; absent: none; count: the number compared. */
      operation: "present" | "absent" | { count: Comparator };
    }
  | {
      type: "cmd";
      command: string;
      args?: string[];
      /** The exit code, and optionally stdout, to expect. */
      expect: { exitCode: number; stdoutIncludes?: string };
    };

export type Probe = ProbeSpec & { name: string; mode: ProbeMode; runProperties: RunProperties };

/** A toxic as Toxiproxy takes it. */
export interface ToxicSpec {
  type: "latency" | "reset_peer" | "limit_data" | "slicer" | "timeout" | "bandwidth";
  attributes: Record<string, number>;
  stream?: "upstream" | "downstream";
}

/** What a fault does; each kind is implemented once in faults.ts. */
export type FaultAction =
  | {
      kind: "toxic";
      link: Link;
      toxic: ToxicSpec;
      /**
       * true drops open connections once the toxic is in place: Toxiproxy rolls toxicity per
       * connection, and a client reconnects (asks Sentinel again, redoes TLS) only when dropped.
       */
      reachOpenConnections: boolean;
    }
  /**
   * SIGKILL the Sentinel master; `waitForResync` first waits until every replica caught up.
   * `replicasMissMs`: the master's replication stream is dropped for that long first, so the
   * replicas are behind when it dies and its last writes die with it (what a replica lagging
   * under load loses; a delay alone does not, as the proxy still delivers what it holds).
   */
  | { kind: "kill-redis-master"; waitForResync: boolean; replicasMissMs?: number }
  | { kind: "kill-redis" }
  | { kind: "stop-kube-apiserver" }
  | { kind: "restart-etcd" }
  | { kind: "data-storage"; mode: "fail" | "stall" | "kill" }
  /** The gateway throttled by a cgroup v1 CFS quota (the memory limit is a StackSpec: it holds from the start). */
  | { kind: "cpu-quota"; cores: number }
  /**
   * A sender beside the load posting corrupted webhook bodies, through the ingress link (where
   * its toxics cut or slice them) or straight to the gateway.
   */
  | { kind: "corrupt-sender"; rate: number; corruption: Corruption; via: "ingress" | "direct" }
  /**
   * A burst: a second sender of the load's own traffic at `rate` requests/s beside it, holding up
   * to `maxInFlight` requests open, so a gateway that queues instead of shedding piles them up.
   * `alertsPerRequest`: each request an Alertmanager notification grouping that many alerts.
   */
  | { kind: "burst"; rate: number; maxInFlight: number; alertsPerRequest?: number }
  /** Several actions in place at once (e.g. a toxic on the ingress link and the sender crossing it), removed in reverse. */
  | { kind: "combined"; actions: FaultAction[] };

export interface Fault {
  name: string;
  action: FaultAction;
  /** How long the fault stays (ms); for a kill, how long the runner watches before the next fault. */
  durationMs: number;
  /** Pause after the previous fault was removed (ms). */
  afterMs?: number;
  /** Repeat the fault this many times in a row (kills). */
  repeat?: number;
}

/** Background load: an open-model arrival rate with the load/ traffic model. */
export interface LoadSpec {
  /** Signals per second (default 200). */
  rate: number;
  /** Deadline of one request (ms): an answer later than this counts as unanswered. */
  timeoutMs?: number;
  /** Load after the warm-up and before the first fault (ms), so the chaos hits a warm steady state. */
  leadInMs?: number;
  /** Through the ingress proxy (default when the stack proxies `ingress`) or straight to the gateway. */
  via?: "ingress" | "direct";
}

export interface StackSpec {
  redis: "single" | "sentinel";
  /**
   * The links that run through Toxiproxy (default: every one); the others are direct. A proxy costs
   * CPU on every byte it carries (at 1000 signals/s, a quarter to a third of a core for all of them),
   * so an experiment at a high rate proxies only what it faults. The load goes through `ingress`
   * when it is proxied.
   */
  links?: Link[];
  /** Sentinel only: latency on the replication links (ms), so a kill lands while a replica is behind. */
  replicationLatencyMs?: number;
  /** Gateway settings on top of the stack's own. */
  gateway?: ConfigTree;
  /**
   * The gateway started inside a cgroup v1 memory limit of this many bytes, as a Kubernetes limit
   * puts it: cgroup v1 charges memory only from the moment a process joins, so the limit holds
   * from the gateway's first allocation.
   */
  memoryLimitBytes?: number;
  /** The audit journal on a tmpfs of this many bytes (disk-full). */
  journalTmpfsBytes?: number;
}

/** Invariants checked at the end against real state (see invariants.ts). */
export type InvariantSpec =
  /**
   * D1, D2/D3, Redis, audit and metrics accounting of every 2xx (harness/src/invariants.ts):
   * exact, or no-loss (occurrences at least the 2xx answers, no request twice) for a failover.
   */
  | { kind: "accounting"; mode?: "exact" | "no-loss" }
  /** Every answer's status is in `allowed`; each in `retryAfter` carries a Retry-After header. */
  | {
      kind: "answers";
      allowed: number[];
      retryAfter?: number[];
      includeUnanswered?: boolean;
      /** "fault": only answers sent while a fault was in place (default "all"). */
      during?: "fault" | "all";
    }
  /** No answer took longer than this (ms): a clear error quickly, never a hang. */
  | { kind: "max-latency"; ms: number; during?: "fault" | "all" }
  /** After the fault was removed, the answers were all 2xx again within this (ms). */
  | { kind: "recovers-within"; ms: number }
  /** The gateway process is the one started at the beginning, still running. */
  | { kind: "gateway-not-restarted" }
  /** Every audit event reached Data Storage, in order per signal, none dropped. */
  | { kind: "audit-delivered" }
  /**
   * Every audit event the gateway made (two per signal answered 2xx) is a row in Data Storage or
   * counted in gateway_audit_events_dropped_total{reason}; at least `minDropped` were dropped.
   */
  | { kind: "audit-drops-counted"; minDropped?: number }
  /** Corrupted bodies were answered 400 application/problem+json, each. */
  | { kind: "corrupt-rejected" }
  /** Accepted answers' latency p99 during the fault (ms). */
  | { kind: "accepted-p99"; ms: number; during?: "fault" | "all" }
  /** Signal latency during the fault stays within `factor` × the baseline p99 (plus `slackMs`). */
  | { kind: "latency-near-baseline"; factor: number; slackMs: number }
  /** The gateway was OOM-killed (or not). */
  | { kind: "oom-killed"; expected: boolean }
  /** The gateway's RSS stayed under this (bytes). */
  | { kind: "rss-below"; bytes: number }
  /**
   * Some answers during the fault were 503/429 with Retry-After (shedding happened), within `p99Ms`
   * at p99. With `onset`, those sent in the first `onset.ms` of a fault (the load hits before the
   * gateway's shedding has engaged) are bounded by `onset.p99Ms` instead.
   */
  | { kind: "shed-during-fault"; min: number; p99Ms?: number; onset?: { ms: number; p99Ms: number } }
  /** At least `min` answers of `status` to requests sent while the fault named `fault` was in place. */
  | { kind: "status-during-fault"; fault: string; status: number; min: number }
  /**
   * After each API server / etcd fault was removed, the gateway's RemediationRequest index followed
   * the API server again (gateway_rr_index_synced in Prometheus) and a creation succeeded, within `ms`.
   */
  | { kind: "kube-resync"; ms: number }
  /** The audit journal held events during the faults (gateway_audit_journal_bytes > 0 in Prometheus). */
  | { kind: "audit-journaled" };

export interface Experiment {
  /** `group/name`, e.g. `infra/redis-failover`. */
  name: string;
  /** What it shows, one sentence, for the report. */
  description: string;
  stack: StackSpec;
  load: LoadSpec;
  probes: Probe[];
  faults: Fault[];
  invariants: InvariantSpec[];
  /** What the host must offer (root, cgroup v1 memory, tmpfs...); checked before anything starts. */
  requires?: Array<"root" | "cgroup-v1-memory" | "cgroup-v1-cpu" | "tmpfs">;
}

/** What the command line may set; each experiment maps them onto itself. */
export interface RunParameters {
  mode: "ci" | "full";
  rate?: number;
  durationMs?: number;
  kills?: number;
  seed: number;
}

/** Links the experiment's faults and load go through; each must be in `stack.links`. */
export function linksUsed(experiment: Experiment): Set<Link> {
  const used = new Set<Link>();
  const visit = (action: FaultAction): void => {
    if (action.kind === "toxic") used.add(action.link);
    if (action.kind === "corrupt-sender" && action.via === "ingress") used.add("ingress");
    if (action.kind === "combined") action.actions.forEach(visit);
  };
  for (const fault of experiment.faults) visit(fault.action);
  if (experiment.load.via === "ingress") used.add("ingress");
  if (experiment.stack.replicationLatencyMs) used.add("replication");
  return used;
}
