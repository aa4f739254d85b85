// Corrupted webhook bodies for the payload-corruption experiment, from real traffic-model payloads:
// cut short, bytes garbled (invalid JSON and invalid UTF-8), or valid JSON of the wrong shape.

import { mixSeed, Stream } from "../../load/lib/random.ts";
import { DEFAULT_TRAFFIC, signalRequest } from "../../load/lib/traffic.ts";

export type Corruption = "truncate" | "garble" | "shape";

/** 50 bodies of one corruption, deterministic for a seed; every one must be answered 400. */
export function corruptedBodies(corruption: Corruption, seed = 1): Array<string | Uint8Array> {
  const bodies: Array<string | Uint8Array> = [];
  for (let i = 0; i < 50; i++) {
    const valid = signalRequest({ ...DEFAULT_TRAFFIC, seed, stormEvery: 0, kubernetesEventShare: 0 }, i).body;
    const stream = new Stream(mixSeed(seed, 0xc0, i));
    if (corruption === "truncate") {
      bodies.push(valid.slice(0, 1 + stream.int(valid.length - 2)));
    } else if (corruption === "garble") {
      const bytes = Buffer.from(valid);
      // A handful of bytes replaced by ones that break JSON or UTF-8 (0xff never occurs in UTF-8).
      bytes[stream.int(bytes.length)] = 0xff;
      for (let k = 0; k < 7; k++) bytes[stream.int(bytes.length)] = [0x7b, 0x22, 0x00, 0x5d][stream.int(4)] as number;
      bodies.push(new Uint8Array(bytes));
    } else {
      bodies.push(JSON.stringify({ alerts: [{ labels: "not-an-object", status: 7 }] }));
    }
  }
  return bodies;
}
