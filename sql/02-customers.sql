-- The demo and test table. Encrypted columns are bytea: they hold MRKProxy ciphertext, never
-- plaintext. A `search: equality` column has a companion blind-index column (<column>_bidx).
CREATE TABLE IF NOT EXISTS customers (
    id         bigint      PRIMARY KEY,
    name       text        NOT NULL,
    email      text,
    ssn        bytea,      -- compact envelope (text), bound to the row's id
    ssn_bidx   bytea,      -- HMAC-SHA256 blind index of ssn, for WHERE ssn = …
    dob        bytea,      -- compact envelope (date)
    notes      bytea,      -- AWS Encryption SDK message (text)
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS customers_ssn_bidx ON customers (ssn_bidx);
