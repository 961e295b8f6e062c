-- The idempotency layer's one table, for an app that does not run drizzle-kit migrations: run this once
-- (psql -f idempotency_keys.sql). It is the table schema.ts describes; schema.test.ts checks that the two
-- agree, column by column, constraint by constraint. The app's own tables may reference `id` (an order
-- pointing at the key that created it, say), with a foreign key DEFERRABLE INITIALLY DEFERRED: a
-- one-transaction key's row is inserted after the work, as the transaction's last statement, so the
-- reference can only be checked at COMMIT. The layer itself needs no other table.
--
-- Five columns carry their rule in a domain rather than in a CHECK on the table: the same rule and the
-- same error (SQLSTATE 23514, naming the constraint), but Postgres parses and plans a table's CHECKs again
-- for every INSERT or UPDATE statement and a domain's once per connection, which nearly halves the cost of
-- the key row's INSERT (docs/reference/costs.md). CREATE DOMAIN has no IF NOT EXISTS: each is made in a
-- block that keeps one that already exists, as it is (if you changed one, ALTER DOMAIN it yourself). The
-- block after them refuses to go on if a name is taken by something that is not a domain over text.
-- Upgrading a table made by an earlier version of this file (CHECKs on the table, text columns): run the
-- ALTERs of db/migrations/0009_idempotency_key_domains.sql in this app, which do not rewrite the table.

DO $$ BEGIN
  CREATE DOMAIN idempotency_keys_scope AS text
    CONSTRAINT idempotency_keys_scope_length CHECK (char_length(VALUE) BETWEEN 1 AND 128);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE DOMAIN idempotency_keys_procedure AS text
    CONSTRAINT idempotency_keys_procedure_length CHECK (char_length(VALUE) BETWEEN 1 AND 128);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE DOMAIN idempotency_keys_key AS text
    CONSTRAINT idempotency_keys_key_length CHECK (char_length(VALUE) BETWEEN 1 AND 255);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE DOMAIN idempotency_keys_fingerprint AS text
    CONSTRAINT idempotency_keys_fingerprint_sha256 CHECK (VALUE ~ '^[0-9a-f]{64}$');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE DOMAIN idempotency_keys_recovery_point AS text
    CONSTRAINT idempotency_keys_recovery_point_length CHECK (char_length(VALUE) BETWEEN 1 AND 64);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ DECLARE taken text; BEGIN
  SELECT string_agg(want.name, ', ') INTO taken
  FROM unnest(ARRAY['idempotency_keys_scope', 'idempotency_keys_procedure', 'idempotency_keys_key',
                    'idempotency_keys_fingerprint', 'idempotency_keys_recovery_point']) AS want(name)
  WHERE NOT EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = to_regtype(want.name)
                    AND t.typtype = 'd' AND t.typbasetype = 'text'::regtype);
  IF taken IS NOT NULL THEN
    RAISE EXCEPTION 'idempotency_keys.sql: % must be domains over text, and are not', taken;
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS idempotency_keys (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
  scope           idempotency_keys_scope NOT NULL,        -- who owns the key (customer, tenant)
  procedure       idempotency_keys_procedure NOT NULL,    -- the tRPC procedure path
  key             idempotency_keys_key NOT NULL,          -- the client's Idempotency-Key
  fingerprint     idempotency_keys_fingerprint NOT NULL,  -- SHA-256 of the procedure and the canonical input
  state           text DEFAULT 'started' NOT NULL,        -- 'started' | 'completed'
  recovery_point  idempotency_keys_recovery_point DEFAULT 'started' NOT NULL, -- phased: the last step committed
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
  CONSTRAINT idempotency_keys_completed_has_result
    CHECK ((state = 'completed') = (response_status IS NOT NULL AND response_body IS NOT NULL))
);

-- The claim: one atomic INSERT ... ON CONFLICT DO NOTHING on this index.
CREATE UNIQUE INDEX IF NOT EXISTS idempotency_keys_scope_procedure_key_idx
  ON idempotency_keys USING btree (scope, procedure, key);
-- The reaper: oldest expiries first.
CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at_idx ON idempotency_keys USING btree (expires_at);
