-- The five rules on one column each of idempotency_keys move from CHECKs on the table to domains, under
-- the same constraint names: the same rows are refused, with the same SQLSTATE (23514). The reason is
-- cost: Postgres parses and plans a table's CHECKs again for every INSERT or UPDATE statement, a domain's
-- once per connection; the key row's INSERT, the last statement of every first execution, measured
-- about 90 µs with the CHECKs and about 50 µs with the domains (docs/reference/costs.md).
-- In this order, so that the table is not rewritten: each domain is made without its rule, the columns
-- change to it (text to a domain over text with no rule: no rewrite, the indexes kept), and then the rule
-- is added to the domain, which reads every row once to check it. The migration runs in one transaction,
-- so no row goes unchecked in between. drizzle-kit cannot write CREATE DOMAIN (and spells the new types
-- "undefined"."..."), so this file is written by hand; its snapshot is drizzle-kit's.
CREATE DOMAIN "idempotency_keys_scope" AS text;--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_procedure" AS text;--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_key" AS text;--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_fingerprint" AS text;--> statement-breakpoint
CREATE DOMAIN "idempotency_keys_recovery_point" AS text;--> statement-breakpoint
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
-- drizzle-kit's own line for the default (the type change keeps it either way; harmless).
ALTER TABLE "idempotency_keys" ALTER COLUMN "recovery_point" SET DEFAULT 'started';--> statement-breakpoint
ALTER DOMAIN "idempotency_keys_scope"
  ADD CONSTRAINT "idempotency_keys_scope_length" CHECK (char_length(VALUE) BETWEEN 1 AND 128);--> statement-breakpoint
ALTER DOMAIN "idempotency_keys_procedure"
  ADD CONSTRAINT "idempotency_keys_procedure_length" CHECK (char_length(VALUE) BETWEEN 1 AND 128);--> statement-breakpoint
ALTER DOMAIN "idempotency_keys_key"
  ADD CONSTRAINT "idempotency_keys_key_length" CHECK (char_length(VALUE) BETWEEN 1 AND 255);--> statement-breakpoint
ALTER DOMAIN "idempotency_keys_fingerprint"
  ADD CONSTRAINT "idempotency_keys_fingerprint_sha256" CHECK (VALUE ~ '^[0-9a-f]{64}$');--> statement-breakpoint
ALTER DOMAIN "idempotency_keys_recovery_point"
  ADD CONSTRAINT "idempotency_keys_recovery_point_length" CHECK (char_length(VALUE) BETWEEN 1 AND 64);
