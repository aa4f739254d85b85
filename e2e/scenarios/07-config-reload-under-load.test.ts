// Scenario 7: configuration reload without downtime. Under load, the rate limit
// and the storm threshold change in place: zero failed requests, each new value
// seen in behaviour; a broken file is rejected with its reason and the running
// configuration stays in force.
import { type ClientAnswer, expect, scenario } from "../src/dsl.js";

const LIMIT = 150;
const refused = (answers: ClientAnswer[]) => answers.filter((a) => a.status === 429).length;
/** Accepted answers against what a bucket of LIMIT/s with a burst of LIMIT lets through while they were sent. */
function limitHeld(answers: ClientAnswer[]) {
  const seconds = (Math.max(...answers.map((a) => a.at + a.ms)) - Math.min(...answers.map((a) => a.at))) / 1000;
  const accepted = answers.filter((a) => a.status >= 200 && a.status < 300).length;
  const allowed = Math.ceil(LIMIT + LIMIT * seconds);
  expect(refused(answers), "429s").toBeGreaterThan(0);
  expect(accepted, `accepted in ${seconds.toFixed(2)} s`).toBeLessThanOrEqual(allowed);
  return { accepted, allowed, refused: refused(answers), seconds: Number(seconds.toFixed(2)) };
}
const burstOf = (forwardedFor: string, text: string) => ({ forwardedFor, rate: 800, count: 400, text });

scenario(
  "7. configuration reloads under load with zero failed requests; a bad file is rejected",
  async ({ given, when, then }) => {
    await given.stack({
      namespaces: { billing: { environment: "production" } },
      gateway: {
        rateLimit: { enabled: true, requestsPerSecond: 1000, burst: 1000, trustForwardedFor: true },
        // Storm windows close within the accounting's wait.
        processing: { storm: { aggregationWindow: "5s" } },
      },
    });
    // The load is a client of its own (127.0.0.1): it stays under every limit below.
    const load = await when.loadRuns(100);
    const before = await when.clientSends(
      burstOf("10.0.0.7", "client C sends 400 alerts at 800/s (limit 1000/s, burst 1000)"),
    );
    expect(refused(before), "429s under the old limit").toBe(0);

    await when.configChanges(
      { rateLimit: { requestsPerSecond: LIMIT, burst: LIMIT }, processing: { storm: { rateThreshold: 3 } } },
      "the rate limit drops to 150/s (burst 150) and the storm threshold to 3, reloaded in place",
    );
    const after = await when.clientSends(burstOf("10.0.0.8", "client D sends 400 alerts at 800/s (limit now 150/s)"));
    const storm = await when.webhooksSent(
      Array.from({ length: 6 }, (_, i) => ({ alert: "InvoiceRunSlow", namespace: "billing", pod: `invoicer-${i}` })),
      "6 alerts of one name arrive (storm threshold now 3)",
    );
    await then.holds(
      "the new limit and threshold are in force",
      async () => {
        const folded = storm.answers.filter((a) => a.body.status === "storm-aggregated").length;
        expect(folded).toBeGreaterThan(0);
        return { rateLimit: limitHeld(after), stormAggregatedOf6: folded };
      },
      0,
    );

    const broken = await when.configFileReplaced(
      "rateLimit:\n  requestsPerSecond: [not a number\n",
      "a broken config file is written",
    );
    expect(broken.outcome).toBe("failure");
    expect(broken.log).toContain("rejected");
    const still = await when.clientSends(burstOf("10.0.0.9", "client E sends 400 alerts at 800/s"));
    await then.holds(
      "the running configuration stayed in force (limit 150/s)",
      async () => {
        return { rateLimit: limitHeld(still) };
      },
      0,
    );

    await then.everySignalAccountedFor(load);
    await then.holds(
      "the background load saw zero failed requests",
      async () => {
        expect(
          load.answers.filter((a) => a.status < 200 || a.status >= 300).map((a) => `${a.status} ${a.reason ?? ""}`),
        ).toEqual([]);
        return { answers: load.answers.length };
      },
      0,
    );
  },
);
