// Scenario 11's body, shared by the scenario and its can-fail run (e2e/test/can-fail-isolation-replicas.test.ts).
import type { Redis } from "ioredis";
import { type ConfigTree, GatewayProcess, type StartedGateway } from "../../../harness/src/components/gateway.js";
import { eventually } from "../../../harness/src/poll.js";
import { postAlert, said } from "../alert-post.js";
import {
  expect,
  fingerprintOf,
  type RemediationRequestObject,
  type SignalRef,
  type StackSpec,
  type Steps,
  type World,
} from "../dsl.js";

const NS = "checkout";
/** The AI analysis of these alerts' requests stalls (standins/src/behaviour.ts): the requests stand. */
const STALL = { kubernaut_standin_aianalysis: "stall" };
const TTL_MS = 10_000;
/** How far a dedup key runs down before a duplicate: far more than the time a post and a read take. */
const RUN_DOWN_MS = 2_000;

const alertOf = (pod: string, labels: Record<string, string> = {}) => ({
  alertname: "CheckoutErrorBudgetBurn",
  severity: "critical",
  namespace: NS,
  pod,
  ...labels,
});
const signalOf = (pod: string): SignalRef => ({
  fingerprint: fingerprintOf("CheckoutErrorBudgetBurn", NS, "Pod", pod),
  signalName: `CheckoutErrorBudgetBurn (${pod})`,
  namespace: NS,
});

/** A second replica: the first's configuration but its own port and audit journal (GatewayProcess picks them). */
function startReplica(first: StartedGateway, main: string | undefined): Promise<StartedGateway> {
  const { server, dataStorage, ...shared } = first.getConfig();
  const { listenAddress: _port, ...ownServer } = server as ConfigTree;
  const { journalDir: _journal, ...ownDataStorage } = dataStorage as ConfigTree;
  const replica = new GatewayProcess().withConfig({ ...shared, server: ownServer, dataStorage: ownDataStorage });
  if (main) replica.withMain(main);
  return replica.start();
}

async function withRedis<T>(world: World, work: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = world.stack.redis.client();
  try {
    return await work(redis);
  } finally {
    redis.disconnect();
  }
}

const dedupKey = (s: SignalRef) => `gateway:dedup:fingerprint:${s.fingerprint}`;
const pttl = (world: World, s: SignalRef) => withRedis(world, (r) => r.pttl(dedupKey(s)));

