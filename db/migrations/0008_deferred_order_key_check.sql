-- A one-transaction key's row is written once, at the end of the transaction that placed the order, with
-- its answer (server/idempotency/store.ts): the order is inserted first, pointing at the id the row will
-- have. The order's reference to its key is therefore checked at COMMIT (DEFERRABLE INITIALLY DEFERRED),
-- when the row is there; a transaction that commits an order naming a key row that does not exist still
-- fails, as before. Drizzle's schema cannot say "deferrable" (db/schema.ts says so where the column is).
ALTER TABLE "orders" DROP CONSTRAINT "orders_idempotency_key_id_idempotency_keys_id_fk";--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_idempotency_key_id_idempotency_keys_id_fk" FOREIGN KEY ("idempotency_key_id") REFERENCES "public"."idempotency_keys"("id") ON DELETE set null ON UPDATE no action DEFERRABLE INITIALLY DEFERRED;
