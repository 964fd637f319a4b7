-- Private keys of stored certificates (crates/trust): PKCS#8 DER sealed with
-- AES-256-GCM under the key-encryption key, which is not in the store
-- (store.key_encryption_key_file or SEALGATE_KEY_ENCRYPTION_KEY; see
-- crates/trust/src/kek.rs). Never stored in the clear. Portable SQL.
CREATE TABLE trust_private_key (
    sha256   TEXT PRIMARY KEY,   -- the certificate's (trust_cert.sha256)
    sealed   BYTEA NOT NULL,
    added_at BIGINT NOT NULL
);
