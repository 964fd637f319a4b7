-- X.509 trust (crates/trust). Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT). Booleans are BIGINT 0/1. Thumbprints are
-- upper-case hex of the SHA-256 / SHA-512 of the certificate's DER.
--
-- The certificate store holds every end-user and intermediate certificate
-- sealgate knows; the root store the trust anchors the admin chose (empty by
-- default). A certificate's status (valid, or why not) is not stored: it is
-- computed from these tables and the time whenever it is needed.

CREATE TABLE trust_cert (
    sha256        TEXT PRIMARY KEY,
    sha512        TEXT NOT NULL,
    subject       TEXT NOT NULL,      -- one line, "CN=..., O=..."
    issuer        TEXT NOT NULL,
    serial        TEXT NOT NULL,      -- upper-case hex
    not_before    BIGINT NOT NULL,
    not_after     BIGINT NOT NULL,
    key_usage     TEXT,               -- comma-separated names; NULL: no KeyUsage extension
    ext_key_usage TEXT,               -- comma-separated names; NULL: no ExtendedKeyUsage extension
    is_ca         BIGINT NOT NULL,    -- basicConstraints CA:TRUE (an intermediate)
    source        TEXT NOT NULL,      -- 'import', 'file:<path>', 'ldap:<name>', ...
    has_key       BIGINT NOT NULL,    -- sealgate holds its private key
    der           BYTEA NOT NULL,
    added_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX trust_cert_sha512 ON trust_cert (sha512);

-- Every address a certificate names (SAN rfc822Name, subject emailAddress), lower case.
CREATE TABLE trust_cert_email (
    sha256 TEXT NOT NULL,
    email  TEXT NOT NULL,
    PRIMARY KEY (sha256, email)
);
CREATE INDEX trust_cert_email_email ON trust_cert_email (email);

CREATE TABLE trust_root (
    sha256     TEXT PRIMARY KEY,
    sha512     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after  BIGINT NOT NULL,
    source     TEXT NOT NULL,
    der        BYTEA NOT NULL,
    added_at   BIGINT NOT NULL
);
