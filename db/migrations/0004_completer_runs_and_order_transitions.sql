ALTER TABLE "idempotency_keys" ADD COLUMN "completer_runs" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- An order's status moves only along the purchase flow's transitions, whoever writes it: a cancelled
-- checkout can never become paid, a paid order never goes back to pending. Setting the same status
-- again is no move and always allowed. (Written by hand: drizzle-kit does not model triggers.)
CREATE OR REPLACE FUNCTION "orders_status_transition"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
    (OLD.status = 'pending_payment' AND NEW.status IN ('paid', 'payment_failed', 'cancelled'))
  ) THEN
    RAISE EXCEPTION 'order % cannot move from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "orders_status_transition" BEFORE UPDATE OF "status" ON "orders"
  FOR EACH ROW EXECUTE FUNCTION "orders_status_transition"();
