CREATE TABLE "idempotency_keys" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"scope" text NOT NULL,
	"procedure" text NOT NULL,
	"key" text NOT NULL,
	"fingerprint" text NOT NULL,
	"state" text DEFAULT 'started' NOT NULL,
	"recovery_point" text DEFAULT 'started' NOT NULL,
	"locked_until" timestamp with time zone,
	"lease_token" integer DEFAULT 1 NOT NULL,
	"response_status" integer,
	"response_body" json,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "idempotency_keys_scope_length" CHECK (char_length("idempotency_keys"."scope") between 1 and 128),
	CONSTRAINT "idempotency_keys_procedure_length" CHECK (char_length("idempotency_keys"."procedure") between 1 and 128),
	CONSTRAINT "idempotency_keys_key_length" CHECK (char_length("idempotency_keys"."key") between 1 and 255),
	CONSTRAINT "idempotency_keys_fingerprint_sha256" CHECK ("idempotency_keys"."fingerprint" ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "idempotency_keys_recovery_point_length" CHECK (char_length("idempotency_keys"."recovery_point") between 1 and 64),
	CONSTRAINT "idempotency_keys_completed_has_result" CHECK (("idempotency_keys"."state" = 'completed') = ("idempotency_keys"."response_status" is not null and "idempotency_keys"."response_body" is not null))
);
--> statement-breakpoint
ALTER TABLE "orders" ADD COLUMN "idempotency_key_id" uuid;--> statement-breakpoint
ALTER TABLE "products" ADD COLUMN "sold_out" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "idempotency_keys_scope_procedure_key_idx" ON "idempotency_keys" USING btree ("scope","procedure","key");--> statement-breakpoint
CREATE INDEX "idempotency_keys_expires_at_idx" ON "idempotency_keys" USING btree ("expires_at");--> statement-breakpoint
ALTER TABLE "orders" ADD CONSTRAINT "orders_idempotency_key_id_idempotency_keys_id_fk" FOREIGN KEY ("idempotency_key_id") REFERENCES "public"."idempotency_keys"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "orders_idempotency_key_idx" ON "orders" USING btree ("idempotency_key_id");