/**
 * A Playwright reporter for `npm run demo` (e2e/demo.config.ts): once the lab has played, it writes
 * index.html in the demo's folder (the page is made by dev/demo-index.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Reporter } from '@playwright/test/reporter';
import { demoIndexHtml } from '../dev/demo-index';

export default class DemoIndex implements Reporter {
  onEnd(): void {
    const folder = process.env.DEMO_FOLDER;
    if (!folder) return;
    fs.mkdirSync(folder, { recursive: true });
    const file = path.join(folder, 'index.html');
    fs.writeFileSync(file, demoIndexHtml(folder));
    console.log(`[demo] open ${file}`);
  }
}
