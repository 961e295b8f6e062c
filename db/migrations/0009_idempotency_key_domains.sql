-- The five rules on one column each of idempotency_keys move from CHECKs on the table to domains, under
-- the same constraint names: the same rows are refused, with the same SQLSTATE (23514). The reason is
-- cost: Postgres prepares a table's CHECKs again for every INSERT or UPDATE statement, and a domain's
-- once per connection; the key row's INSERT, the last statement of every first execution, measured
-- about 95 µs with the CHECKs and about 55 µs with the domains (docs/reference/costs.md). The ALTERs
-- check every existing row against its domain while holding the table's lock. drizzle-kit cannot
-- write CREATE DOMAIN (and spells the new types "undefined"."..."), so this file is written by hand;
-- its snapshot is drizzle-kit's.
CREATE DOMAIN "idempotency_keys_scope" AS text
  CONSTRAINT "idempotency_keys_scope_length" CHECK (char_length(VALUE) BETWEEN 1 AND 128);--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_procedure" AS text
  CONSTRAINT "idempotency_keys_procedure_length" CHECK (char_length(VALUE) BETWEEN 1 AND 128);--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_key" AS text
  CONSTRAINT "idempotency_keys_key_length" CHECK (char_length(VALUE) BETWEEN 1 AND 255);--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_fingerprint" AS text
  CONSTRAINT "idempotency_keys_fingerprint_sha256" CHECK (VALUE ~ '^[0-9a-f]{64}$');--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_recovery_point" AS text
  CONSTRAINT "idempotency_keys_recovery_point_length" CHECK (char_length(VALUE) BETWEEN 1 AND 64);--> statement-breakpoint
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_scope_length";--> statement-breakpoint
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_procedure_length";--> statement-breakpoint
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_key_length";--> statement-breakpoint
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_fingerprint_sha256";--> statement-breakpoint
ALTER TABLE "idempotency_keys" DROP CONSTRAINT "idempotency_keys_recovery_point_length";--> statement-breakpoint
ALTER TABLE "idempotency_keys"
  ALTER COLUMN "scope" SET DATA TYPE "idempotency_keys_scope",
  ALTER COLUMN "procedure" SET DATA TYPE "idempotency_keys_procedure",
  ALTER COLUMN "key" SET DATA TYPE "idempotency_keys_key",
  ALTER COLUMN "fingerprint" SET DATA TYPE "idempotency_keys_fingerprint",
  ALTER COLUMN "recovery_point" SET DATA TYPE "idempotency_keys_recovery_point";--> statement-breakpoint
ALTER TABLE "idempotency_keys" ALTER COLUMN "recovery_point" SET DEFAULT 'started';
