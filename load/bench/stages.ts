// The gateway's request path in stages, for the bench's CPU profiles: which source files and
// libraries each stage is. A sample counts for the innermost frame's stage (cpu-profile.ts).
import type { Stage } from "../../harness/src/cpu-profile.js";

const files = (...names: string[]) => {
  const re = new RegExp(`/gateway/src/(?:${names.join("|")})\\.ts$`);
  return ({ url }: { url: string }) => re.test(url);
};
const modules = (...names: string[]) => {
  const re = new RegExp(`/node_modules/(?:${names.join("|")})/`);
  return ({ url }: { url: string }) => re.test(url);
};
const either =
  (...tests: Array<(f: { functionName: string; url: string }) => boolean>) =>
  (f: { functionName: string; url: string }) =>
    tests.some((t) => t(f));

export const GATEWAY_STAGES: Stage[] = [
  { name: "garbage collection", matches: (f) => f.functionName === "(garbage collector)" },
  { name: "body read and JSON parse", matches: files("json-body") },
  { name: "validation", matches: files("payloads") },
  { name: "normalization and fingerprint", matches: files("normalize", "fingerprint", "priority", "namespaces") },
  {
    name: "Redis (dedup, storms, ioredis)",
    matches: either(
      files("dedup", "dedup-scripts", "storm-store", "redis-link"),
      modules("ioredis", "redis-parser", "denque", "cluster-key-slot"),
    ),
  },
  { name: "metrics (prom-client)", matches: either(files("metrics"), modules("prom-client", "tdigest", "bintrees")) },
  { name: "audit event build and send", matches: files("audit", "audit-events", "audit-journal") },
  {
    name: "Kubernetes (creation, index, status writes)",
    matches: either(files("kube", "rr-index", "status-flusher", "remediation-request"), modules("@kubernetes")),
  },
  {
    name: "logging (pino)",
    matches: either(
      files("log"),
      modules(
        "pino",
        "pino-std-serializers",
        "sonic-boom",
        "thread-stream",
        "fast-redact",
        "quick-format-unescaped",
        "on-exit-leak-free",
        "atomic-sleep",
      ),
    ),
  },
  { name: "pipeline and storms", matches: files("pipeline", "storm") },
  { name: "HTTP client (undici: audit sends, Kubernetes calls)", matches: modules("undici") },
  {
    name: "HTTP server (fastify, protection, routes)",
    matches: either(
      files("app", "protection", "problem", "auth", "routes/signals", "routes/probes"),
      modules(
        "fastify",
        "find-my-way",
        "avvio",
        "@fastify",
        "fast-json-stringify",
        "light-my-request",
        "abstract-logging",
        "process-warning",
        "toad-cache",
        "secure-json-parse",
        "fast-querystring",
      ),
      ({ url }) => /^node:_http_/.test(url),
    ),
  },
];
