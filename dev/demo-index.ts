/**
 * The demo's front page, index.html in the demo's folder (written by e2e/demo-index.ts once `npm run
 * demo` has played the lab). For each scenario, in the lab's order: its safe and unsafe verdict
 * screenshots side by side, and links to its video and trace (open a trace at trace.playwright.dev, or
 * with `npx playwright show-trace`). Links are relative, so the folder can be moved or zipped whole.
 */
import fs from 'node:fs';
import path from 'node:path';
import { scenarios } from '../server/lab/scenarios';

/** Every file under `dir`, as paths relative to it. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => fs.statSync(path.join(dir, f)).isFile());
}

const html = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const href = (rel: string) => rel.split(path.sep).map(encodeURIComponent).join('/');

/** The page for a demo folder (exported for its test). */
export function demoIndexHtml(folder: string): string {
  const files = filesUnder(folder);
  const sections = scenarios.map((s, i) => {
    const shot = (variant: string) => files.find((f) => path.basename(f) === `verdict-${s.id}-${variant}.png`);
    // The test's own folder: where its verdict screenshots, video and trace are.
    const dir = path.dirname(shot('safe') ?? shot('unsafe') ?? '');
    const mine = (name: RegExp) =>
      dir === '.' ? undefined : files.find((f) => path.dirname(f) === dir && name.test(path.basename(f)));
    const figure = (variant: 'safe' | 'unsafe', caption: string) => {
      const f = shot(variant);
      const body = f
        ? `<img src="${href(f)}" alt="${html(`${s.title}: ${caption}`)}" loading="lazy">`
        : '<p>No screenshot (the test stopped before this run).</p>';
      return `<figure>${body}<figcaption>${caption}</figcaption></figure>`;
    };
    const video = mine(/\.webm$/);
    const trace = mine(/^trace\.zip$/);
    const links = [
      video ? `<a href="${href(video)}">video</a>` : "no video (see the demo's first lines: ffmpeg)",
      trace ? `<a href="${href(trace)}">trace</a>` : 'no trace',
    ].join(' · ');
    return `<section id="${s.id}">
  <h2>${i + 1}. ${html(s.title)} <small>(${html(s.id)})</small></h2>
  <p>${html(s.story)}</p>
  <p><strong>The twin removes:</strong> ${html(s.removes)}. ${links}</p>
  <div class="pair">${figure('safe', 'with every safeguard')}${figure('unsafe', 'the unsafe twin')}</div>
</section>`;
  });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>The retry lab, recorded</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 90rem; margin: 0 auto; padding: 1rem; color: #1d1d1f; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
figure { margin: 0; border: 1px solid #ddd; padding: 0.5rem; }
img { width: 100%; height: auto; }
@media (max-width: 800px) { .pair { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<h1>The retry lab, recorded</h1>
<p>Each scenario played by <code>npm run demo</code>: the verdict with every safeguard on the left, its unsafe
twin's on the right (the twin takes away exactly one safeguard), then the video and the trace of the test.</p>
${sections.join('\n')}
</body>
</html>
`;
}
