import { describe, expect, it } from "vitest";
import { latencyChart } from "../suite/report.js";

describe("latencyChart", () => {
  it("skips points without a value (histogram_quantile over an idle window is NaN) and still draws the rest", () => {
    const svg = latencyChart(
      [
        {
          name: "p99",
          points: [
            [100, 12],
            [105, Number.NaN],
            [110, 40],
            [115, Number.POSITIVE_INFINITY],
          ],
        },
        { name: "p50", points: [[100, Number.NaN]] },
      ],
      "run",
    );
    expect(svg).not.toMatch(/NaN|Infinity/);
    const lines = [...svg.matchAll(/<polyline[^>]*points="([^"]*)"/g)].map((m) => m[1]?.split(" ").filter(Boolean));
    expect(lines[0]).toHaveLength(2);
    expect(lines[1] ?? []).toHaveLength(0);
    // The y axis scales to the largest real value (40 ms * 1.1), not to a missing one.
    expect(svg).toContain(">44<");
  });

  it("says 'no data' when no series has a value", () => {
    expect(latencyChart([{ name: "p99", points: [[1, Number.NaN]] }], "run")).toContain("run: no data");
  });
});
