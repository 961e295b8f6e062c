/**
 * The walkthrough (docs/*.md), served as plain text so that the lab's cards can link to their
 * chapter in the running app. Only files of docs/ itself, by a plain name: nothing else is reachable.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

const NAME = /^[\w-]+\.md$/;

export async function GET(_req: Request, { params }: { params: Promise<{ file: string }> }) {
  const { file } = await params;
  if (!NAME.test(file)) return new Response('Not a walkthrough file name.\n', { status: 404 });
  try {
    const text = await fs.readFile(path.join(process.cwd(), 'docs', file), 'utf8');
    return new Response(text, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  } catch {
    return new Response(`No chapter ${file} yet.\n`, { status: 404 });
  }
}
