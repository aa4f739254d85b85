export const FAULT_MODES = ["none", "fail", "stall"] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface FaultState {
  mode: FaultMode;
  /** Status answered in "fail" mode (5xx). */
  status: number;
}

export interface FaultStatus extends FaultState {
  /** Writes being held right now by "stall" (lets a test see its request arrived). */
  stalled: number;
}

/**
 * The fault chaos tests inject into audit writes: "fail" answers a 5xx,
 * "stall" holds the request unanswered until the mode changes or a bound passes.
 */
export class FaultSwitch {
  private state: FaultState = { mode: "none", status: 503 };
  private waiters = new Set<() => void>();

  get current(): FaultStatus {
    return { ...this.state, stalled: this.waiters.size };
  }

  set(state: FaultState): void {
    this.state = { ...state };
    for (const wake of [...this.waiters]) wake();
  }

  /** Waits while the mode is "stall", at most `maxMs`; returns false when the bound ran out first. */
  async waitOutStall(maxMs: number): Promise<boolean> {
    const deadline = Date.now() + maxMs;
    while (this.state.mode === "stall") {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
    return true;
  }
}
