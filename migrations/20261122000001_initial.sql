-- sealgate schema, version 1. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT). Key material is stored as text (armored OpenPGP or PEM).

-- One row per key or certificate, whatever the source.
CREATE TABLE keys (
    fingerprint  TEXT PRIMARY KEY,   -- OpenPGP fingerprint (hex, upper case) or "SHA256:<hex>" of an X.509 DER
    kind         TEXT NOT NULL,      -- 'pgp' | 'smime'
    data         TEXT NOT NULL,      -- armored OpenPGP certificate (public) or PEM certificate
    source       TEXT NOT NULL,      -- 'import', 'upload'; later issues add 'harvest', 'ldap:<name>', ...
    expires_at   BIGINT,             -- NULL: no expiry
    created_at   BIGINT NOT NULL,
    refreshed_at BIGINT NOT NULL
);

-- Which addresses a key is bound to (Bitmask's "active" documents, reduced).
CREATE TABLE key_addresses (
    address     TEXT NOT NULL,       -- lower-cased mail address
    fingerprint TEXT NOT NULL REFERENCES keys (fingerprint) ON DELETE CASCADE,
    validation  TEXT NOT NULL DEFAULT 'provider_trust',
    PRIMARY KEY (address, fingerprint)
);
CREATE INDEX key_addresses_fingerprint ON key_addresses (fingerprint);

-- One row per message handled: decisions and outcome, never content.
CREATE TABLE audit (
    id          TEXT PRIMARY KEY,    -- sealgate queue id
    message_id  TEXT,
    received_at BIGINT NOT NULL,
    client      TEXT NOT NULL,       -- peer address and HELO name
    sender      TEXT NOT NULL,
    recipients  TEXT NOT NULL,       -- JSON array: address, decision, method, fingerprints, outcome
    outcome     TEXT NOT NULL,       -- 'relayed' | 'deferred' | 'rejected'
    reply       TEXT NOT NULL        -- the reply sealgate gave to the end of DATA
);
CREATE INDEX audit_received_at ON audit (received_at);
CREATE INDEX audit_message_id ON audit (message_id);
