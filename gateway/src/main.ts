/**
 * The gateway process: configuration, metrics, pipeline, HTTP server, reloads
 * and graceful shutdown. `node --import tsx gateway/src/main.ts --config <file>`
 * Exit codes: 0 clean shutdown, 1 failure (invalid configuration, cannot
 * listen, crash), 2 command-line mistake.
 */
import { pino } from "pino";
import { buildApp } from "./app.js";
import { CachedTokenReviewer, kubernetesTokenReviewer } from "./auth.js";
import { parseArgs, USAGE, UsageError } from "./cli.js";
import { ConfigError } from "./config.js";
import { ConfigStore } from "./config-reload.js";
import { loadKubeConfig } from "./kube.js";
import { createMetrics } from "./metrics.js";
import { createPipeline } from "./pipeline.js";
import { gracefulShutdown, Lifecycle } from "./shutdown.js";

function fail(message: string, code: number): never {
  (code === 0 ? process.stdout : process.stderr).write(`${message}\n`);
  process.exit(code);
}

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(":");
  return { host: address.slice(0, at).replace(/^\[(.*)\]$/, "$1") || "0.0.0.0", port: Number(address.slice(at + 1)) };
}

async function main(): Promise<void> {
  let configPath: string;
  try {
    const args = parseArgs(process.argv.slice(2), process.env);
    if (args.help) fail(USAGE, 0);
    configPath = args.configPath;
  } catch (err) {
    if (err instanceof UsageError) fail(`error: ${err.message}\n${USAGE}`, 2);
    throw err;
  }

  const log = pino({ base: { service: "gateway" }, timestamp: pino.stdTimeFunctions.isoTime });
  const metrics = createMetrics();
  let store: ConfigStore;
  try {
    store = new ConfigStore({ path: configPath, log, metrics, onApply: (c) => (log.level = c.logLevel) });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 1);
    throw err;
  }
  const cfg = store.config();
  log.level = cfg.logLevel;
  process.on("uncaughtException", (err) => {
    log.fatal({ err }, "uncaught exception; exiting");
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    log.fatal({ err }, "unhandled promise rejection; exiting");
    process.exit(1);
  });

  const pipeline = await createPipeline({ config: store.config, metrics, log });
  const auth = cfg.auth.enabled
    ? new CachedTokenReviewer(
        kubernetesTokenReviewer(loadKubeConfig(cfg.kubernetes), cfg.kubernetes.requestTimeoutMs),
        () => store.config().auth.cacheTtlMs,
      )
    : undefined;
  const lifecycle = new Lifecycle();
  const app = buildApp({ config: store.config, pipeline, metrics, logger: log, auth, lifecycle });
  try {
    await app.listen(splitAddress(cfg.server.listenAddress));
  } catch (err) {
    log.fatal({ err, listenAddress: cfg.server.listenAddress }, "cannot listen on server.listenAddress");
    await pipeline.close().catch(() => {});
    process.exit(1);
  }
  store.watch();
  process.on("SIGHUP", () => store.reload("SIGHUP"));

  const stop = (signal: NodeJS.Signals) => {
    if (lifecycle.phase !== "serving") return;
    log.info({ signal }, "shutdown requested");
    store.close();
    gracefulShutdown({ app, lifecycle, closePipeline: () => pipeline.close(), shutdown: store.config().shutdown, log })
      .then(() => process.exit(0))
      .catch((err) => {
        log.error({ err }, "shutdown did not complete cleanly");
        process.exit(1);
      });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

void main();
