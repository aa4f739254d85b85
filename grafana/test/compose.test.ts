/**
 * grafana/compose.yaml and `task grafana:up`, checked without a Docker engine: the file
 * loaded by the Compose specification's own Go loader (tools/compose-validate), what it
 * mounts present in the repository, and the CLI refusing a bad RUN and a machine without
 * Docker, then driving a stand-in `docker` through the whole `up` of a run.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { binary, repoRoot, scratchDir } from "../../harness/src/paths.js";

const GRAFANA = join(repoRoot, "grafana");
const COMPOSE = join(GRAFANA, "compose.yaml");
const CLI = join(GRAFANA, "src", "compose-cli.ts");
/** A PATH with node and nothing else: no `docker` on it. */
const NODE_ONLY = dirname(process.execPath);

interface Service {
  image: string;
  command?: string[];
  ports?: string[];
  volumes?: string[];
}
const compose = parse(readFileSync(COMPOSE, "utf8")) as { services: Record<string, Service> };

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without blocking this process (the stand-in endpoints below answer from here). */
function run(command: string, args: string[], env: Record<string, string>): Promise<Result> {
  const child = spawn(command, args, { cwd: repoRoot, env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => child.once("close", (status) => resolve({ status, stdout, stderr })));
}

const cli = (args: string[], env: Record<string, string>) =>
  run(process.execPath, ["--import", "tsx", CLI, ...args], { HOME: process.env.HOME ?? "/tmp", ...env });

/** A `docker` that answers `info` and `compose version` as told and logs every call with PROMETHEUS_DATA. */
function standInDocker(dir: string, { engine, plugin }: { engine: boolean; plugin: boolean }): string {
  const log = join(dir, "calls.log");
  writeFileSync(
    join(dir, "docker"),
    `#!/bin/sh
echo "$* PROMETHEUS_DATA=$PROMETHEUS_DATA" >> "${log}"
case "$1 $2" in
  "info "*) ${engine ? "exit 0" : 'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" >&2; exit 1'} ;;
  "compose version") ${plugin ? "exit 0" : "echo \"docker: 'compose' is not a docker command.\" >&2; exit 1"} ;;
esac
exit 0
`,
    { mode: 0o755 },
  );
  return log;
}

describe("grafana/compose.yaml loaded by compose-go (tools/compose-validate; no Docker engine here)", () => {
  beforeAll(() => {
    // A no-op once built for this go.mod and main.go (stamped), as in `task setup`.
    execFileSync(join(repoRoot, "tools", "build.sh"), ["compose-validate"], { stdio: "inherit" });
  });
  // Only PATH: a GRAFANA_PORT or PROMETHEUS_DATA of the caller's would be interpolated.
  const validate = (file: string, env: Record<string, string> = {}) =>
    run(binary("compose-validate"), [file], { PATH: process.env.PATH ?? "", ...env });

  it("holds: schema, interpolation defaults, ports, volumes, service references", async () => {
    const res = await validate(COMPOSE);
    expect(res.stdout.trim(), res.stderr).toBe(`OK ${COMPOSE} (2 services)`);
    expect(res.status).toBe(0);
  });

  it("holds with RUN='s copy in PROMETHEUS_DATA, as grafana:up starts it", async () => {
    const res = await validate(COMPOSE, { PROMETHEUS_DATA: join(repoRoot, "results", "grafana", "x") });
    expect(res.stdout.trim(), res.stderr).toBe(`OK ${COMPOSE} (2 services)`);
  });

  it.each([
    [
      "an unknown top-level key",
      (c: string) => `${c}\ndashboards: {}\n`,
      "additional properties 'dashboards' not allowed",
    ],
    ["a host port out of range", (c: string) => c.replace(/\$\{GRAFANA_PORT:-3000\}/, "99999"), "99999"],
    [
      "a misspelt dependency",
      (c: string) => c.replace("[prometheus]", "[promethues]"),
      'undefined service "promethues"',
    ],
  ])("rejects %s, naming it", async (_what, breakIt, message) => {
    const dir = scratchDir("compose");
    try {
      const broken = join(dir, "compose.yaml");
      const text = breakIt(readFileSync(COMPOSE, "utf8"));
      expect(text).not.toBe(readFileSync(COMPOSE, "utf8"));
      writeFileSync(broken, text);
      const res = await validate(broken);
      expect(res.stdout).toContain(`INVALID ${broken}: `);
      expect(res.stdout).toContain(message);
      expect(res.status).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("rejects a GRAFANA_PORT that is no port, as docker compose would", async () => {
    const res = await validate(COMPOSE, { GRAFANA_PORT: "grafana" });
    expect(res.stdout).toContain("Invalid hostPort: grafana");
    expect(res.status).toBe(1);
  });
});

describe("what compose.yaml runs and mounts", () => {
  const services = Object.entries(compose.services);

  it("pins both images to a version", () => {
    expect(compose.services.grafana?.image).toMatch(/^grafana\/grafana-oss:11\.\d+\.\d+$/);
    expect(compose.services.prometheus?.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
  });

  it("publishes every port on loopback only", () => {
    const ports = services.flatMap(([, s]) => s.ports ?? []);
    expect(ports.length).toBe(2);
    for (const port of ports) expect(port).toMatch(/^127\.0\.0\.1:/);
  });

  it("runs Prometheus with the remote-write receiver and a retention that keeps old runs", () => {
    const command = compose.services.prometheus?.command ?? [];
    expect(command).toContain("--web.enable-remote-write-receiver");
    expect(command).toContain("--storage.tsdb.retention.time=100y");
  });

  // Docker creates a missing bind source as an empty folder: Grafana would start with nothing provisioned.
  it.each(
    services.flatMap(([name, s]) =>
      (s.volumes ?? []).filter((v) => v.startsWith("./")).map((v) => [name, ...v.split(":")] as const),
    ),
  )("%s mounts %s (from the repository, read-only) at %s", (_service, source, _target, mode) => {
    expect(existsSync(join(GRAFANA, source)), `grafana/${source.slice(2)} must exist`).toBe(true);
    expect(mode).toBe("ro");
  });

  it("mounts the provisioning and the dashboards where Grafana and the provider read them", () => {
    expect(compose.services.grafana?.volumes).toEqual(
      expect.arrayContaining([
        "./provisioning:/etc/grafana/provisioning:ro",
        "./dashboards:/var/lib/grafana/dashboards:ro",
      ]),
    );
    for (const dir of ["provisioning/datasources", "provisioning/dashboards", "dashboards"])
      expect(existsSync(join(GRAFANA, dir)), `grafana/${dir} must exist`).toBe(true);
  });

  it("provisions a datasource (apiVersion 1) that every dashboard names by uid, reaching compose's Prometheus", () => {
    const provisioning = parse(
      readFileSync(join(GRAFANA, "provisioning", "datasources", "prometheus.yaml"), "utf8"),
    ) as {
      apiVersion: number;
      datasources: Array<{ uid: string; type: string; url: string }>;
    };
    expect(provisioning.apiVersion).toBe(1);
    const [datasource] = provisioning.datasources;
    expect(provisioning.datasources).toHaveLength(1);
    // The service name and the port Prometheus listens on inside the compose network.
    expect(datasource?.url).toBe("http://prometheus:9090");
    expect(compose.services.prometheus?.ports?.[0]?.split(":").at(-1)).toBe("9090");
    const dashboards = readdirSync(join(GRAFANA, "dashboards")).filter((f) => f.endsWith(".json"));
    expect(dashboards.length).toBeGreaterThan(0);
    for (const file of dashboards) {
      const uids = new Set<string>();
      JSON.stringify(JSON.parse(readFileSync(join(GRAFANA, "dashboards", file), "utf8")), (key, value) => {
        if (key === "datasource" && value && typeof value === "object" && typeof value.uid === "string")
          uids.add(value.uid);
        return value;
      });
      expect([...uids], file).toEqual([datasource?.uid]);
    }
  });

  it("provisions a dashboard provider (apiVersion 1) reading where compose mounts the dashboards", () => {
    const provisioning = parse(readFileSync(join(GRAFANA, "provisioning", "dashboards", "kubernaut.yaml"), "utf8")) as {
      apiVersion: number;
      providers: Array<{ type: string; options: { path: string } }>;
    };
    expect(provisioning.apiVersion).toBe(1);
    const mount = compose.services.grafana?.volumes?.find((v) => v.startsWith("./dashboards:"))?.split(":")[1];
    expect(provisioning.providers.map((p) => [p.type, p.options.path])).toEqual([["file", mount]]);
  });

  it("gives Prometheus a config promtool accepts", () => {
    const out = execFileSync(
      "promtool",
      ["check", "config", "--syntax-only", join(GRAFANA, "prometheus", "prometheus.yml")],
      {
        encoding: "utf8",
      },
    );
    expect(out).toContain("SUCCESS");
  });
});

describe("task grafana:up (grafana/src/compose-cli.ts)", () => {
  let dir: string;
  beforeAll(() => {
    dir = scratchDir("grafana-up");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("without docker on PATH exits 1 naming the missing Docker engine", async () => {
    expect(existsSync(join(NODE_ONLY, "docker"))).toBe(false);
    const res = await cli(["up"], { PATH: NODE_ONLY });
    expect(res.status).toBe(1);
    expect(res.stderr).toContain("a Docker engine with the Compose plugin is needed");
    expect(res.stderr).toContain("no `docker` command on PATH");
  });

  it.each([
    [{ engine: false, plugin: true }, ["the Docker engine does not answer (`docker info` failed: Cannot connect"]],
    [{ engine: true, plugin: false }, ["the Docker Compose plugin is missing"]],
    [{ engine: false, plugin: false }, ["the Docker engine does not answer", "the Docker Compose plugin is missing"]],
  ])("with a docker command but %o exits 1 saying what is missing", async (docker, messages) => {
    const bin = scratchDir("docker");
    try {
      const log = standInDocker(bin, docker);
      const res = await cli(["up"], { PATH: `${bin}:${NODE_ONLY}` });
      expect(res.status).toBe(1);
      for (const m of messages) expect(res.stderr).toContain(m);
      expect(readFileSync(log, "utf8"), "nothing started").not.toContain("up --detach");
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it.each([
    ["no-such-run", "RUN=no-such-run: no run folder results/load/no-such-run or results/chaos/no-such-run"],
    ["../etc", "RUN=../etc: not a run id"],
  ])("RUN=%s exits 2 naming RUN and why, before anything starts", async (name, message) => {
    const log = standInDocker(dir, { engine: true, plugin: true });
    rmSync(log, { force: true });
    const res = await cli(["up", "--run", name], { PATH: `${dir}:${NODE_ONLY}` });
    expect(res.status).toBe(2);
    expect(res.stderr).toContain(message);
    expect(existsSync(log), "docker was not called").toBe(false);
  });

  describe("on a run folder", () => {
    const id = `grafana-compose-test-${process.pid}`;
    const runDir = join(repoRoot, "results", "load", id);
    const copy = join(repoRoot, "results", "grafana", "prometheus-data", id);
    let endpoints: Server;
    beforeAll(async () => {
      // Stands in for Grafana's /api/health and Prometheus's /-/ready on the published ports.
      endpoints = createServer((req, res) =>
        res.writeHead(req.url === "/api/health" || req.url === "/-/ready" ? 200 : 404).end(),
      );
      await new Promise<void>((resolve) => endpoints.listen(0, "127.0.0.1", resolve));
    });
    afterAll(() => {
      endpoints.close();
      rmSync(runDir, { recursive: true, force: true });
      rmSync(copy, { recursive: true, force: true });
    });

    it("without a saved TSDB exits 2 naming RUN and the reason", async () => {
      mkdirSync(runDir, { recursive: true });
      const res = await cli(["up", "--run", id], { PATH: `${dir}:${NODE_ONLY}` });
      expect(res.status).toBe(2);
      expect(res.stderr).toContain(`RUN=${id}: results/load/${id} holds no Prometheus TSDB`);
    });

    it("stops Prometheus, opens a writable copy of the run's TSDB and links the dashboards over the run", async () => {
      mkdirSync(join(runDir, "prometheus", "wal"), { recursive: true });
      writeFileSync(join(runDir, "prometheus", "wal", "00000000"), "", { mode: 0o600 });
      const startedAt = "2026-01-02T03:04:05.000Z";
      writeFileSync(join(runDir, "summary.json"), JSON.stringify({ startedAt, durationSeconds: 60 }));
      const log = standInDocker(dir, { engine: true, plugin: true });
      rmSync(log, { force: true });
      const port = String((endpoints.address() as AddressInfo).port);
      const res = await cli(["up", "--run", id], {
        PATH: `${dir}:${NODE_ONLY}`,
        GRAFANA_PORT: port,
        PROMETHEUS_PORT: port,
      });
      expect(res.status, res.stderr).toBe(0);
      const calls = readFileSync(log, "utf8").trim().split("\n");
      const rm = calls.indexOf(`compose -f ${COMPOSE} rm --stop --force prometheus PROMETHEUS_DATA=`);
      const up = calls.indexOf(`compose -f ${COMPOSE} up --detach PROMETHEUS_DATA=${copy}`);
      expect(rm, calls.join("\n")).toBeGreaterThanOrEqual(0);
      expect(up, calls.join("\n")).toBeGreaterThan(rm);
      // The container's Prometheus runs as `nobody`: it writes to its storage.
      expect(statSync(join(copy, "wal", "00000000")).mode & 0o777).toBe(0o666);
      expect(statSync(join(copy, "wal")).mode & 0o777).toBe(0o777);
      expect(res.stdout).toContain(`Grafana http://127.0.0.1:${port}`);
      const from = Date.parse(startedAt) - 30_000;
      // Every dashboard over the run's time range; the load dashboard's k6 series on this run's testid.
      expect(res.stdout).toContain(`?from=${from}&to=${from + 120_000}`);
      expect(res.stdout).toMatch(new RegExp(`/d/[\\w-]+\\?from=${from}&to=${from + 120_000}&var-testid=${id}\n`));
    });
  });
});
