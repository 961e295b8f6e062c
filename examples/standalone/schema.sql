-- The example's own table (schema.ts describes it). db.ts runs the layer's idempotency_keys.sql first,
-- then this.
CREATE TABLE IF NOT EXISTS example_messages (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id             text NOT NULL,
  "to"                text NOT NULL,
  body                text NOT NULL,
  status              text NOT NULL,
  provider_message_id text,
  key_id              uuid, -- see schema.ts: no foreign key here
  created_at          timestamp with time zone NOT NULL DEFAULT now()
);
