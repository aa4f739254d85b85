import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { freePort } from "../src/ports.js";

const run = promisify(execFile);
const ephemeralLow = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);

describe("freePort", () => {
  it("hands out bindable ports below the kernel's ephemeral range, each once", async () => {
    const ports: number[] = [];
    for (let i = 0; i < 100; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(100);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(ephemeralLow);
    }
    const srv = createServer();
    await new Promise<void>((resolve) => srv.listen(ports[0], "127.0.0.1", resolve));
    srv.close();
  });

  it("never hands the same port to two processes picking at the same time", async () => {
    // 400 random picks each out of ~12 700 ports: without the cross-process claim some ten coincide.
    const pick = () =>
      run(process.execPath, ["--import", "tsx", join(import.meta.dirname, "fixtures", "pick-ports.ts"), "400"]);
    const [a, b] = await Promise.all([pick(), pick()]);
    const mine = new Set(JSON.parse(a.stdout) as number[]);
    const theirs = JSON.parse(b.stdout) as number[];
    expect(mine.size).toBe(400);
    expect(theirs.filter((p) => mine.has(p))).toEqual([]);
  }, 60_000);
});
