/**
 * The value types a configuration field can have: how each is written in YAML
 * or an environment variable, how it is checked, and what it becomes in
 * `GatewayConfig` (durations → ms, sizes → bytes).
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

/** "5m", "30s", "100ms", "1h30m" → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(DURATION_PART))
    ms += Number(amount) * (DURATION_UNITS[unit as string] ?? 0);
  return Math.round(ms);
}

export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out;
}

const SIZE_UNITS: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
};
const SIZE = /^(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)$/;

/** "256KiB", "10MB" or a plain number of bytes → bytes. */
export function parseSize(raw: unknown): number | undefined {
  if (typeof raw === "number") return Number.isSafeInteger(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== "string") return undefined;
  const m = SIZE.exec(raw.trim());
  return m ? Number(m[1]) * (SIZE_UNITS[m[2] as string] ?? 1) : undefined;
}

export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

export type FieldType =
  | "duration"
  | "size"
  | "integer"
  | "number"
  | "boolean"
  | "enum"
  | "string"
  | "path"
  | "namespace"
  | "http-url"
  | "redis-url"
  | "address"
  | "namespace-list"
  | "host-port-list"
  | "string-map"
  | "host-port-map";

/** What a kind needs from its field: bounds (written like values) and allowed words. */
export interface Bounds {
  min?: string | number;
  max?: string | number;
  values?: readonly string[];
}

/** A failure may name one entry of a map (`entry`), reported as `<path>["<key>"]` with that entry's value. */
export type Parsed = { value: unknown } | { reason: string; entry?: { key: string; raw: unknown } };

interface ValueKind {
  /** How the type is named in the configuration reference. */
  label: string;
  parse(raw: unknown, bounds: Bounds): Parsed;
  /** Environment variables are text; turn one into what YAML would have given. */
  fromEnv(text: string): unknown;
  /** A value (or bound) in the notation users write. */
  show(value: unknown): string;
}

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAMESPACE_PATTERN = /^(?:[a-z0-9]([-a-z0-9]*[a-z0-9])?|[a-z0-9][-a-z0-9]*\*|\*)$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/;

function hostPort(text: string): { host: string; port: number } | undefined {
  const m = HOST_PORT.exec(text);
  const port = Number(m?.[2]);
  return m && port <= 65535 ? { host: m[1] as string, port } : undefined;
}

