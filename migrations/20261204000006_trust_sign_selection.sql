-- The signing certificate chosen by hand for a user (lower-case address) or a
-- domain ('@' and the domain): one each, a certificate whose private key is
-- in the store (crates/trust). Without one, the signing certificate is chosen
-- automatically. Portable SQL; times in Unix seconds.
CREATE TABLE trust_sign_selection (
    target   TEXT PRIMARY KEY,
    sha256   TEXT NOT NULL,
    added_at BIGINT NOT NULL
);
