/**
 * `npm run demo`: the lab spec played in Chromium with a recording, for people to watch. Every test
 * leaves a trace and one screenshot per verdict, and a video when an ffmpeg is at hand, in the
 * folder printed below, and index.html there shows them scenario by scenario (e2e/demo-index.ts).
 *
 * Playwright encodes videos with an ffmpeg build of its own, which `npx playwright install ffmpeg`
 * downloads. Where that is not possible (this project installs nothing but Debian packages), Debian's
 * `ffmpeg` stands in: Playwright is pointed at a folder of this clone's state where its ffmpeg's
 * place holds a link to /usr/bin/ffmpeg. Without either, the demo records traces and screenshots
 * only, and says how to get videos; `DEMO_VIDEO=off` asks for that.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { defineConfig } from '@playwright/test';
import { statePath } from '../dev/state';
import base from './playwright.config';

// One folder for the whole run: each worker process loads this file again, and inherits the
// environment of the runner, which loaded it first.
process.env.DEMO_FOLDER ??= path.resolve(
  import.meta.dirname,
  '..',
  'demo',
  new Date().toISOString().replace(/[:.]/g, '-'),
);
const folder = process.env.DEMO_FOLDER;

/**
 * How videos will be encoded: by Playwright's own ffmpeg, by Debian's standing in for it, or not
 * at all. Only a Linux machine that runs Debian's Chromium (see playwright.config.ts) and has no
 * Playwright ffmpeg gets the stand-in, because pointing Playwright at another folder of downloads
 * would hide its own browsers too. Elsewhere Playwright finds (or asks for) its own ffmpeg.
 */
function videoEncoder(): 'playwright' | 'debian' | undefined {
  if (process.env.DEMO_VIDEO === 'off') return undefined;
  // decided by the runner
  if (process.env.DEMO_VIDEO === 'playwright' || process.env.DEMO_VIDEO === 'debian') return process.env.DEMO_VIDEO;
  let found: 'playwright' | 'debian' | undefined = 'playwright';
  if (process.platform === 'linux' && !process.env.PLAYWRIGHT_BROWSERS_PATH) {
    const require = createRequire(import.meta.url);
    const browsers = JSON.parse(
      fs.readFileSync(path.join(path.dirname(require.resolve('playwright-core')), 'browsers.json'), 'utf8'),
    ) as { browsers: { name: string; revision: string }[] };
    const folder = `ffmpeg-${browsers.browsers.find((b) => b.name === 'ffmpeg')?.revision}`;
    const registry = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'ms-playwright');
    if (!fs.existsSync(path.join(registry, folder, 'ffmpeg-linux'))) {
      found = undefined;
      if (fs.existsSync('/usr/bin/ffmpeg') && fs.existsSync('/usr/bin/chromium')) {
        const stand = statePath('playwright');
        fs.mkdirSync(path.join(stand, folder), { recursive: true });
        const link = path.join(stand, folder, 'ffmpeg-linux');
        if (!fs.existsSync(link)) fs.symlinkSync('/usr/bin/ffmpeg', link);
        process.env.PLAYWRIGHT_BROWSERS_PATH = stand; // read by the workers, which launch the browser
        found = 'debian';
      }
    }
  }
  process.env.DEMO_VIDEO = found ?? 'off';
  return found;
}

const asked = process.env.DEMO_ANNOUNCED ? undefined : process.env.DEMO_VIDEO; // DEMO_VIDEO=off: no videos, by choice
const encoder = videoEncoder();
if (!process.env.DEMO_ANNOUNCED) {
  process.env.DEMO_ANNOUNCED = '1';
  console.log(`[demo] recording the lab to ${folder}`);
  if (encoder === 'debian') console.log("[demo] videos encoded by Debian's ffmpeg (/usr/bin/ffmpeg)");
  if (!encoder)
    console.log(
      asked === 'off'
        ? '[demo] videos off (DEMO_VIDEO=off): traces and screenshots only'
        : '[demo] no ffmpeg for Playwright: traces and screenshots only. For videos: npx playwright install ffmpeg, ' +
            'or on Debian apt-get install ffmpeg chromium',
    );
}

export default defineConfig({
  ...base,
  testMatch: 'lab.spec.ts',
  outputDir: folder,
  workers: 1,
  reporter: [['list'], ['./demo-index.ts']], // index.html: the page to open first
  use: { ...base.use, video: encoder ? 'on' : 'off', trace: 'on', viewport: { width: 1280, height: 900 } },
});
