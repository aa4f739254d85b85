import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { type CpuProfile, Inspector, type Stage, stageTimes } from "../src/cpu-profile.js";
import { eventually } from "../src/poll.js";
import { freePort } from "../src/ports.js";

const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({
  id,
  callFrame: { functionName, url, lineNumber: 0, columnNumber: 0 },
  children,
});

describe("stageTimes", () => {
  const stages: Stage[] = [
    { name: "parse", matches: (f) => f.url.endsWith("/json-body.ts") },
    { name: "redis", matches: (f) => f.url.includes("/node_modules/ioredis/") },
    { name: "gc", matches: (f) => f.functionName === "(garbage collector)" },
  ];
  // root ─ handler ─ readBody (json-body.ts) ─ JSON.parse (native)
  //      │        └ send (ioredis) ─ write (node:net)
  //      ├ (idle)   ├ (garbage collector)   └ tick (node:internal)
  const profile: CpuProfile = {
    nodes: [
      frame(1, "(root)", "", [2, 6, 7, 8]),
      frame(2, "handler", "file:///app/gateway/src/pipeline.ts", [3, 4]),
      frame(3, "readBody", "file:///app/gateway/src/json-body.ts", [9]),
      frame(4, "send", "file:///app/node_modules/ioredis/built/Redis.js", [5]),
      frame(5, "write", "node:net"),
      frame(6, "(idle)", ""),
      frame(7, "(garbage collector)", ""),
      frame(8, "tick", "node:internal/process/task_queues"),
      frame(9, "parse", ""),
    ],
    startTime: 0,
    endTime: 1000,
    samples: [9, 9, 3, 5, 6, 6, 6, 7, 8, 2],
    timeDeltas: [100, 100, 100, 100, 100, 100, 100, 100, 100, 100],
  };

  it("gives each sample the stage of its innermost known frame, leaves idle out, and the rest to other", () => {
    expect(stageTimes(profile, stages)).toEqual([
      { stage: "parse", ms: 0.3, share: 3 / 7 },
      { stage: "redis", ms: 0.1, share: 1 / 7 },
      { stage: "gc", ms: 0.1, share: 1 / 7 },
      { stage: "other", ms: 0.2, share: 2 / 7 },
    ]);
  });
});

describe("Inspector", () => {
  it("profiles a real node process over its inspector while a window runs", async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        `--inspect=127.0.0.1:${port}`,
        "-e",
        "function busy(){JSON.parse(JSON.stringify({a:[1,2,3]}))} setInterval(()=>{for(let i=0;i<2000;i++)busy()},5)",
      ],
      { stdio: "ignore" },
    );
    try {
      const inspector = await eventually(() => Inspector.connect(port), { what: "the inspector", timeoutMs: 10_000 });
      try {
        const { result, profile } = await inspector.profile(() => new Promise((r) => setTimeout(() => r("done"), 500)));
        expect(result).toBe("done");
        expect(profile.samples.length).toBeGreaterThan(50);
        expect(profile.nodes.some((n) => n.callFrame.functionName === "busy")).toBe(true);
        const [busy] = stageTimes(profile, [{ name: "busy", matches: (f) => f.functionName === "busy" }]);
        expect(busy?.share).toBeGreaterThan(0.3);
      } finally {
        inspector.close();
      }
    } finally {
      child.kill();
    }
  });
});
