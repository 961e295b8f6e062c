// drizzle-kit reads this to generate SQL migrations from db/schema.ts (`npm run db:generate`).
// Migrations are applied by db/migrate.ts, not by drizzle-kit, so no database URL is needed here.
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './db/schema.ts',
  out: './db/migrations',
  strict: true,
});
