/**
 * `npm run demo`: the lab spec played in Chromium with a recording, for people to watch. Every test
 * leaves a video and a trace, and one screenshot per verdict, in the folder printed below.
 */
import path from 'node:path';
import { defineConfig } from '@playwright/test';
import base from './playwright.config';

const folder = path.resolve(import.meta.dirname, '..', 'demo', new Date().toISOString().replace(/[:.]/g, '-'));
console.log(`[demo] recording the lab to ${folder}`);

export default defineConfig({
  ...base,
  testMatch: 'lab.spec.ts',
  outputDir: folder,
  workers: 1,
  reporter: [['list']],
  use: { ...base.use, video: 'on', trace: 'on', viewport: { width: 1280, height: 900 } },
});
