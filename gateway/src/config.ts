import { readFileSync } from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { CONFIG_FIELDS, type FieldSpec } from "./config-schema.js";
import { KINDS } from "./config-values.js";
import type { GatewayConfig } from "./types.js";

/** Every problem found in a configuration, one `configuration error in '<field>': ...` line each. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** A validated configuration plus the per-field values it was built from (for reload diffs). */
export interface LoadedConfig {
  config: GatewayConfig;
  values: ReadonlyMap<string, unknown>;
  text: string;
}

const FIELDS = new Map(CONFIG_FIELDS.map((f) => [f.path, f]));
/** Every mapping that holds settings ("processing", "processing.storm", ...). */
const SECTIONS = new Set(
  CONFIG_FIELDS.flatMap((f) =>
    f.path
      .split(".")
      .slice(0, -1)
      .map((_, i, parts) => parts.slice(0, i + 1).join(".")),
  ),
);

export function configProblem(path: string, reason: string, got?: string): string {
  return `configuration error in '${path}': ${reason}${got === undefined ? "" : ` (got: ${got})`}`;
}

function shown(raw: unknown, spec?: FieldSpec): string {
  if (spec?.secret) return "<redacted>";
  const text = typeof raw === "string" ? raw : (JSON.stringify(raw) ?? String(raw));
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (prev[j] ?? 0) + 1,
        (row[j - 1] ?? 0) + 1,
        (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** "did you mean ...?" for an unknown key: a close sibling, or the same key in another section. */
function unknownKey(path: string): string {
  const parts = path.split(".");
  const key = (parts.pop() as string).toLowerCase();
  const parent = parts.join(".");
  const siblings = [...FIELDS.keys(), ...SECTIONS]
    .filter((p) => p.startsWith(parent ? `${parent}.` : "") && p.split(".").length === parts.length + 1)
    .map((p) => p.split(".").pop() as string);
  const ranked = [...new Set(siblings)]
    .map((s) => ({ s, d: s.toLowerCase().startsWith(key) ? 0 : editDistance(key, s.toLowerCase()) }))
    .sort((x, y) => x.d - y.d);
  const best = ranked[0];
  const prefix = parent ? `${parent}.` : "";
  if (best && best.d <= Math.max(2, Math.floor(key.length / 3)))
    return configProblem(path, `unknown key; did you mean '${prefix}${best.s}'?`);
  const elsewhere = [...FIELDS.keys()].find((p) => p.toLowerCase().endsWith(`.${key}`));
  if (elsewhere) return configProblem(path, `unknown key; did you mean '${elsewhere}'?`);
  return configProblem(
    path,
    `unknown key; valid keys here: ${ranked
      .map((r) => r.s)
      .sort()
      .join(", ")}`,
  );
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Walks the YAML document: settings are collected, unknown keys and misplaced values reported. */
function collect(node: Record<string, unknown>, prefix: string, out: Map<string, unknown>, problems: string[]): void {
  for (const [key, value] of Object.entries(node)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (FIELDS.has(path)) {
      if (value !== null) out.set(path, value);
    } else if (SECTIONS.has(path)) {
      if (isMapping(value)) collect(value, path, out, problems);
      else if (value !== null) problems.push(configProblem(path, "must be a mapping of settings", shown(value)));
    } else {
      problems.push(unknownKey(path));
    }
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) {
    target[head] = value;
    return;
  }
  target[head] ??= {};
  setPath(target[head] as Record<string, unknown>, rest, value);
}

/** Name of a field inside GatewayConfig: durations carry `Ms`, sizes `Bytes`. */
function configPath(spec: FieldSpec): string[] {
  const suffix = spec.type === "duration" ? "Ms" : spec.type === "size" ? "Bytes" : "";
  const parts = spec.path.split(".");
  parts[parts.length - 1] += suffix;
  return parts;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Field values (already validated) → the immutable GatewayConfig. */
export function buildConfig(values: ReadonlyMap<string, unknown>): GatewayConfig {
  const root: Record<string, unknown> = {};
  for (const spec of CONFIG_FIELDS) setPath(root, configPath(spec), values.get(spec.path));
  const config = root as unknown as GatewayConfig & {
    redis: {
      mode: string;
      url?: string;
      sentinels?: unknown;
      masterName?: string;
      password?: string;
      natMap?: Record<string, unknown>;
    };
    kubernetes: { kubeconfigPath?: string };
  };
  // Only the fields of the chosen Redis mode; empty strings and maps mean "not set".
  const { mode, url, sentinels, masterName, password, natMap } = config.redis;
  config.redis = mode === "single" ? { mode, url } : { mode, sentinels, masterName };
  if (password) config.redis.password = password;
  if (mode === "sentinel" && natMap && Object.keys(natMap).length > 0) config.redis.natMap = natMap;
  if (!config.kubernetes.kubeconfigPath) delete config.kubernetes.kubeconfigPath;
  return deepFreeze(config as GatewayConfig);
}

/** Rules that involve more than one field. */
function crossFieldProblems(v: ReadonlyMap<string, unknown>): string[] {
  const problems: string[] = [];
  const num = (path: string) => v.get(path) as number;
  if (v.get("redis.mode") === "sentinel" && (v.get("redis.sentinels") as unknown[]).length === 0) {
    problems.push(
      configProblem(
        "redis.sentinels",
        "must list at least one sentinel (host:port) when redis.mode is 'sentinel'",
        "[]",
      ),
    );
  }
  if (num("processing.retry.maxBackoff") < num("processing.retry.initialBackoff")) {
    problems.push(
      configProblem(
        "processing.retry.maxBackoff",
        "must not be shorter than processing.retry.initialBackoff",
        KINDS.duration.show(num("processing.retry.maxBackoff")),
      ),
    );
  }
  if (num("dataStorage.batchSize") > num("dataStorage.bufferSize")) {
    problems.push(
      configProblem(
        "dataStorage.batchSize",
        "must not be larger than dataStorage.bufferSize",
        String(num("dataStorage.batchSize")),
      ),
    );
  }
  const denied = new Set(v.get("namespaces.deny") as string[]);
  const both = (v.get("namespaces.allow") as string[]).filter((ns) => denied.has(ns));
  if (both.length > 0)
    problems.push(configProblem("namespaces.allow", "a namespace cannot be both allowed and denied", both.join(", ")));
  return problems;
}

/**
 * YAML text (+ environment overrides) → validated configuration. Throws a
 * ConfigError listing every problem, each naming field, reason and value.
 */
export function parseConfig(text: string, opts: { source: string; env?: NodeJS.ProcessEnv }): LoadedConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    const at =
      err instanceof YAMLParseError && err.linePos
        ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}`
        : "";
    const reason = (err as Error).message.split("\n", 1)[0]?.replace(/ at line \d+, column \d+:?$/, "");
    throw new ConfigError([configProblem(opts.source, `invalid YAML${at}: ${reason}`)]);
  }
  if (doc !== null && doc !== undefined && !isMapping(doc)) {
    throw new ConfigError([configProblem(opts.source, "must be a YAML mapping of settings", shown(doc))]);
  }
  const problems: string[] = [];
  const raw = new Map<string, unknown>();
  collect(doc ?? {}, "", raw, problems);

  const values = new Map<string, unknown>();
  for (const spec of CONFIG_FIELDS) {
    const kind = KINDS[spec.type];
    const fromEnv = spec.env ? opts.env?.[spec.env] : undefined;
    const input = fromEnv ? kind.fromEnv(fromEnv) : raw.has(spec.path) ? raw.get(spec.path) : spec.default;
    const parsed = kind.parse(input, spec);
    if ("value" in parsed) values.set(spec.path, parsed.value);
    else {
      const path = parsed.entry ? `${spec.path}[${JSON.stringify(parsed.entry.key)}]` : spec.path;
      const got = parsed.entry ? parsed.entry.raw : input;
      problems.push(configProblem(path, parsed.reason, shown(got, spec) + (fromEnv ? `, from ${spec.env}` : "")));
    }
  }
  if (problems.length === 0) problems.push(...crossFieldProblems(values));
  if (problems.length > 0) throw new ConfigError(problems);
  return { config: buildConfig(values), values, text };
}

/** Reads and validates one configuration file. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError([
      configProblem(
        path,
        `cannot read the configuration file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      ),
    ]);
  }
  return parseConfig(text, { source: path, env });
}

/** The configuration with every default (tests, documentation). */
export function defaultConfig(): GatewayConfig {
  return parseConfig("", { source: "defaults" }).config;
}
