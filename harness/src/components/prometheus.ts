import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { binary, scratchDir } from "../paths.js";
import { eventually } from "../poll.js";
import { freePort } from "../ports.js";
import { httpReady } from "../probes.js";
import { ManagedProcess } from "../supervisor.js";

export interface ScrapeOptions {
  /** Prometheus duration, e.g. "1s" (default). */
  scrapeInterval?: string;
  /** Default /metrics. */
  metricsPath?: string;
}

interface ScrapeTarget extends ScrapeOptions {
  job: string;
  /** host:port */
  target: string;
}

/** Everything the generated prometheus.yml is made of. */
interface PrometheusSetup {
  targets: ScrapeTarget[];
  ruleFiles: string[];
  alertmanagers: URL[];
}

/** One series of an instant query. */
export interface VectorSample {
  metric: Record<string, string>;
  /** Unix seconds. */
  timestamp: number;
  value: number;
}

/** One series of a range query. */
export interface RangeSeries {
  metric: Record<string, string>;
  /** [unix seconds, value] pairs, oldest first. */
  values: Array<[number, number]>;
}

export interface RangeQuery {
  start: Date;
  end: Date;
  stepSeconds: number;
}

// Rules are evaluated every second so alert tests do not wait for the default minute.
const EVALUATION_INTERVAL = "1s";

function renderConfig(setup: PrometheusSetup): string {
  return stringify({
    global: { scrape_interval: "1s", evaluation_interval: EVALUATION_INTERVAL },
    scrape_configs: setup.targets.map((t) => ({
      job_name: t.job,
      scrape_interval: t.scrapeInterval ?? "1s",
      metrics_path: t.metricsPath ?? "/metrics",
      static_configs: [{ targets: [t.target] }],
    })),
    rule_files: setup.ruleFiles,
    alerting: {
      alertmanagers: setup.alertmanagers.map((url) => ({
        scheme: url.protocol.replace(":", ""),
        path_prefix: url.pathname,
        static_configs: [{ targets: [url.host] }],
      })),
    },
  });
}

/**
 * A real Prometheus on loopback with a generated configuration.
 * `const prom = await new PrometheusServer().withScrapeTarget("gateway", "127.0.0.1:8080").start()`
 *
 * The remote-write receiver (load generators push there) and the lifecycle
 * API (config reload) are on; alerts are re-sent every second.
 */
export class PrometheusServer {
  private readonly targets: ScrapeTarget[] = [];
  private readonly rules: string[] = [];
  private readonly alertmanagers: URL[] = [];
  private dataDir: string | undefined;

  withScrapeTarget(job: string, target: string, options: ScrapeOptions = {}): this {
    this.targets.push({ job, target, ...options });
    return this;
  }

  /** A rule file's YAML text (`groups: [...]`). */
  withRuleFile(yaml: string): this {
    this.rules.push(yaml);
    return this;
  }

  /** Where firing alerts are sent, e.g. an Alertmanager's getUrl(). */
  withAlertmanager(url: string): this {
    this.alertmanagers.push(new URL(url));
    return this;
  }

  /**
   * Keeps the TSDB in `dir` (created if missing) instead of the scratch folder, and leaves it
   * there on stop, so a run's samples can be opened again later (`task grafana:up RUN=...`).
   * A TSDB already in `dir` is reopened and appended to.
   */
  withDataDir(dir: string): this {
    this.dataDir = dir;
    return this;
  }

