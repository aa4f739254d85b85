// The review report opened in a real Chromium (playwright-core, the system's /usr/bin/chromium):
// the state each panel ended in, what the page logged as errors, and a full-page screenshot.
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface PanelView {
  dashboard: string;
  title: string;
  /** drawn, empty (no data), error, blank (drawn nothing), pending (the script never reached it). */
  state: string;
  series: number;
}

export interface BrowserView {
  panels: PanelView[];
  consoleErrors: string[];
}

/** Opens `htmlFile`, waits until its script has drawn every panel, and saves a screenshot. */
export async function viewInBrowser(htmlFile: string, screenshotFile: string): Promise<BrowserView> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM} (./taskw setup installs the chromium package)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 60_000 });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const consoleErrors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (err) => consoleErrors.push(err.message));
    await page.goto(pathToFileURL(htmlFile).href, { timeout: 60_000 });
    // The page script marks the body when it has been through every panel, also after an error.
    await page
      .waitForSelector("body[data-ready='true']", { timeout: 60_000 })
      .catch(() => consoleErrors.push("the page script never finished (body[data-ready] not set within 60 s)"));
    const panels = await page.$$eval("[data-panel]", (els) =>
      els.map((el) => {
        const e = el as HTMLElement;
        return {
          dashboard: e.dataset.dashboard ?? "",
          title: e.dataset.title ?? "",
          state: e.dataset.state ?? "",
          series: Number(e.dataset.series ?? 0),
        };
      }),
    );
    await page.screenshot({ path: screenshotFile, fullPage: true, timeout: 60_000 });
    return { panels, consoleErrors };
  } finally {
    await browser.close();
  }
}
