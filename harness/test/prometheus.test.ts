import { existsSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrometheusServer, type StartedPrometheusServer } from "../src/components/prometheus.js";
import { scratchDir } from "../src/paths.js";

/** A /metrics endpoint exposing one counter with a fixed value. */
async function metricsServer(name: string, value: number): Promise<{ server: Server; target: string }> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" });
    res.end(`# HELP ${name} A test counter.\n# TYPE ${name} counter\n${name} ${value}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, target: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("PrometheusServer (real prometheus)", () => {
  let prom: StartedPrometheusServer;
  const servers: Server[] = [];
  beforeAll(async () => {
    const first = await metricsServer("harness_test_total", 42);
    servers.push(first.server);
    prom = await new PrometheusServer().withScrapeTarget("first", first.target, { scrapeInterval: "1s" }).start();
  });
  afterAll(async () => {
    await prom?.stop();
    for (const s of servers) s.close();
  });

  it("scrapes a target and answers instant and range queries with its value", async () => {
    const [sample] = await prom.waitForSeries('harness_test_total{job="first"}');
    expect(sample?.value).toBe(42);
    expect(sample?.metric.instance).toMatch(/^127\.0\.0\.1:\d+$/);

    const end = new Date();
    const series = await prom.queryRange("harness_test_total", {
      start: new Date(end.getTime() - 60_000),
      end,
      stepSeconds: 1,
    });
    expect(series).toHaveLength(1);
    expect(series[0]?.values.every(([, v]) => v === 42)).toBe(true);
  });

  it("rejects a bad query with Prometheus's reason", async () => {
    await expect(prom.query("sum(")).rejects.toThrow(/bad_data/);
  });

  it("scrapes a target added at run time after a reload", async () => {
    const second = await metricsServer("harness_second_total", 7);
    servers.push(second.server);
    await prom.addScrapeTarget("second", second.target);
    const [sample] = await prom.waitForSeries('harness_second_total{job="second"}');
    expect(sample?.value).toBe(7);
  });

  it("has the remote-write receiver enabled", async () => {
    // An empty body is not a valid snappy protobuf: enabled receivers say 400, disabled ones 404.
    const res = await fetch(prom.remoteWriteUrl(), { method: "POST", body: "" });
    expect(res.status).toBe(400);
  });
});

describe("PrometheusServer.withDataDir (what a load or chaos run keeps for `task grafana:up RUN=`)", () => {
  it("leaves the TSDB in the folder on stop, and a later server there reopens it with the samples", async () => {
    const dir = scratchDir("prometheus-kept");
    const data = join(dir, "prometheus");
    const { server, target } = await metricsServer("harness_kept_total", 5);
    try {
      const first = await new PrometheusServer().withScrapeTarget("kept", target).withDataDir(data).start();
      const [sample] = await first.waitForSeries('harness_kept_total{job="kept"}');
      await first.stop();
      expect(existsSync(join(data, "wal")), "the WAL holds a short run's samples").toBe(true);

      // As the next experiment of a chaos run does: same folder, nothing scraped any more.
      const second = await new PrometheusServer().withDataDir(data).start();
      try {
        const at = new Date((sample?.timestamp ?? 0) * 1000);
        const [again] = await second.query('harness_kept_total{job="kept"}', at);
        expect(again?.value).toBe(5);
      } finally {
        await second.stop();
      }
      expect(existsSync(join(data, "wal"))).toBe(true);
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
