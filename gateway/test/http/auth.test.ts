import { afterEach, describe, expect, it } from "vitest";
import { CachedTokenReviewer } from "../../src/auth.js";
import { type TestApp, testApp, warningEvent } from "./helpers.js";

const EVENT = "/api/v1/signals/kubernetes-event";

describe("CachedTokenReviewer", () => {
  it("reuses answers within the TTL, reviews again after it", async () => {
    let now = 0;
    const calls: string[] = [];
    const reviewer = new CachedTokenReviewer(
      async (token) => {
        calls.push(token);
        return token === "good";
      },
      () => 10_000,
      100,
      () => now,
    );
    expect(await reviewer.isValid("good")).toBe(true);
    expect(await reviewer.isValid("bad")).toBe(false);
    expect(await reviewer.isValid("good")).toBe(true);
    expect(calls).toEqual(["good", "bad"]);
    now += 10_001;
    expect(await reviewer.isValid("good")).toBe(true);
    expect(calls).toEqual(["good", "bad", "good"]);
  });

  it("shares one review among concurrent requests and does not cache failures", async () => {
    let calls = 0;
    let fail = true;
    const reviewer = new CachedTokenReviewer(
      async () => {
        calls++;
        await new Promise((r) => setImmediate(r));
        if (fail) throw new Error("connect ECONNREFUSED");
        return true;
      },
      () => 10_000,
    );
    const results = await Promise.allSettled([reviewer.isValid("t"), reviewer.isValid("t"), reviewer.isValid("t")]);
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(calls).toBe(1);
    fail = false;
    expect(await reviewer.isValid("t")).toBe(true);
    expect(calls).toBe(2);
  });

  it("keeps a bounded number of answers", async () => {
    let calls = 0;
    const reviewer = new CachedTokenReviewer(
      async () => {
        calls++;
        return true;
      },
      () => 60_000,
      2,
    );
    for (const token of ["a", "b", "c"]) await reviewer.isValid(token);
    await reviewer.isValid("a"); // evicted: reviewed again
    expect(calls).toBe(4);
  });
});

describe("bearer authentication on the signal routes", () => {
  let t: TestApp;
  afterEach(async () => {
    await t?.app.close();
  });

  let reviewFails = false;
  const reviewer = () =>
    new CachedTokenReviewer(
      async (token) => {
        if (reviewFails) throw new Error("TokenReview: 500 Internal Server Error");
        return token === "valid-token";
      },
      () => 0,
    );

  const send = (authorization?: string) =>
    t.app.inject({
      method: "POST",
      url: EVENT,
      payload: warningEvent(),
      headers: authorization ? { authorization } : {},
    });

  it("401 without a token or with a rejected one (WWW-Authenticate), 201 with a valid one", async () => {
    t = await testApp({}, { auth: reviewer() });
    for (const [header, detail] of [
      [undefined, "missing bearer token: send 'Authorization: Bearer <token>'"],
      ["Basic dXNlcjpwYXNz", "the Authorization header must use the Bearer scheme"],
      ["Bearer wrong", "the bearer token was not accepted by the Kubernetes TokenReview"],
    ] as const) {
      const res = await send(header);
      expect(res.statusCode).toBe(401);
      expect(res.headers["www-authenticate"]).toBe('Bearer realm="gateway"');
      expect(res.json()).toMatchObject({
        type: "https://kubernaut.ai/problems/unauthorized",
        title: "Unauthorized",
        detail,
      });
      expect(res.body).not.toContain("wrong");
    }
    expect(t.pipeline.seen).toHaveLength(0);
    expect((await send("Bearer valid-token")).statusCode).toBe(201);
  });

  it("503 with Retry-After when the review itself fails", async () => {
    t = await testApp({}, { auth: reviewer() });
    reviewFails = true;
    const res = await send("Bearer valid-token");
    reviewFails = false;
    expect(res.statusCode).toBe(503);
    expect(res.headers["retry-after"]).toBe("5");
    expect(res.json().detail).toBe("authentication is unavailable (the token review failed); retry later");
    expect(res.body).not.toContain("Internal Server Error");
  });

  it("leaves the probes open", async () => {
    t = await testApp({}, { auth: reviewer() });
    expect((await t.app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
    expect((await t.app.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(200);
  });
});
