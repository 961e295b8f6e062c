CREATE TABLE "webhook_events" (
	"id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"object_id" text NOT NULL,
	"outcome" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_events_id_length" CHECK (char_length("webhook_events"."id") between 1 and 255)
);
--> statement-breakpoint
-- Orders now also wait in payment_processing (the provider has not received the money yet). Still
-- forward only, whoever writes: a late "processing" never undoes "paid". (Written by hand: drizzle-kit
-- does not model triggers.)
CREATE OR REPLACE FUNCTION "orders_status_transition"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
    (OLD.status = 'pending_payment' AND NEW.status IN ('payment_processing', 'paid', 'payment_failed', 'cancelled')) OR
    (OLD.status = 'payment_processing' AND NEW.status IN ('paid', 'payment_failed'))
  ) THEN
    RAISE EXCEPTION 'order % cannot move from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
-- A refund moves forward only too: pending -> succeeded | failed, and succeeded -> failed (a refund the
-- provider could not deliver after all).
CREATE OR REPLACE FUNCTION "refunds_status_transition"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
    (OLD.status = 'pending' AND NEW.status IN ('succeeded', 'failed')) OR
    (OLD.status = 'succeeded' AND NEW.status = 'failed')
  ) THEN
    RAISE EXCEPTION 'refund % cannot move from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "refunds_status_transition" BEFORE UPDATE OF "status" ON "refunds"
  FOR EACH ROW EXECUTE FUNCTION "refunds_status_transition"();