  async start(): Promise<StartedPrometheusServer> {
    const port = await freePort();
    const dir = scratchDir("prometheus");
    const ruleFiles = this.rules.map((yaml, i) => {
      const path = join(dir, `rules-${i}.yml`);
      writeFileSync(path, yaml);
      return path;
    });
    const setup: PrometheusSetup = { targets: [...this.targets], ruleFiles, alertmanagers: [...this.alertmanagers] };
    const configPath = join(dir, "prometheus.yml");
    writeFileSync(configPath, renderConfig(setup));
    const dataDir = this.dataDir ?? join(dir, "data");
    mkdirSync(dataDir, { recursive: true });
    const url = `http://127.0.0.1:${port}`;
    const proc = new ManagedProcess({
      name: `prometheus-${port}`,
      command: binary("prometheus"),
      args: [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${dataDir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--web.enable-remote-write-receiver",
        "--web.enable-lifecycle",
        "--rules.alert.resend-delay=1s",
      ],
      ready: () => httpReady(`${url}/-/ready`),
      readyTimeoutMs: 30_000,
    });
    await proc.startIn(dir);
    return new StartedPrometheusServer(proc, url, setup, configPath, dir);
  }
}

interface ApiResponse<T> {
  status: "success" | "error";
  data?: { resultType: string; result: T };
  errorType?: string;
  error?: string;
}

/** Prometheus writes special values as strings: "NaN", "+Inf", "-Inf". */
function sampleValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

type RawMatrix = Array<{ metric: Record<string, string>; values: Array<[number, string]> }>;

function rangeSeries(result: RawMatrix): RangeSeries[] {
  return result.map((r) => ({ metric: r.metric, values: r.values.map(([t, v]) => [t, sampleValue(v)]) }));
}

export class StartedPrometheusServer {
  constructor(
    readonly process: ManagedProcess,
    private readonly url: string,
    private readonly setup: PrometheusSetup,
    private readonly configPath: string,
    private readonly dir: string,
  ) {}

  getUrl(): string {
    return this.url;
  }

  /** Where remote-write clients (k6, the load runner) push samples. */
  remoteWriteUrl(): string {
    return `${this.url}/api/v1/write`;
  }

  /** Instant query; fails unless the result is a vector. */
  async query(promql: string, at?: Date): Promise<VectorSample[]> {
    const params: Record<string, string> = { query: promql };
    if (at) params.time = String(at.getTime() / 1000);
    const result = await this.api<Array<{ metric: Record<string, string>; value: [number, string] }>>(
      "query",
      params,
      "vector",
    );
    return result.map((r) => ({ metric: r.metric, timestamp: r.value[0], value: sampleValue(r.value[1]) }));
  }

  async queryRange(promql: string, range: RangeQuery): Promise<RangeSeries[]> {
    const result = await this.api<RawMatrix>(
      "query_range",
      {
        query: promql,
        start: String(range.start.getTime() / 1000),
        end: String(range.end.getTime() / 1000),
        step: String(range.stepSeconds),
      },
      "matrix",
    );
    return rangeSeries(result);
  }

  /** The raw samples, as stored, of the series `selector` picks in the `seconds` up to now. */
  async samples(selector: string, seconds: number): Promise<RangeSeries[]> {
    return rangeSeries(await this.api<RawMatrix>("query", { query: `${selector}[${seconds}s]` }, "matrix"));
  }

  /** Polls until the query returns at least one series, and returns them. */
  async waitForSeries(promql: string, options: { timeoutMs?: number } = {}): Promise<VectorSample[]> {
    return eventually(
      async () => {
        const samples = await this.query(promql);
        if (samples.length === 0) throw new Error("empty result");
        return samples;
      },
      { what: `Prometheus series for ${promql}`, timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 250 },
    );
  }

  /** Adds a scrape job to the running server (config rewrite + /-/reload). */
  async addScrapeTarget(job: string, target: string, options: ScrapeOptions = {}): Promise<void> {
    this.setup.targets.push({ job, target, ...options });
    writeFileSync(this.configPath, renderConfig(this.setup));
    const res = await fetch(`${this.url}/-/reload`, { method: "POST", signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`Prometheus config reload failed (${res.status}): ${await res.text()}`);
  }

  private async api<T>(endpoint: string, params: Record<string, string>, resultType: string): Promise<T> {
    const res = await fetch(`${this.url}/api/v1/${endpoint}`, {
      method: "POST",
      body: new URLSearchParams(params),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json()) as ApiResponse<T>;
    if (body.status !== "success" || !body.data) {
      throw new Error(
        `Prometheus ${endpoint} '${params.query}' failed (${res.status} ${body.errorType}): ${body.error}`,
      );
    }
    if (body.data.resultType !== resultType) {
      throw new Error(
        `Prometheus ${endpoint} '${params.query}' returned a ${body.data.resultType}, expected a ${resultType}`,
      );
    }
    return body.data.result;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