/** "201 created + 202 duplicate ×21" */
function tally(items: string[]): string {
  const counts = new Map<string, number>();
  for (const i of items) counts.set(i, (counts.get(i) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ×${n}`).join(", ");
}

const requestsBy = (rrs: RemediationRequestObject[], s: SignalRef) =>
  rrs.filter((rr) => rr.spec.signalFingerprint === s.fingerprint);

export async function replicasDedupWindow({ given, when, then }: Steps, stack: StackSpec = {}): Promise<void> {
  const world = await given.stack({
    namespaces: { [NS]: { environment: "production" } },
    gateway: {
      // Storms (scenario 5) would fold 21 alerts of one name into one request.
      processing: { deduplication: { ttl: `${TTL_MS / 1000}s` }, storm: { enabled: false } },
    },
    // The stalled requests stay active (Analyzing) past the dedup window.
    phaseTimeout: "5m",
    ...stack,
  });
  const first = world.stack.gateway;
  if (!first) throw new Error("the stack has no gateway");
  const replica = await when.does(
    "a second gateway replica starts with the first's configuration on another port (same Redis, same API server)",
    () => startReplica(first, stack.gatewayMain),
  );
  given.track(() => replica.stop());
  const urls = [first.getUrl(), replica.getUrl()] as const;

  // Twenty whose requests stand, one whose request completes.
  const pods = Array.from({ length: 20 }, (_, i) => `cart-${String(i).padStart(2, "0")}`);
  const alerts = [...pods.map((pod) => alertOf(pod, STALL)), alertOf("cart-done")];
  const signals = [...pods, "cart-done"].map(signalOf);
  const [probeAlert, probe] = [alertOf("cart-00", STALL), signalOf("cart-00")];
  const [doneAlert, done] = [alertOf("cart-done"), signalOf("cart-done")];
  const firstAnswers = await when.does(
    `each of ${alerts.length} new alerts is posted to both replicas at the same moment`,
    () => Promise.all(alerts.map((alert) => Promise.all(urls.map((url) => postAlert(url, alert))))),
    (pairs) => `answers per alert: ${tally(pairs.map((p) => p.map(said).sort().join(" + ")))}`,
  );

  await then.holds(
    "exactly one RemediationRequest per fingerprint across both replicas",
    async () => {
      const rrs = await world.remediationRequests();
      const wrong = signals
        .map((s) => ({ s, names: requestsBy(rrs, s).map((rr) => rr.metadata.name) }))
        .filter(({ names }) => names.length !== 1)
        .map(
          ({ s, names }) =>
            `${names.length} requests for fingerprint ${s.fingerprint} (${s.signalName}): ${names.join(", ")}`,
        );
      if (wrong.length > 0) throw new Error(`${wrong.length} of ${signals.length} fingerprints: ${wrong.join("; ")}`);
    },
    0,
  );
  await then.holds(
    "each fingerprint was answered 201 created by one replica and 202 duplicate by the other, and counts 2 (status, Redis)",
    async () => {
      expect(firstAnswers.map((pair) => pair.map(said).sort().join(" + "))).toEqual(
        signals.map(() => "201 created + 202 duplicate"),
      );
      const rrs = await world.remediationRequests();
      for (const s of signals) {
        expect(requestsBy(rrs, s)[0]?.status?.deduplication?.occurrenceCount, s.signalName).toBe(2);
        expect((await world.dedupHash(s)).count, s.signalName).toBe("2");
      }
    },
    15_000,
  );
  await then.remediationRequest(done).reaches("Completed");

  // Each duplicate refreshes the TTL, whichever replica takes it.
  for (const [i, url] of urls.entries()) {
    const { before, answer, after } = await when.does(
      `once its dedup key has run down ${RUN_DOWN_MS} ms, a duplicate of ${probe.signalName} is posted to replica ${i + 1}`,
      async () => {
        const before = await eventually(
          async () => {
            const ms = await pttl(world, probe);
            if (ms > TTL_MS - RUN_DOWN_MS) throw new Error(`PTTL ${ms} ms`);
            return ms;
          },
          { what: `the dedup key to run down to ${TTL_MS - RUN_DOWN_MS} ms`, timeoutMs: TTL_MS, intervalMs: 100 },
        );
        const answer = await postAlert(url, probeAlert);
        return { before, answer, after: await pttl(world, probe) };
      },
      (r) => `PTTL ${r.before} ms → ${r.after} ms`,
    );
    await then.holds(
      `the duplicate via replica ${i + 1} refreshed the dedup key's TTL to ${TTL_MS} ms`,
      async () => {
        const seen = `${said(answer)}, PTTL ${before} ms before, ${after} ms after`;
        if (answer.status !== 202 || after < TTL_MS - 1_000 || after > TTL_MS) throw new Error(seen);
      },
      0,
    );
  }
  const standing = await then.holds(
    `${probe.signalName}'s request counts 4 occurrences and stands in Analyzing`,
    async () => {
      const [rr, ...more] = await world.requestsOf(probe);
      expect(more).toEqual([]);
      expect(rr?.status?.overallPhase).toBe("Analyzing");
      expect(rr?.status?.deduplication?.occurrenceCount).toBe(4);
      return rr as RemediationRequestObject;
    },
    10_000,
  );
  const completed = (await world.requestsOf(done))[0] as RemediationRequestObject;

  await when.does(
    "no alert is posted until the dedup window has lapsed for every fingerprint (their keys expired in Redis)",
    () =>
      eventually(
        async () => {
          const left = await withRedis(world, (r) => r.exists(...signals.map(dedupKey)));
          if (left > 0) throw new Error(`${left} keys left`);
        },
        { what: "every dedup key to expire", timeoutMs: 2 * TTL_MS, intervalMs: 250 },
      ),
  );
  const again = await when.does(
    `${probe.signalName} and ${done.signalName} are posted again, after the window`,
    async () => ({
      probe: await postAlert(urls[1], probeAlert),
      done: await postAlert(urls[0], doneAlert),
    }),
  );

  // Section 4, D1: at most one non-terminal request per fingerprint. A lapsed window forgets
  // the fingerprint in Redis, not the request: one still active takes the sighting (its
  // count goes on, from its status), and only a finished one leaves room for a new request.
  await then.holds(
    `${probe.signalName}, whose request still stands, is deduplicated against it through the API server: 202, counting 5`,
    async () => {
      expect(said(again.probe)).toBe("202 duplicate");
      expect(again.probe.body).toMatchObject({
        remediationRequestName: standing.metadata.name,
        occurrenceCount: 5,
        firstSeenAt: standing.status?.deduplication?.firstSeenAt,
      });
      const rrs = await world.requestsOf(probe);
      expect(rrs.map((rr) => rr.metadata.name)).toEqual([standing.metadata.name]);
      expect(rrs[0]?.status?.deduplication?.occurrenceCount).toBe(5);
      const hash = await world.dedupHash(probe);
      expect([hash.remediationRequestRef, hash.count]).toEqual([`${NS}/${standing.metadata.name}`, "5"]);
    },
    10_000,
  );
  await then.holds(
    `${done.signalName}, whose request is Completed, gets a new request (201); the Completed one is left as it was`,
    async () => {
      expect(said(again.done)).toBe("201 created");
      const rrs = await world.requestsOf(done);
      const old = rrs.find((rr) => rr.metadata.name === completed.metadata.name);
      expect(old?.status?.overallPhase).toBe("Completed");
      expect(old?.status?.deduplication?.occurrenceCount).toBe(2);
      expect(rrs.map((rr) => rr.metadata.name).sort()).toEqual(
        [completed.metadata.name, again.done.body.remediationRequestName].sort(),
      );
    },
    10_000,
  );
}
