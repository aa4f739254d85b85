import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { repoRoot, scratchDir } from "../paths.js";
import { eventually } from "../poll.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { type ExitStatus, ManagedProcess } from "../supervisor.js";

const MAIN = join(repoRoot, "gateway", "src", "main.ts");

export type ConfigTree = Record<string, unknown>;

/** One sample of the Prometheus text exposition. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parsed /metrics: `value(name, labels?)` sums the samples whose labels include `labels`. */
export class MetricsSnapshot {
  constructor(readonly samples: MetricSample[]) {}

  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples
      .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((sum, s) => sum + s.value, 0);
  }
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split("\n")) {
    const m = line.startsWith("#") ? null : SAMPLE.exec(line.trim());
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(LABEL)) {
      labels[k as string] = (v as string).replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    const raw = m[3] as string;
    const value = raw === "+Inf" ? Number.POSITIVE_INFINITY : raw === "-Inf" ? Number.NEGATIVE_INFINITY : Number(raw);
    samples.push({ name: m[1] as string, labels, value });
  }
  return samples;
}

function isTree(value: unknown): value is ConfigTree {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Nested merge; lists and scalars in `patch` replace what was there. */
export function mergeConfig(base: ConfigTree, patch: ConfigTree): ConfigTree {
  const out: ConfigTree = { ...base };
  for (const [k, v] of Object.entries(patch))
    out[k] = isTree(v) && isTree(out[k]) ? mergeConfig(out[k] as ConfigTree, v) : v;
  return out;
}

/**
 * The gateway as its own process, started like a user would:
 * `node --import tsx gateway/src/main.ts --config <file>`.
 *
 *   const gw = await new GatewayProcess()
 *     .withConfig({ redis: { url: redis.getConnectionUrl() }, dataStorage: { url: ds.getUrl() } })
 *     .withEnv({ GATEWAY_KUBECONFIG: kube.getKubeconfigPath() })
 *     .start();
 *
 * The harness writes the YAML file into a scratch dir (listen address on a free
 * port, audit journal in the scratch dir, a 1 s shutdown grace period unless
 * given) and waits for /readyz.
 */
export class GatewayProcess {
  private config: ConfigTree = {};
  private env: Record<string, string> = {};
  private readyPath = "/readyz";
  private stopTimeoutMs = 90_000;
  private main = MAIN;
  private cgroups: string[] = [];
  private nodeOptions: string[] = [];

  /** A partial configuration (YAML structure, e.g. `{ processing: { deduplication: { ttl: "30s" } } }`), merged. */
  withConfig(partial: ConfigTree): this {
    this.config = mergeConfig(this.config, partial);
    return this;
  }

  withEnv(env: Record<string, string>): this {
    this.env = { ...this.env, ...env };
    return this;
  }

  /** Wait for another path at start, e.g. "/healthz" when the dependencies are down on purpose. */
  withStartupProbe(path: string): this {
    this.readyPath = path;
    return this;
  }

  /**
   * Starts the process inside these cgroup directories. cgroup v1 charges memory only from the
   * moment a process joins, so a memory limit must hold the gateway from its first allocation.
   */
  withCgroups(paths: string[]): this {
    this.cgroups = paths;
    return this;
  }

  /** Options of the node process itself, e.g. `--inspect=127.0.0.1:9229` for the bench's CPU profiles. */
  withNodeOptions(options: string[]): this {
    this.nodeOptions = [...this.nodeOptions, ...options];
    return this;
  }

  /** Another entry point, e.g. a patched copy from `patchedGateway()`. */
  withMain(path: string): this {
    this.main = path;
    return this;
  }

  /** How long `stop()` waits for a clean exit before SIGKILL. */
  withStopTimeout(ms: number): this {
    this.stopTimeoutMs = ms;
    return this;
  }

  async start(): Promise<StartedGateway> {
    const dir = scratchDir("gateway");
    const port = await freePort();
    const config = mergeConfig(
      {
        server: { listenAddress: `127.0.0.1:${port}` },
        dataStorage: { journalDir: join(dir, "audit-journal") },
        shutdown: { gracePeriod: "1s" },
      },
      this.config,
    );
    const listen = String((config.server as ConfigTree).listenAddress);
    const url = `http://${listen.replace(/^0\.0\.0\.0:/, "127.0.0.1:")}`;
    const configPath = join(dir, "gateway.yaml");
    writeFileSync(configPath, stringify(config));
    const node = [process.execPath, ...this.nodeOptions, "--import", "tsx", this.main, "--config", configPath];
    // The shell joins the cgroups, then becomes the gateway (same pid, same process group).
    const joinCgroups =
      'IFS=:; for g in $GATEWAY_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 97; done; unset IFS; exec "$@"';
    const [command, ...args] = this.cgroups.length ? ["/bin/sh", "-c", joinCgroups, "gateway", ...node] : node;
    const proc = new ManagedProcess({
      name: `gateway-${listen.split(":").pop()}`,
      command: command as string,
      args,
      cwd: repoRoot,
      env: { ...this.env, ...(this.cgroups.length && { GATEWAY_CGROUPS: this.cgroups.join(":") }) },
      ready: () => httpReady(`${url}${this.readyPath}`),
      readyTimeoutMs: 60_000,
      stopTimeoutMs: this.stopTimeoutMs,
    });
    await proc.startIn(dir);
    return new StartedGateway(proc, url, configPath, config, dir);
  }
}

export type ReloadOutcome = "success" | "failure";

export class StartedGateway {
  constructor(
    /** The supervised process, for kill / pause / signal. */
    readonly process: ManagedProcess,
    private readonly url: string,
    private readonly configPath: string,
    private config: ConfigTree,
    private readonly dir: string,
  ) {}

  /** Base URL, e.g. http://127.0.0.1:41234 */
  getUrl(): string {
    return this.url;
  }

  getConfigPath(): string {
    return this.configPath;
  }

  /** The configuration last written (YAML structure). */
  getConfig(): ConfigTree {
    return this.config;
  }

  async metrics(): Promise<MetricsSnapshot> {
    const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
    return new MetricsSnapshot(parseExposition(await res.text()));
  }

  /**
   * Merges `partial` into the file (written atomically, so the gateway's file
   * watcher sees one complete version) and waits until the gateway reports a
   * reload; returns its result. The merged content must differ from the file.
   */
  async updateConfig(partial: ConfigTree): Promise<ReloadOutcome> {
    this.config = mergeConfig(this.config, partial);
    return this.awaitReload(() => this.writeAtomically(stringify(this.config)));
  }

  /** Replaces the file with raw text (e.g. broken YAML) and waits for the reload attempt. */
  async writeConfigFile(text: string): Promise<ReloadOutcome> {
    return this.awaitReload(() => this.writeAtomically(text));
  }

  /** SIGHUP: reload the file as it is; returns the result. */
  async reload(): Promise<ReloadOutcome> {
    return this.awaitReload(() => this.process.signal("SIGHUP"));
  }

  private writeAtomically(text: string): void {
    const tmp = `${this.configPath}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.configPath);
  }

  private async awaitReload(trigger: () => void): Promise<ReloadOutcome> {
    const counts = async () => {
      const m = await this.metrics();
      const name = "gateway_config_reloads_total";
      return { success: m.value(name, { result: "success" }), failure: m.value(name, { result: "failure" }) };
    };
    const before = await counts();
    trigger();
    return eventually(
      async () => {
        const now = await counts();
        if (now.success > before.success) return "success" as const;
        if (now.failure > before.failure) return "failure" as const;
        return false;
      },
      { what: "the gateway to report a configuration reload", timeoutMs: 15_000 },
    );
  }

  /** SIGTERM and wait; a clean shutdown exits 0, anything else throws with the log tail. */
  async stop(): Promise<ExitStatus> {
    const status = await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
    if (status.code !== 0) {
      throw new Error(
        `gateway exited with code ${status.code} (signal ${status.signal}) instead of 0\n${this.process.logTail()}`,
      );
    }
    return status;
  }
}
