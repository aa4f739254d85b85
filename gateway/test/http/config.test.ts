import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { eventually } from "../../../harness/src/poll.js";
import { ConfigError, defaultConfig, parseConfig } from "../../src/config.js";
import { configReference } from "../../src/config-reference.js";
import { ConfigStore } from "../../src/config-reload.js";
import { CONFIG_FIELDS, type FieldSpec } from "../../src/config-schema.js";
import { formatDuration, parseDuration, parseSize } from "../../src/config-values.js";
import { createMetrics } from "../../src/metrics.js";
import { metricValue } from "./helpers.js";

function problems(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(yaml, { source: "gateway.yaml", env });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

/** `a.b.c` + value → nested YAML. */
function yamlAt(path: string, value: unknown): string {
  const tree = path
    .split(".")
    .reverse()
    .reduce<unknown>((inner, key) => ({ [key]: inner }), value);
  return stringify(tree);
}

/** A value of the wrong shape for each field type. */
function wrongValue(spec: FieldSpec): unknown {
  switch (spec.type) {
    case "integer":
    case "number":
      return "lots";
    case "boolean":
      return "yes";
    case "string":
    case "path":
      return ["a", "list"];
    case "namespace-list":
      return ["Not_A_Namespace"];
    case "host-port-list":
      return ["no-port"];
    case "string-map":
      return ["not", "a", "map"];
    default:
      return "%%bad%%";
  }
}

describe("configuration validation", () => {
  it("gives the documented message for an out-of-range duration", () => {
    expect(problems(yamlAt("processing.deduplication.ttl", "2s"))).toEqual([
      "configuration error in 'processing.deduplication.ttl': must be between 10s and 24h (got: 2s)",
    ]);
  });

  it.each(CONFIG_FIELDS.map((f) => [f.path, f] as const))(
    "names field, value and reason for a wrong %s",
    (path, spec) => {
      const bad = wrongValue(spec);
      const [message, ...rest] = problems(yamlAt(path, bad));
      expect(rest).toEqual([]);
      const shownValue = spec.secret ? "<redacted>" : typeof bad === "string" ? bad : JSON.stringify(bad);
      expect(message).toMatch(new RegExp(`^configuration error in '${path.replace(/\./g, "\\.")}': must .+ \\(got: `));
      expect(message?.endsWith(`(got: ${shownValue})`), message).toBe(true);
    },
  );

  it.each(CONFIG_FIELDS.filter((f) => f.max !== undefined).map((f) => [f.path, f] as const))(
    "names the allowed range for %s",
    (path, spec) => {
      const above = typeof spec.max === "number" ? spec.max * 10 : spec.type === "duration" ? "1000h" : "1000GiB";
      expect(problems(yamlAt(path, above))).toEqual([
        `configuration error in '${path}': must be between ${spec.min} and ${spec.max} (got: ${above})`,
      ]);
    },
  );

  it("rejects unknown keys with a did-you-mean", () => {
    expect(problems("processing:\n  dedup:\n    ttl: 5m\n")).toEqual([
      "configuration error in 'processing.dedup': unknown key; did you mean 'processing.deduplication'?",
    ]);
    expect(problems("server:\n  listenAdress: 127.0.0.1:1\n")).toEqual([
      "configuration error in 'server.listenAdress': unknown key; did you mean 'server.listenAddress'?",
    ]);
    expect(problems("ttl: 5m\n")).toEqual([
      "configuration error in 'ttl': unknown key; did you mean 'processing.deduplication.ttl'?",
    ]);
    expect(problems("rateLimit:\n  zzzzzz: 1\n")[0]).toMatch(
      /^configuration error in 'rateLimit.zzzzzz': unknown key; valid keys here: burst, enabled, requestsPerSecond, trustForwardedFor$/,
    );
  });

  it("reports every problem at once", () => {
    const found = problems("logLevel: loud\nrateLimit:\n  burst: 0\nnope: 1\n");
    expect(found).toHaveLength(3);
    expect(found.join("\n")).toContain(
      "'logLevel': must be one of: fatal, error, warn, info, debug, trace (got: loud)",
    );
    expect(found.join("\n")).toContain("'rateLimit.burst': must be between 1 and 1000000 (got: 0)");
  });

  it("reports YAML syntax errors with line and column, and a non-mapping document", () => {
    expect(problems("server:\n  listenAddress: [1,\n")[0]).toMatch(
      /^configuration error in 'gateway.yaml': invalid YAML at line \d+, column \d+: /,
    );
    expect(problems("server:\n  a: 1\n  a: 2\n")[0]).toMatch(/invalid YAML at line 3/);
    expect(problems("- a\n- b\n")).toEqual([
      'configuration error in \'gateway.yaml\': must be a YAML mapping of settings (got: ["a","b"])',
    ]);
    expect(problems("server: 5\n")).toEqual([
      "configuration error in 'server': must be a mapping of settings (got: 5)",
    ]);
  });

  it("checks rules across fields", () => {
    expect(problems("redis:\n  mode: sentinel\n")).toEqual([
      "configuration error in 'redis.sentinels': must list at least one sentinel (host:port) when redis.mode is 'sentinel' (got: [])",
    ]);
    expect(problems("processing:\n  retry:\n    initialBackoff: 2s\n    maxBackoff: 1s\n")[0]).toContain(
      "'processing.retry.maxBackoff': must not be shorter than processing.retry.initialBackoff (got: 1s)",
    );
    expect(problems("dataStorage:\n  bufferSize: 100\n  batchSize: 500\n")[0]).toContain("'dataStorage.batchSize'");
    expect(problems("namespaces:\n  allow: [a]\n  deny: [a]\n")[0]).toContain(
      "cannot be both allowed and denied (got: a)",
    );
  });

  it("never shows a secret's value", () => {
    const found = problems("redis:\n  password: [s3cret]\n");
    expect(found[0]).toContain("<redacted>");
    expect(found.join()).not.toContain("s3cret");
  });
});

describe("configuration values", () => {
  it("parses and formats durations and sizes", () => {
    expect(parseDuration("100ms")).toBe(100);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("5")).toBeUndefined();
    expect(parseDuration("5 m")).toBeUndefined();
    expect(formatDuration(90_500)).toBe("1m30s500ms");
    expect(parseSize("256KiB")).toBe(262_144);
    expect(parseSize(1000)).toBe(1000);
    expect(parseSize("1MB")).toBe(1_000_000);
    expect(parseSize("lots")).toBeUndefined();
  });

  it("builds the full GatewayConfig from defaults (every field mapped)", () => {
    expect(defaultConfig()).toEqual({
      server: { listenAddress: "0.0.0.0:8080", bodyLimitBytes: 262_144, requestTimeoutMs: 30_000 },
      auth: { enabled: false, cacheTtlMs: 10_000 },
      redis: { mode: "single", url: "redis://127.0.0.1:6379" },
      kubernetes: { mode: "kubeconfig", requestTimeoutMs: 10_000 },
      processing: {
        deduplication: { ttlMs: 300_000, statusFlushIntervalMs: 1000, statusWriteRate: 50 },
        storm: { enabled: true, rateThreshold: 10, detectionWindowMs: 60_000, aggregationWindowMs: 60_000 },
        retry: { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 5000 },
        environment: { cacheTtlMs: 30_000, overrides: {} },
      },
      rateLimit: { enabled: true, requestsPerSecond: 100, burst: 200, trustForwardedFor: false },
      backpressure: { maxInFlight: 500, maxEventLoopLagMs: 1000, maxEventLoopUtilization: 1 },
      namespaces: { allow: [], deny: [], fallbackNamespace: "kubernaut-system" },
      dataStorage: {
        url: "http://127.0.0.1:8085",
        bufferSize: 10_000,
        batchSize: 1000,
        flushIntervalMs: 1000,
        journalDir: "data/audit-journal",
        journalMaxBytes: 268_435_456,
        requestTimeoutMs: 5000,
      },
      shutdown: { gracePeriodMs: 5000, drainTimeoutMs: 30_000, auditFlushTimeoutMs: 10_000 },
      logLevel: "info",
    });
    expect(Object.isFrozen(defaultConfig().processing.deduplication)).toBe(true);
  });

  it("applies environment overrides for secrets and addresses, naming the variable on error", () => {
    const env = {
      GATEWAY_REDIS_URL: "redis://10.0.0.5:6380",
      GATEWAY_REDIS_PASSWORD: "pw",
      GATEWAY_LISTEN_ADDRESS: "127.0.0.1:9999",
      GATEWAY_KUBECONFIG: "/tmp/kubeconfig",
      GATEWAY_DATA_STORAGE_URL: "http://ds:8080",
      GATEWAY_LOG_LEVEL: "debug",
    };
    const cfg = parseConfig("redis:\n  url: redis://file:1\n", { source: "x", env }).config;
    expect(cfg.redis).toEqual({ mode: "single", url: "redis://10.0.0.5:6380", password: "pw" });
    expect(cfg.server.listenAddress).toBe("127.0.0.1:9999");
    expect(cfg.kubernetes.kubeconfigPath).toBe("/tmp/kubeconfig");
    expect(cfg.dataStorage.url).toBe("http://ds:8080");
    expect(cfg.logLevel).toBe("debug");
    const sentinel = parseConfig("redis:\n  mode: sentinel\n", {
      source: "x",
      env: { GATEWAY_REDIS_SENTINELS: "10.0.0.1:26379, [::1]:26380", GATEWAY_REDIS_MASTER_NAME: "m1" },
    }).config;
    expect(sentinel.redis).toEqual({
      mode: "sentinel",
      masterName: "m1",
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "[::1]", port: 26380 },
      ],
    });
    expect(problems("", { GATEWAY_REDIS_URL: "http://nope" })).toEqual([
      "configuration error in 'redis.url': must be a redis:// or rediss:// URL, such as redis://127.0.0.1:6379 (got: http://nope, from GATEWAY_REDIS_URL)",
    ]);
  });

  it("passes redis.natMap (sentinel mode) keyed as ioredis looks announced addresses up", () => {
    const yaml = [
      "redis:",
      "  mode: sentinel",
      "  sentinels: ['127.0.0.1:26379']",
      "  natMap:",
      "    '127.0.0.1:7000': '127.0.0.1:17000'",
      "    '[::1]:7001': 'proxy.local:17001'",
      "",
    ].join("\n");
    expect(parseConfig(yaml, { source: "x" }).config.redis).toEqual({
      mode: "sentinel",
      sentinels: [{ host: "127.0.0.1", port: 26379 }],
      masterName: "mymaster",
      natMap: {
        "127.0.0.1:7000": { host: "127.0.0.1", port: 17000 },
        "::1:7001": { host: "proxy.local", port: 17001 },
      },
    });
    // Only Sentinel hands out addresses to translate; an empty map is no map.
    const single = parseConfig("redis:\n  natMap: { '127.0.0.1:7000': '127.0.0.1:17000' }\n", { source: "x" });
    expect(single.config.redis).toEqual({ mode: "single", url: "redis://127.0.0.1:6379" });
    const empty = parseConfig("redis:\n  mode: sentinel\n  sentinels: ['127.0.0.1:26379']\n  natMap: {}\n", {
      source: "x",
    });
    expect(empty.config.redis).not.toHaveProperty("natMap");
  });

  it("names the redis.natMap entry that is not host:port", () => {
    expect(problems("redis:\n  natMap:\n    '127.0.0.1:7000': nope\n")).toEqual([
      `configuration error in 'redis.natMap["127.0.0.1:7000"]': must be "host:port", such as 127.0.0.1:16379 (got: nope)`,
    ]);
    expect(problems("redis:\n  natMap:\n    '127.0.0.1:7000': 17000\n")).toEqual([
      `configuration error in 'redis.natMap["127.0.0.1:7000"]': must be "host:port", such as 127.0.0.1:16379 (got: 17000)`,
    ]);
    expect(problems("redis:\n  natMap:\n    '127.0.0.1': '127.0.0.1:17000'\n")).toEqual([
      `configuration error in 'redis.natMap["127.0.0.1"]': key must be host:port, such as 10.0.0.7:6379 (got: 127.0.0.1)`,
    ]);
    expect(problems("redis:\n  natMap: ['127.0.0.1:7000']\n")).toEqual([
      `configuration error in 'redis.natMap': must be a mapping of host:port to host:port, such as {'10.0.0.7:6379': '127.0.0.1:16379'} (got: ["127.0.0.1:7000"])`,
    ]);
  });

  it("generates a reference row for every field", () => {
    const text = configReference();
    for (const f of CONFIG_FIELDS) expect(text).toContain(`| \`${f.path}\` |`);
    expect(text).toContain("| `processing.deduplication.ttl` | duration | `5m` | 10s .. 24h | yes |");
    expect(CONFIG_FIELDS.every((f) => f.description.length > 10)).toBe(true);
  });
});

