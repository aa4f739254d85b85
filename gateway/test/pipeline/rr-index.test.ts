import { describe, expect, it } from "vitest";
import { eventually } from "../../../harness/src/poll.js";
import { dedupKey } from "../../src/dedup.js";
import { buildRemediationRequest, RR_API, remediationRequestName } from "../../src/remediation-request.js";
import type { Signal } from "../../src/types.js";
import { apiServerRequests, listRRs, metricValue, pipelineOnRealStack, podAlert } from "./stack.js";

const NS = "indexed";

/** The RemediationRequest index (list+watch) the creations consult instead of listing per creation. */
describe("creations against the in-memory index of RemediationRequests", () => {
  const stack = pipelineOnRealStack({ [NS]: {} });

  const process = (signal: Signal) => stack.run.pipeline.process(signal, { requestId: "index" });
  const synced = () => metricValue(stack.run.metrics, "gateway_rr_index_synced");

  /** LISTs of RemediationRequests in one namespace the API server has served (its own metrics). */
  const namespacedLists = () => apiServerRequests(stack.kube, { scope: "namespace", verb: "LIST" });

  /** Creates the request as another gateway would (generation 0 name), bypassing this pipeline. */
  const createElsewhere = async (signal: Signal, phase?: string) => {
    const name = remediationRequestName(signal.fingerprint, 0);
    const body = buildRemediationRequest({ signal, environment: "unknown", priority: "P2" }, { namespace: NS }, name);
    const base = `/apis/${RR_API.group}/${RR_API.version}/namespaces/${NS}/${RR_API.plural}`;
    const created = await stack.kube.request("POST", base, {
      body: JSON.stringify(body),
      contentType: "application/json",
    });
    expect(created.status).toBe(201);
    const deduplication = { occurrenceCount: 4, firstSeenAt: signal.firingTime, lastSeenAt: signal.firingTime };
    const status = { deduplication, ...(phase ? { overallPhase: phase } : {}) };
    const patched = await stack.kube.request("PATCH", `${base}/${name}/status`, {
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
    const entries = await metricValue(stack.run.metrics, "gateway_rr_index_entries");
    const name = await createElsewhere(signal);
    await eventually(async () => (await metricValue(stack.run.metrics, "gateway_rr_index_entries")) > entries, {
      what: "the index to hold the request (watch event)",
    });
    const result = await process(signal);
    expect(result).toMatchObject({ status: "duplicate", remediationRequestName: name, occurrenceCount: 5 });
    expect(await listRRs(stack.kube, NS, signal.fingerprint)).toHaveLength(1);
  });

  it("creates the next generation once the request is in a terminal phase", async () => {
    const signal = podAlert({ namespace: NS });
    const first = await createElsewhere(signal, "Completed");
    const result = await process(signal);
    expect(result.status).toBe("created");
    expect(result.remediationRequestName).toBe(remediationRequestName(signal.fingerprint, 1));
    expect(result.remediationRequestName).not.toBe(first);
    const all = await listRRs(stack.kube, NS, signal.fingerprint);
    expect(all.filter((rr) => rr.status?.overallPhase !== "Completed")).toHaveLength(1);
  });

  it("follows the API server again after it restarts, and keeps D1 across a Redis that forgot", async () => {
    const signal = podAlert({ namespace: NS });
    expect((await process(signal)).status).toBe("created");
    await stack.kube.stopApiServer();
    await stack.kube.startApiServer();
    await eventually(async () => (await synced()) === 1, { what: "the index watching again", timeoutMs: 20_000 });
    await stack.client.del(dedupKey(signal.fingerprint)); // Redis lost the record (TTL, failover)
    const before = await namespacedLists();
    expect(await process(signal)).toMatchObject({ status: "duplicate" });
    expect(await namespacedLists()).toBe(before);
    expect(await listRRs(stack.kube, NS, signal.fingerprint)).toHaveLength(1);
  });
});
