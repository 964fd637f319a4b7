-- The built-in certificate authority (crates/ca). Portable SQL: the same file
-- runs on SQLite and PostgreSQL. Times are Unix seconds. Thumbprints are
-- upper-case hex SHA-256 of the certificate's DER; serials upper-case hex.
--
-- A CA is a root (in trust_root) and an intermediate (in trust_cert), whose
-- private keys are in trust_private_key, sealed under the key-encryption key
-- like every private key sealgate holds. Certificates it issues go into
-- trust_cert too (with their keys when sealgate made them).

CREATE TABLE ca_authority (
    sha256      TEXT PRIMARY KEY,   -- the intermediate's thumbprint
    name        TEXT NOT NULL,      -- the intermediate's common name
    root_sha256 TEXT NOT NULL,      -- the root's thumbprint
    is_default  BIGINT NOT NULL,    -- 0/1; at most one row has 1
    created_at  BIGINT NOT NULL
);

-- Every certificate a CA issued.
CREATE TABLE ca_issued (
    sha256    TEXT PRIMARY KEY,
    ca_sha256 TEXT NOT NULL,
    serial    TEXT NOT NULL,
    email     TEXT NOT NULL,       -- lower case
    issued_at BIGINT NOT NULL
);
CREATE INDEX ca_issued_email ON ca_issued (email);

-- The serials each CA's CRLs list ("update existing CRL" keeps them).
CREATE TABLE ca_revoked (
    ca_sha256  TEXT NOT NULL,
    serial     TEXT NOT NULL,
    revoked_at BIGINT NOT NULL,
    PRIMARY KEY (ca_sha256, serial)
);

-- Each CA's newest CRL, as published at /crl/<sha256>.crl.
CREATE TABLE ca_crl (
    ca_sha256   TEXT PRIMARY KEY,
    number      BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    der         BYTEA NOT NULL
);

-- The CA configuration (sealgate ca config), one row per setting, JSON values.
CREATE TABLE ca_setting (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Requests waiting for an asynchronous handler (the CSR handler): the key
-- sealgate made, sealed under the key-encryption key, and the request.
CREATE TABLE ca_pending (
    id           TEXT PRIMARY KEY,
    handler      TEXT NOT NULL,
    email        TEXT NOT NULL,
    request      TEXT NOT NULL,     -- JSON: subject and options
    csr          BYTEA NOT NULL,    -- PEM
    sealed_key   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    last_error   TEXT
);

-- PKCS#12 passwords kept for users ("store password"), sealed under the
-- key-encryption key, by certificate thumbprint.
CREATE TABLE ca_password (
    sha256     TEXT PRIMARY KEY,
    sealed     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
