// Scenario 9's body, shared by the scenario and its can-fail run (e2e/test/can-fail-isolation-replicas.test.ts).
// Bearer auth is on: every sender's token goes through a TokenReview at the real API server.
// Senders need no RBAC of their own: the contract (section 1) and the cluster manifests
// (load/k8s/access.yaml) only ask that the token be valid.
import { bearer, postAlert, said } from "../alert-post.js";
import {
  expect,
  fingerprintOf,
  type RemediationRequestObject,
  type SignalRef,
  type StackSpec,
  type Steps,
  type World,
} from "../dsl.js";

const A = "payments";
const B = "ledger";
/** Matches the allow list's `ledger*`, but the deny list wins. */
const DENIED = "ledger-archive";
/** Outside the allow list. */
const NOT_ALLOWED = "sandbox";
/** Allowed by `ledger*`, but no such Namespace exists. */
const MISSING = "ledger-2019";
const FALLBACK = "signals-fallback";
const ORIGIN_LABEL = "kubernaut.ai/origin-namespace";
const GROUP = { group: "kubernaut.ai", version: "v1alpha1", plural: "remediationrequests" } as const;

const alertIn = (namespace: string, pod = "api-0") => ({
  alertname: "PaymentsLatencyHigh",
  severity: "critical",
  namespace,
  pod,
});
const signalIn = (namespace: string, pod = "api-0"): SignalRef => ({
  fingerprint: fingerprintOf("PaymentsLatencyHigh", namespace, "Pod", pod),
  signalName: "PaymentsLatencyHigh",
  namespace,
});

async function requestsIn(world: World, namespace: string): Promise<RemediationRequestObject[]> {
  return (await world.remediationRequests()).filter((rr) => rr.metadata.namespace === namespace);
}