describe("ConfigStore reload", () => {
  let dir: string;
  let store: ConfigStore | undefined;
  afterEach(() => {
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function setup(initial: string) {
    dir = mkdtempSync(join(tmpdir(), "gw-config-test-"));
    const path = join(dir, "gateway.yaml");
    writeFileSync(path, initial);
    const logs: { level: string; obj: object; msg?: string }[] = [];
    const log = {
      info: (obj: object, msg?: string) => logs.push({ level: "info", obj, msg }),
      warn: (obj: object, msg?: string) => logs.push({ level: "warn", obj, msg }),
      error: (obj: object, msg?: string) => logs.push({ level: "error", obj, msg }),
    };
    const metrics = createMetrics();
    const applied: string[] = [];
    store = new ConfigStore({
      path,
      log: log as never,
      metrics,
      onApply: (c) => applied.push(c.logLevel),
      debounceMs: 50,
    });
    // Atomic replacement, like the harness and ConfigMap updates do.
    const write = (text: string) => {
      writeFileSync(`${path}.tmp`, text);
      renameSync(`${path}.tmp`, path);
    };
    return { path, logs, metrics, applied, write, store };
  }

  it("switches reloadable settings to a new snapshot on reload", async () => {
    const s = setup("processing:\n  deduplication:\n    ttl: 5m\n");
    const before = s.store.config();
    s.write("processing:\n  deduplication:\n    ttl: 30s\nlogLevel: debug\n");
    expect(s.store.reload("SIGHUP")).toBe("success");
    expect(s.store.config().processing.deduplication.ttlMs).toBe(30_000);
    expect(before.processing.deduplication.ttlMs).toBe(300_000); // old snapshot untouched
    expect(s.applied).toEqual(["debug"]);
    expect(await metricValue(s.metrics, "gateway_config_reloads_total", { result: "success" })).toBe(1);
  });

  it("keeps the running configuration when the new file is invalid", async () => {
    const s = setup("rateLimit:\n  burst: 50\n");
    s.write("rateLimit:\n  burst: -1\n");
    expect(s.store.reload("SIGHUP")).toBe("failure");
    expect(s.store.config().rateLimit.burst).toBe(50);
    const error = s.logs.find((l) => l.level === "error");
    expect(error?.obj).toMatchObject({
      problems: ["configuration error in 'rateLimit.burst': must be between 1 and 1000000 (got: -1)"],
    });
    expect(await metricValue(s.metrics, "gateway_config_reloads_total", { result: "failure" })).toBe(1);
    s.write("server: [broken\n");
    expect(s.store.reload("SIGHUP")).toBe("failure");
    rmSync(s.path);
    expect(s.store.reload("SIGHUP")).toBe("failure");
    expect(s.store.config().rateLimit.burst).toBe(50);
  });

  it("reports a changed non-reloadable setting and does not apply it, applying the rest", () => {
    const s = setup("server:\n  listenAddress: 127.0.0.1:8080\n");
    s.write("server:\n  listenAddress: 127.0.0.1:9090\nrateLimit:\n  burst: 7\n");
    expect(s.store.reload("SIGHUP")).toBe("success");
    expect(s.store.config().server.listenAddress).toBe("127.0.0.1:8080");
    expect(s.store.config().rateLimit.burst).toBe(7);
    const warn = s.logs.find((l) => l.level === "warn");
    expect(warn?.obj).toEqual({ field: "server.listenAddress" });
    expect(warn?.msg).toBe("configuration change to 'server.listenAddress' needs a restart; it was not applied");
  });

  it("reloads by itself when the file changes, once per change", async () => {
    const s = setup("rateLimit:\n  burst: 1\n");
    s.store.watch();
    s.write("rateLimit:\n  burst: 2\n");
    await eventually(() => s.store.config().rateLimit.burst === 2, {
      what: "the file change to be applied",
      timeoutMs: 5000,
    });
    s.write("rateLimit:\n  burst: 3\n");
    await eventually(() => s.store.config().rateLimit.burst === 3, {
      what: "the second change to be applied",
      timeoutMs: 5000,
    });
    expect(await metricValue(s.metrics, "gateway_config_reloads_total", { result: "success" })).toBe(2);
    // Touching the file without changing it is not a reload.
    expect(s.store.reload("file")).toBe("unchanged");
  });
});
