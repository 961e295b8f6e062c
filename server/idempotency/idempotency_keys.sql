-- The idempotency layer's one table, for an app that does not run drizzle-kit migrations: run this once
-- (psql -f idempotency_keys.sql). It is the table schema.ts describes; schema.test.ts checks that the two
-- agree, column by column, constraint by constraint. The app's own tables may reference `id` (an order
-- pointing at the key that created it, say), with a foreign key DEFERRABLE INITIALLY DEFERRED: a
-- one-transaction key's row is inserted after the work, as the transaction's last statement, so the
-- reference can only be checked at COMMIT. The layer itself needs no other table.

CREATE TABLE IF NOT EXISTS idempotency_keys (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  scope           text NOT NULL,          -- who owns the key (customer, tenant)
  procedure       text NOT NULL,          -- the tRPC procedure path
  key             text NOT NULL,          -- the client's Idempotency-Key
  fingerprint     text NOT NULL,          -- SHA-256 of the procedure and the canonical input
  state           text DEFAULT 'started' NOT NULL,   -- 'started' | 'completed'
  recovery_point  text DEFAULT 'started' NOT NULL,   -- phased: the last step that committed
  locked_until    timestamp with time zone,          -- phased: the lease
  lease_token     integer DEFAULT 1 NOT NULL,        -- phased: the fencing token
  completer_runs  integer DEFAULT 0 NOT NULL,        -- phased: tries of the completer
  progress        json DEFAULT '{}'::json NOT NULL,  -- phased: each step's saved result
  request_input   json,                              -- phased: the input, for the completer
  response_status integer,                           -- the stored answer's HTTP status
  response_body   json,                              -- the stored answer, as first sent
  created_at      timestamp with time zone DEFAULT now() NOT NULL,
  completed_at    timestamp with time zone,
  expires_at      timestamp with time zone NOT NULL, -- then reaped; the same key is a new request
  CONSTRAINT idempotency_keys_scope_length CHECK (char_length(scope) BETWEEN 1 AND 128),
  CONSTRAINT idempotency_keys_procedure_length CHECK (char_length(procedure) BETWEEN 1 AND 128),
  CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
  CONSTRAINT idempotency_keys_fingerprint_sha256 CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  CONSTRAINT idempotency_keys_recovery_point_length CHECK (char_length(recovery_point) BETWEEN 1 AND 64),
  CONSTRAINT idempotency_keys_completed_has_result
    CHECK ((state = 'completed') = (response_status IS NOT NULL AND response_body IS NOT NULL))
);

-- The claim: one atomic INSERT ... ON CONFLICT DO NOTHING on this index.
CREATE UNIQUE INDEX IF NOT EXISTS idempotency_keys_scope_procedure_key_idx
  ON idempotency_keys USING btree (scope, procedure, key);
-- The reaper: oldest expiries first.
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at_idx ON idempotency_keys USING btree (expires_at);
