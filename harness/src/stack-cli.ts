// `task stack:up` / `task stack:down`: a local stack for manual use.
// `up` starts the stack in a background process, waits until it is ready,
// prints the endpoints and writes them to results/stack.json; `down` stops it.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { currentRunDir, repoRoot } from "./paths.js";
import { eventually } from "./poll.js";
import { LocalStack, type StackEndpoints } from "./stack.js";
import { isAlive } from "./supervisor.js";

const STATE = join(repoRoot, "results", "stack.json");
const USAGE = `usage: stack-cli.ts up [--sentinel] [--no-gateway] [--foreground] | down | dev`;

interface StackState extends Partial<StackEndpoints> {
  pid: number;
  status: "starting" | "ready" | "failed";
  error?: string;
}

function readState(): StackState | undefined {
  try {
    return JSON.parse(readFileSync(STATE, "utf8")) as StackState;
  } catch {
    return undefined;
  }
}

function writeState(state: StackState): void {
  mkdirSync(dirname(STATE), { recursive: true });
  writeFileSync(STATE, `${JSON.stringify(state, null, 2)}\n`);
}

function fail(message: string, code = 1): never {
  process.stderr.write(`stack: ${message}\n`);
  process.exit(code);
}

async function runForeground(flags: Set<string>): Promise<void> {
  writeState({ pid: process.pid, status: "starting" });
  const builder = new LocalStack().withNamespaces({
    production: { environment: "production" },
    staging: { environment: "staging" },
  });
  if (flags.has("--sentinel")) builder.withSentinel();
  if (flags.has("--no-gateway")) builder.withoutGateway();
  try {
    const stack = await builder.start();
    writeState({ pid: process.pid, status: "ready", ...stack.endpoints() });
    const stop = () => {
      void stack.stop().finally(() => {
        rmSync(STATE, { force: true });
        process.exit(0);
      });
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    process.stdout.write(`stack ready (pid ${process.pid}):\n${JSON.stringify(stack.endpoints(), null, 2)}\n`);
  } catch (err) {
    writeState({ pid: process.pid, status: "failed", error: (err as Error).message });
    fail((err as Error).message);
  }
}

async function up(flags: Set<string>): Promise<void> {
  const current = readState();
  if (current && isAlive(current.pid))
    fail(`a stack is already running (pid ${current.pid}); run 'task stack:down' first`);
  const log = join(currentRunDir(), "stack.log");
  const out = openSync(log, "a");
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(import.meta.url), "up", "--foreground", ...flags],
    {
      cwd: repoRoot,
      detached: true,
      stdio: ["ignore", out, out],
    },
  );
  child.unref();
  const state = await eventually(
    () => {
      const s = readState();
      if (!isAlive(child.pid ?? 0) && s?.status !== "ready") throw new Error(`the stack process exited; see ${log}`);
      return s && s.pid === child.pid && s.status !== "starting" ? s : false;
    },
    { what: "the stack to start", timeoutMs: 180_000, intervalMs: 250 },
  ).catch((err: Error) =>
    fail(`${err.message}\n${existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-30).join("\n") : ""}`),
  );
  if (state.status === "failed") fail(`the stack failed to start: ${state.error}`);
  process.stdout.write(
    `stack ready (pid ${state.pid}); endpoints written to ${STATE}:\n${JSON.stringify(state, null, 2)}\n`,
  );
  if (state.gateway) process.stdout.write(`try: curl -s ${state.gateway.url}/readyz\n`);
}

async function down(): Promise<void> {
  const state = readState();
  if (!state || !isAlive(state.pid)) {
    rmSync(STATE, { force: true });
    process.stdout.write("no stack is running\n");
    return;
  }
  process.kill(state.pid, "SIGTERM");
  await eventually(() => !isAlive(state.pid), {
    what: `stack process ${state.pid} to exit`,
    timeoutMs: 60_000,
    intervalMs: 250,
  });
  rmSync(STATE, { force: true });
  process.stdout.write(`stack stopped (pid ${state.pid})\n`);
}

/**
 * `task gateway:dev`: the stack without a gateway, and the gateway in the
 * foreground under `node --watch`, restarted on every code change.
 */
async function dev(): Promise<void> {
  const stack = await new LocalStack().withoutGateway().start();
  const e = stack.endpoints();
  const config = join(currentRunDir(), "gateway-dev.yaml");
  writeFileSync(
    config,
    [
      "server: { listenAddress: 127.0.0.1:8080 }",
      `redis: { url: "${"url" in e.redis ? e.redis.url : ""}" }`,
      `kubernetes: { mode: kubeconfig, kubeconfigPath: "${e.kubeconfig}" }`,
      `dataStorage: { url: "${e.dataStorage.url}", journalDir: "${join(currentRunDir(), "audit-journal")}" }`,
      "logLevel: debug",
      "",
    ].join("\n"),
  );
  process.stdout.write(`infrastructure ready:\n${JSON.stringify(e, null, 2)}\ngateway config: ${config}\n`);
  const main = join(repoRoot, "gateway", "src", "main.ts");
  // Its own process group, so stopping it also stops the child `node --watch` restarts.
  const gateway = spawn(process.execPath, ["--watch", "--import", "tsx", main, "--config", config], {
    cwd: repoRoot,
    stdio: "inherit",
    detached: true,
  });
  const stop = () => {
    const exited = new Promise((resolve) => gateway.once("exit", resolve));
    if (gateway.pid) process.kill(-gateway.pid, "SIGTERM");
    void exited.then(() => stack.stop()).finally(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

const [command, ...rest] = process.argv.slice(2);
const flags = new Set(rest);
const known = new Set(["--sentinel", "--no-gateway", "--foreground"]);
for (const f of flags) if (!known.has(f)) fail(`unknown flag '${f}'\n${USAGE}`, 2);
if (command === "up") await (flags.has("--foreground") ? runForeground(flags) : up(flags));
else if (command === "down") await down();
else if (command === "dev") await dev();
else fail(`unknown command '${command ?? ""}'\n${USAGE}`, 2);