const resourceVersion = (rr: RemediationRequestObject | undefined) =>
  (rr?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;

const describeRequests = (rrs: RemediationRequestObject[]) =>
  rrs.map((rr) => `${rr.metadata.namespace}/${rr.metadata.name} (${rr.spec.signalName})`).join(", ") || "none";

/**
 * A request in B carrying A's fingerprint, kept active (its AI analysis stalls): a gateway
 * that looked requests up by fingerprint alone, not per namespace, would adopt and count it.
 */
function decoyInB(fingerprint: string) {
  const now = new Date().toISOString();
  return {
    apiVersion: `${GROUP.group}/${GROUP.version}`,
    kind: "RemediationRequest",
    metadata: {
      name: "rr-decoy-of-payments",
      namespace: B,
      labels: { "kubernaut.ai/signal-fingerprint": fingerprint.slice(0, 63) },
    },
    spec: {
      signalFingerprint: fingerprint,
      signalName: "PaymentsLatencyHigh",
      severity: "critical",
      environment: "production",
      priority: "P0",
      signalType: "prometheus-alert",
      signalSource: "e2e-decoy",
      targetType: "kubernetes",
      targetResource: { kind: "Pod", name: "api-0", namespace: A },
      firingTime: now,
      receivedTime: now,
      signalLabels: { kubernaut_standin_aianalysis: "stall" },
    },
  };
}

export async function namespaceIsolation({ given, when, then }: Steps, stack: StackSpec = {}): Promise<void> {
  const world = await given.stack({
    namespaces: {
      [A]: { environment: "production" },
      [B]: { environment: "production" },
      [DENIED]: { environment: "production" },
      [NOT_ALLOWED]: { environment: "development" },
      [FALLBACK]: {},
      monitoring: {},
    },
    gateway: {
      auth: { enabled: true },
      namespaces: { allow: [A, "ledger*"], deny: [DENIED], fallbackNamespace: FALLBACK },
    },
    // The decoy stays in Analyzing for the whole scenario.
    phaseTimeout: "5m",
    ...stack,
  });
  const { kube } = world.stack;
  const url = world.gatewayUrl();
  const a = signalIn(A);
  const b = signalIn(B);

  const token = await when.does("the sender ServiceAccount monitoring/alertmanager is issued a token", () =>
    kube.serviceAccountToken("monitoring", "alertmanager"),
  );
  const decoy = decoyInB(a.fingerprint);
  await when.does(`an active RemediationRequest in ${B} already carries the fingerprint of the ${A} alert`, () =>
    kube.clients().custom.createNamespacedCustomObject({ ...GROUP, namespace: B, body: decoy }),
  );
  const standing = await then.remediationRequest({ ...a, namespace: B }).reaches("Analyzing");

  const auth = bearer(token);
  const answersA = await when.does(`the ${A} alert is posted 3 times with the sender's token`, async () => [
    await postAlert(url, alertIn(A), auth),
    await postAlert(url, alertIn(A), auth),
    await postAlert(url, alertIn(A), auth),
  ]);
  const answerB = await when.does(`the same alert for ${B} is posted once`, () => postAlert(url, alertIn(B), auth));
  // The API server's signature check fails on it, whatever it claims to be.
  const forged = `${token.slice(0, -8)}AAAAAAAA`;
  const unauthenticated = await when.does("an alert is posted without a token and with a forged one", async () => [
    await postAlert(url, alertIn(A, "api-1")),
    await postAlert(url, alertIn(A, "api-1"), bearer(forged)),
  ]);
  const refused = await when.does(
    `alerts for ${DENIED} (denied) and ${NOT_ALLOWED} (not allowed) are posted with the sender's token`,
    async () => [
      { namespace: DENIED, answer: await postAlert(url, alertIn(DENIED), auth) },
      { namespace: NOT_ALLOWED, answer: await postAlert(url, alertIn(NOT_ALLOWED), auth) },
    ],
  );
  const nodeAlert = { alertname: "NodeDiskPressure", severity: "warning", node: "worker-3" };
  const placed = await when.does(
    `a node-scoped alert (no namespace) and one for the missing namespace ${MISSING} are posted`,
    async () => ({
      node: await postAlert(url, nodeAlert, auth),
      missing: await postAlert(url, alertIn(MISSING, "batch-0"), auth),
    }),
  );

  await then.holds(
    `the ${A} alert has one request in ${A}, counting 3; the ${B} one has its own in ${B}; the decoy in ${B} is untouched`,
    async () => {
      expect(answersA.map(said)).toEqual(["201 created", "202 duplicate", "202 duplicate"]);
      expect(answersA.map((x) => x.body.remediationRequestNamespace)).toEqual([A, A, A]);
      expect(said(answerB)).toBe("201 created");
      const inA = await requestsIn(world, A);
      expect(inA.map((rr) => [rr.metadata.name, rr.spec.signalFingerprint])).toEqual([
        [answersA[0]?.body.remediationRequestName, a.fingerprint],
      ]);
      expect(inA[0]?.spec.targetResource).toEqual({ kind: "Pod", name: "api-0", namespace: A });
      expect(inA[0]?.status?.deduplication?.occurrenceCount).toBe(3);
      const inB = await requestsIn(world, B);
      expect(inB.map((rr) => [rr.metadata.name, rr.spec.signalFingerprint]).sort()).toEqual(
        [
          [answerB.body.remediationRequestName, b.fingerprint],
          [decoy.metadata.name, a.fingerprint],
        ].sort(),
      );
      const now = inB.find((rr) => rr.metadata.name === decoy.metadata.name);
      // Nobody wrote it since it stood in Analyzing: not the gateway's count, not its labels.
      expect(resourceVersion(now)).toBe(resourceVersion(standing));
      expect(now?.status?.deduplication).toBeUndefined();
      expect((await world.dedupHash(a)).remediationRequestRef).toBe(`${A}/${answersA[0]?.body.remediationRequestName}`);
      expect((await world.dedupHash(b)).remediationRequestRef).toBe(`${B}/${answerB.body.remediationRequestName}`);
    },
    10_000,
  );

  await then.holds(
    "without a token and with a forged one: 401 unauthorized (the API server's TokenReview rejects it), nothing recorded",
    async () => {
      expect(unauthenticated.map(said)).toEqual(["401 unauthorized", "401 unauthorized"]);
      const review = async (t: string) =>
        (
          await kube.clients().authentication.createTokenReview({
            body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token: t } },
          })
        ).status?.authenticated === true;
      expect([await review(token), await review(forged)]).toEqual([true, false]);
      const api1 = signalIn(A, "api-1");
      expect(await world.requestsOf(api1)).toEqual([]);
      expect(await world.dedupHash(api1)).toEqual({});
    },
    0,
  );

  await then.holds(
    `${DENIED} (denied) and ${NOT_ALLOWED} (outside the allow list) are refused with 403 forbidden and hold no request`,
    async () => {
      const seen = await Promise.all(
        refused.map(
          async ({ namespace, answer }) =>
            `${namespace}: ${said(answer)}, requests there: ${describeRequests(await requestsIn(world, namespace))}`,
        ),
      );
      const expected = refused.map(({ namespace }) => `${namespace}: 403 forbidden, requests there: none`);
      if (seen.join("; ") !== expected.join("; ")) throw new Error(seen.join("; "));
      for (const { namespace } of refused) expect(await world.dedupHash(signalIn(namespace))).toEqual({});
    },
    0,
  );

  await then.holds(
    `the node-scoped alert and the one for ${MISSING} land in ${FALLBACK}, labelled with their origin`,
    async () => {
      expect([said(placed.node), said(placed.missing)]).toEqual(["201 created", "201 created"]);
      const node = await world.requestsOf({
        fingerprint: fingerprintOf("NodeDiskPressure", "", "Node", "worker-3"),
        signalName: "NodeDiskPressure",
        namespace: FALLBACK,
      });
      expect(node.map((rr) => [rr.metadata.namespace, rr.metadata.labels?.[ORIGIN_LABEL]])).toEqual([
        [FALLBACK, "cluster-scoped"],
      ]);
      expect(node[0]?.spec.targetResource).toEqual({ kind: "Node", name: "worker-3" });
      const missing = await world.requestsOf(signalIn(MISSING, "batch-0"));
      expect(missing.map((rr) => [rr.metadata.namespace, rr.metadata.labels?.[ORIGIN_LABEL]])).toEqual([
        [FALLBACK, MISSING],
      ]);
      const names = (rrs: RemediationRequestObject[]) => rrs.map((rr) => rr.metadata.name).sort();
      expect(names(await requestsIn(world, FALLBACK))).toEqual(names([...node, ...missing]));
    },
    10_000,
  );
}
