import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StartedKubeApiServer } from "../../../harness/src/components/kube-api.js";
import { RedisServer, type StartedRedisServer } from "../../../harness/src/components/redis.js";
import { eventually } from "../../../harness/src/poll.js";
import { freePort } from "../../../harness/src/ports.js";
import { dedupKey } from "../../src/dedup.js";
import { buildRemediationRequest, RR_API, remediationRequestName } from "../../src/remediation-request.js";
import type { Signal } from "../../src/types.js";
import {
  apiServerRequests,
  listRRs,
  metricValue,
  podAlert,
  type RunningPipeline,
  startKube,
  startPipeline,
  testConfig,
} from "./stack.js";

const NS = "indexed";

/** The RemediationRequest index (list+watch) the creations consult instead of listing per creation. */
describe("creations against the in-memory index of RemediationRequests", () => {
  let redis: StartedRedisServer;
  let kube: StartedKubeApiServer;
  let run: RunningPipeline;
  let client: Redis;

  beforeAll(async () => {
    [redis, kube] = await Promise.all([new RedisServer().start(), startKube({ [NS]: {} })]);
    run = await startPipeline(
      testConfig({
        redis: { url: redis.getConnectionUrl() },
        kubernetes: { kubeconfigPath: kube.getKubeconfigPath() },
        dataStorage: { url: `http://127.0.0.1:${await freePort()}` },
      }),
    );
    client = redis.client();
  });

  afterAll(async () => {
    client?.disconnect();
    await run?.pipeline.close();
    await Promise.all([redis?.stop(), kube?.stop()]);
  });

  const process = (signal: Signal) => run.pipeline.process(signal, { requestId: "index" });
  const synced = () => metricValue(run.metrics, "gateway_rr_index_synced");

  /** LISTs of RemediationRequests in one namespace the API server has served (its own metrics). */
  const namespacedLists = () => apiServerRequests(kube, { scope: "namespace", verb: "LIST" });

  /** Creates the request as another gateway would (generation 0 name), bypassing this pipeline. */
  const createElsewhere = async (signal: Signal, phase?: string) => {
    const name = remediationRequestName(signal.fingerprint, 0);
    const body = buildRemediationRequest({ signal, environment: "unknown", priority: "P2" }, { namespace: NS }, name);
    const base = `/apis/${RR_API.group}/${RR_API.version}/namespaces/${NS}/${RR_API.plural}`;
    const created = await kube.request("POST", base, { body: JSON.stringify(body), contentType: "application/json" });
    expect(created.status).toBe(201);
    const deduplication = { occurrenceCount: 4, firstSeenAt: signal.firingTime, lastSeenAt: signal.firingTime };
    const status = { deduplication, ...(phase ? { overallPhase: phase } : {}) };
    const patched = await kube.request("PATCH", `${base}/${name}/status`, {
      body: JSON.stringify({ status }),
      contentType: "application/merge-patch+json",
    });
    expect(patched.status).toBe(200);
    return name;
  };

  it("is in sync after start and creates without listing requests per creation", async () => {
    expect(await synced()).toBe(1);
    const before = await namespacedLists();
    for (let i = 0; i < 5; i++) expect((await process(podAlert({ namespace: NS }))).status).toBe("created");
    expect(await namespacedLists()).toBe(before);
  });

  it("adopts an active request another gateway created when Redis has no record of it (D1)", async () => {
    const signal = podAlert({ namespace: NS });
    const entries = await metricValue(run.metrics, "gateway_rr_index_entries");
    const name = await createElsewhere(signal);
    await eventually(async () => (await metricValue(run.metrics, "gateway_rr_index_entries")) > entries, {
      what: "the index to hold the request (watch event)",
    });
    const result = await process(signal);
    expect(result).toMatchObject({ status: "duplicate", remediationRequestName: name, occurrenceCount: 5 });
    expect(await listRRs(kube, NS, signal.fingerprint)).toHaveLength(1);
  });

  it("creates the next generation once the request is in a terminal phase", async () => {
    const signal = podAlert({ namespace: NS });
    const first = await createElsewhere(signal, "Completed");
    const result = await process(signal);
    expect(result.status).toBe("created");
    expect(result.remediationRequestName).toBe(remediationRequestName(signal.fingerprint, 1));
    expect(result.remediationRequestName).not.toBe(first);
    const all = await listRRs(kube, NS, signal.fingerprint);
    expect(all.filter((rr) => rr.status?.overallPhase !== "Completed")).toHaveLength(1);
  });

  it("follows the API server again after it restarts, and keeps D1 across a Redis that forgot", async () => {
    const signal = podAlert({ namespace: NS });
    expect((await process(signal)).status).toBe("created");
    await kube.stopApiServer();
    await kube.startApiServer();
    await eventually(async () => (await synced()) === 1, { what: "the index watching again", timeoutMs: 20_000 });
    await client.del(dedupKey(signal.fingerprint)); // Redis lost the record (TTL, failover)
    const before = await namespacedLists();
    expect(await process(signal)).toMatchObject({ status: "duplicate" });
    expect(await namespacedLists()).toBe(before);
    expect(await listRRs(kube, NS, signal.fingerprint)).toHaveLength(1);
  });
});
