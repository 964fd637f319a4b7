-- Harvesting (crates/harvest): what sealgate learned from incoming mail.
-- Portable SQL (SQLite and PostgreSQL); times in Unix seconds, booleans
-- BIGINT 0/1, addresses lower case.
--
-- A binding ties an address to a key (Bitmask's model): an OpenPGP
-- fingerprint or, for kind 'x509', the SHA-256 thumbprint of a certificate
-- of the certificate store (trust_cert). The level says how much the way the
-- key arrived is worth (weak_chain for harvested keys); encr_used is set when
-- sealgate encrypts to the key, sign_used when it verified a signature made
-- with it on incoming mail.
CREATE TABLE key_binding (
    address         TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    kind            TEXT NOT NULL,      -- 'pgp' | 'x509'
    level           TEXT NOT NULL,
    source          TEXT NOT NULL,      -- 'harvest:smime', ...
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    last_audited_at BIGINT,
    encr_used       BIGINT NOT NULL DEFAULT 0,
    sign_used       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (address, fingerprint)
);
CREATE INDEX key_binding_fingerprint ON key_binding (fingerprint);

-- The SMIMECapabilities an address's signed mail announced last (DER of the
-- attribute's SEQUENCE), and whether they list AES-256-GCM.
CREATE TABLE smime_capability (
    address     TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    capabilities BYTEA,
    aes256_gcm  BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL
);

-- Every harvest decision: kept or refused, and why (`sealgate harvest log`).
-- Pruned to the newest rows by the harvester.
CREATE TABLE harvest_log (
    id          BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    queue_id    TEXT NOT NULL,
    message_id  TEXT,
    address     TEXT,
    kind        TEXT NOT NULL,      -- 'smime' | 'pgp' | 'autocrypt' | 'openpgp-header'
    outcome     TEXT NOT NULL,      -- 'kept' | 'refused' | 'error'
    fingerprint TEXT,
    reason      TEXT NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX harvest_log_address ON harvest_log (address, at);
CREATE INDEX harvest_log_at ON harvest_log (at);
