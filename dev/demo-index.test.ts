/**
 * The demo's index.html (dev/demo-index.ts): every scenario, its two verdicts side by side, its video
 * and trace linked relative to the folder; a scenario whose test stopped early says so.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scenarios } from '../server/lab/scenarios';
import { demoIndexHtml } from './demo-index';

describe('the demo index', () => {
  it('shows each scenario with its verdicts side by side and links its video and trace', () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-'));
    const dir = path.join(folder, 'lab-the-retry-lab-lab-double-click');
    fs.mkdirSync(dir);
    for (const f of ['verdict-double-click-safe.png', 'verdict-double-click-unsafe.png', 'video.webm', 'trace.zip'])
      fs.writeFileSync(path.join(dir, f), '');
    const html = demoIndexHtml(folder);
    expect(html.match(/<section id=/g)).toHaveLength(scenarios.length);
    expect(html).toContain('<img src="lab-the-retry-lab-lab-double-click/verdict-double-click-safe.png"');
    expect(html).toContain('<img src="lab-the-retry-lab-lab-double-click/verdict-double-click-unsafe.png"');
    expect(html).toContain('<a href="lab-the-retry-lab-lab-double-click/video.webm">video</a>');
    expect(html).toContain('<a href="lab-the-retry-lab-lab-double-click/trace.zip">trace</a>');
    // lost-response left nothing: it says so instead of linking nowhere
    const lost = html.slice(html.indexOf('<section id="lost-response">'));
    expect(lost.slice(0, lost.indexOf('</section>'))).toContain('No screenshot');
    fs.rmSync(folder, { recursive: true });
  });
});
