import { connect } from "node:net";

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function tcpReady(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host });
    sock.setTimeout(1000);
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
    sock.once("timeout", () => {
      sock.destroy();
      resolve(false);
    });
  });
}

/** True when GET url answers with the expected status (default: any 2xx). */
export async function httpReady(url: string, expect?: number, init?: RequestInit): Promise<boolean> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return expect === undefined ? res.ok : res.status === expect;
  } catch {
    return false;
  }
}