/** ioredis writes and connects to IPv6 hosts without the brackets host:port needs. */
function unbracketed(host: string): string {
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

function mapFromEnv(text: string): Record<string, string> {
  return Object.fromEntries(listFromEnv(text).map((pair) => pair.split("=", 2).map((s) => s.trim())));
}

function listFromEnv(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Numbers compared against optional bounds; `show` prints the bounds as users write them. */
function ranged(
  value: number,
  bounds: Bounds,
  toNumber: (b: string | number) => number,
  show: (b: unknown) => string,
): Parsed {
  const min = bounds.min === undefined ? undefined : toNumber(bounds.min);
  const max = bounds.max === undefined ? undefined : toNumber(bounds.max);
  if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
    if (min !== undefined && max !== undefined)
      return { reason: `must be between ${show(bounds.min)} and ${show(bounds.max)}` };
    return min !== undefined
      ? { reason: `must be at least ${show(bounds.min)}` }
      : { reason: `must be at most ${show(bounds.max)}` };
  }
  return { value };
}

function stringKind(label: string, check: (s: string) => boolean, reason: string): ValueKind {
  return {
    label,
    parse: (raw) => (typeof raw === "string" && check(raw) ? { value: raw } : { reason }),
    fromEnv: (text) => text,
    show: String,
  };
}

function url(schemes: string[]): (s: string) => boolean {
  return (s) => {
    try {
      const u = new URL(s);
      return schemes.includes(u.protocol) && u.hostname !== "";
    } catch {
      return false;
    }
  };
}

const numberFromEnv = (text: string): unknown =>
  text.trim() !== "" && !Number.isNaN(Number(text)) ? Number(text) : text;

export const KINDS: Record<FieldType, ValueKind> = {
  duration: {
    label: "duration",
    parse(raw, bounds) {
      const ms = typeof raw === "string" ? parseDuration(raw) : undefined;
      if (ms === undefined) return { reason: "must be a duration with a unit, such as 100ms, 30s, 5m or 1h" };
      return ranged(ms, bounds, (b) => parseDuration(String(b)) ?? 0, String);
    },
    fromEnv: (text) => text,
    show: (v) => (typeof v === "number" ? formatDuration(v) : String(v)),
  },
  size: {
    label: "size",
    parse(raw, bounds) {
      const bytes = parseSize(raw);
      if (bytes === undefined) return { reason: "must be a size such as 512KiB, 10MiB or a number of bytes" };
      return ranged(bytes, bounds, (b) => parseSize(b) ?? 0, String);
    },
    fromEnv: (text) => (/^\d+$/.test(text) ? Number(text) : text),
    show: (v) => (typeof v === "number" ? formatSize(v) : String(v)),
  },
  integer: {
    label: "integer",
    parse(raw, bounds) {
      if (typeof raw !== "number" || !Number.isInteger(raw)) return { reason: "must be a whole number" };
      return ranged(raw, bounds, Number, String);
    },
    fromEnv: numberFromEnv,
    show: String,
  },
  number: {
    label: "number",
    parse(raw, bounds) {
      if (typeof raw !== "number" || !Number.isFinite(raw)) return { reason: "must be a number" };
      return ranged(raw, bounds, Number, String);
    },
    fromEnv: numberFromEnv,
    show: String,
  },
  boolean: {
    label: "boolean",
    parse: (raw) => (typeof raw === "boolean" ? { value: raw } : { reason: "must be true or false" }),
    fromEnv: (text) => (text === "true" ? true : text === "false" ? false : text),
    show: String,
  },
  enum: {
    label: "one of",
    parse: (raw, bounds) =>
      typeof raw === "string" && bounds.values?.includes(raw)
        ? { value: raw }
        : { reason: `must be one of: ${bounds.values?.join(", ")}` },
    fromEnv: (text) => text,
    show: String,
  },
  string: {
    label: "string",
    // YAML reads `password: 12345` as a number; it is still meant as text.
    parse: (raw) =>
      typeof raw === "string" || (typeof raw === "number" && Number.isFinite(raw))
        ? { value: String(raw) }
        : { reason: "must be a string" },
    fromEnv: (text) => text,
    show: String,
  },
  path: stringKind("path", (s) => !s.includes("\0"), "must be a file system path"),
  namespace: stringKind(
    "namespace",
    (s) => NAMESPACE.test(s) && s.length <= 63,
    "must be a Kubernetes namespace name (lowercase letters, digits and '-', at most 63 characters)",
  ),
  "http-url": stringKind(
    "URL",
    url(["http:", "https:"]),
    "must be an http:// or https:// URL, such as http://data-storage:8080",
  ),
  "redis-url": stringKind(
    "URL",
    url(["redis:", "rediss:"]),
    "must be a redis:// or rediss:// URL, such as redis://127.0.0.1:6379",
  ),
  address: {
    label: "host:port",
    parse: (raw) =>
      typeof raw === "string" && hostPort(raw)
        ? { value: raw }
        : { reason: "must be host:port, such as 0.0.0.0:8080 or 127.0.0.1:8080" },
    fromEnv: (text) => text,
    show: String,
  },
  "namespace-list": {
    label: "list of namespaces",
    parse(raw) {
      const ok =
        Array.isArray(raw) && raw.every((s) => typeof s === "string" && NAMESPACE_PATTERN.test(s) && s.length <= 63);
      return ok
        ? { value: raw }
        : { reason: "must be a list of namespace names (a trailing * matches a prefix), such as [team-a, 'ci-*']" };
    },
    fromEnv: listFromEnv,
    show: (v) => JSON.stringify(v),
  },
  "host-port-list": {
    label: "list of host:port",
    parse(raw) {
      const entries = Array.isArray(raw) ? raw.map((s) => (typeof s === "string" ? hostPort(s) : undefined)) : [];
      const ok = Array.isArray(raw) && entries.every((e) => e !== undefined);
      return ok ? { value: entries } : { reason: "must be a list of host:port entries, such as ['10.0.0.1:26379']" };
    },
    fromEnv: listFromEnv,
    show: (v) =>
      JSON.stringify(Array.isArray(v) ? v.map((e) => (typeof e === "object" && e ? `${e.host}:${e.port}` : e)) : v),
  },
  "string-map": {
    label: "map of string to string",
    parse(raw) {
      const ok =
        typeof raw === "object" &&
        raw !== null &&
        !Array.isArray(raw) &&
        Object.values(raw).every((v) => typeof v === "string" && v !== "");
      return ok
        ? { value: { ...raw } }
        : { reason: "must be a mapping of namespace to environment name, such as {payments: production}" };
    },
    fromEnv: mapFromEnv,
    show: (v) => JSON.stringify(v),
  },
  "host-port-map": {
    label: "map of host:port to host:port",
    parse(raw) {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        return { reason: "must be a mapping of host:port to host:port, such as {'10.0.0.7:6379': '127.0.0.1:16379'}" };
      }
      // Keyed the way ioredis looks addresses up: `${host}:${port}` as the sentinel reports them.
      const value: Record<string, { host: string; port: number }> = {};
      for (const [key, target] of Object.entries(raw)) {
        const from = hostPort(key);
        if (!from?.host) {
          return { reason: "key must be host:port, such as 10.0.0.7:6379", entry: { key, raw: key } };
        }
        const to = typeof target === "string" ? hostPort(target) : undefined;
        if (!to?.host) {
          return { reason: 'must be "host:port", such as 127.0.0.1:16379', entry: { key, raw: target } };
        }
        value[`${unbracketed(from.host)}:${from.port}`] = { host: unbracketed(to.host), port: to.port };
      }
      return { value };
    },
    fromEnv: mapFromEnv,
    show: (v) => JSON.stringify(v),
  },
};
