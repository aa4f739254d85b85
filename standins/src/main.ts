// Entry point of the stand-in controllers (standins/README.md):
//   node --import tsx standins/src/main.ts <orchestrator|aianalysis|workflowexecution|event-exporter>
//     --kubeconfig FILE (or in-cluster) --listen 127.0.0.1:9090 [controller flags]
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { AI_ANALYSIS, startChildController, WORKFLOW_EXECUTION } from "./child.js";
import { startEventExporter } from "./event-exporter.js";
import { startOrchestrator } from "./orchestrator.js";
import { log, Metrics, serve, splitHostPort } from "./runtime.js";

const CONTROLLERS = ["orchestrator", "aianalysis", "workflowexecution", "event-exporter"] as const;
type Controller = (typeof CONTROLLERS)[number];

const USAGE = `usage: standin <${CONTROLLERS.join("|")}> [flags]
  --kubeconfig FILE         kubeconfig to use (default: in-cluster service account)
  --listen HOST:PORT        /healthz and /metrics (default 0.0.0.0:9090)
  --namespace NS            where the ConfigMap standin-behaviour is (default kubernaut-system)
  --step DURATION           aianalysis, workflowexecution: time in the working phase (default 500ms)
  --phase-timeout DURATION  orchestrator: longest time in one phase (default 5m)
  --gateway-url URL         event-exporter: the gateway (required)
  --gateway-token-file FILE event-exporter: bearer token for the gateway
  --max-event-age DURATION  event-exporter: older events are not sent (default 5s)`;

class UsageError extends Error {}

/** "500ms", "30s", "5m", "1h" → milliseconds. */
function duration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new UsageError(`--${flag}: expected a duration such as 500ms, 30s or 5m, got ${JSON.stringify(text)}`);
  const ms = Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as "ms"];
  if (ms <= 0) throw new UsageError(`--${flag}: must be more than 0`);
  return ms;
}

function parse(argv: string[]) {
  let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; strict: true; options: typeof OPTIONS }>>;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const [controller, ...extra] = parsed.positionals;
  if (!controller || !CONTROLLERS.includes(controller as Controller))
    throw new UsageError(
      `the first argument names the controller: one of ${CONTROLLERS.join(", ")} (got ${JSON.stringify(controller ?? "")})`,
    );
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
  const v = parsed.values;
  const listen = v.listen ?? "0.0.0.0:9090";
  try {
    const [, port] = splitHostPort(listen);
    if (port > 65535) throw new Error(`--listen: port ${port} is out of range`);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let gatewayUrl: string | undefined;
  if (controller === "event-exporter") {
    if (!v["gateway-url"]) throw new UsageError("--gateway-url: required for the event-exporter");
    try {
      const url = new URL(v["gateway-url"]);
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
      gatewayUrl = url.toString().replace(/\/$/, "");
    } catch {
      throw new UsageError(`--gateway-url: expected an http(s) URL, got ${JSON.stringify(v["gateway-url"])}`);
    }
  }
  return {
    controller: controller as Controller,
    kubeconfig: v.kubeconfig,
    listen,
    namespace: v.namespace ?? "kubernaut-system",
    stepMs: duration("step", v.step ?? "500ms"),
    phaseTimeoutMs: duration("phase-timeout", v["phase-timeout"] ?? "5m"),
    gatewayUrl,
    tokenFile: v["gateway-token-file"],
    maxEventAgeMs: duration("max-event-age", v["max-event-age"] ?? "5s"),
  };
}

const OPTIONS = {
  kubeconfig: { type: "string" },
  listen: { type: "string" },
  namespace: { type: "string" },
  step: { type: "string" },
  "phase-timeout": { type: "string" },
  "gateway-url": { type: "string" },
  "gateway-token-file": { type: "string" },
  "max-event-age": { type: "string" },
} as const;

async function main(): Promise<void> {
  let opts: ReturnType<typeof parse>;
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`standin: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromCluster();
    if (!kc.getCurrentCluster()) throw new Error("it names no current cluster");
  } catch (err) {
    process.stderr.write(`standin: --kubeconfig ${opts.kubeconfig ?? "(in-cluster)"}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const metrics = new Metrics();
  const controller =
    opts.controller === "orchestrator"
      ? startOrchestrator(kc, { phaseTimeoutMs: opts.phaseTimeoutMs }, metrics)
      : opts.controller === "event-exporter"
        ? startEventExporter(
            kc,
            { gatewayUrl: opts.gatewayUrl as string, tokenFile: opts.tokenFile, maxEventAgeMs: opts.maxEventAgeMs },
            metrics,
          )
        : startChildController(kc, opts.controller === "aianalysis" ? AI_ANALYSIS : WORKFLOW_EXECUTION, opts, metrics);
  const server = await serve(opts.listen, metrics, controller.synced);
  log("info", `standin ${opts.controller} listening on ${opts.listen}`);
  const stop = async () => {
    await controller.stop();
    server.close();
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`standin: ${(err as Error).message}\n`);
  process.exit(1);
});
