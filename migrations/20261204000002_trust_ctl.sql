-- The certificate trust list (crates/trust): certificates explicitly
-- trusted (white-listed) or distrusted (black-listed), by the SHA-512
-- thumbprint of their DER (upper-case hex), so that a certificate not in
-- the certificate store can be listed too. Portable SQL; times in Unix seconds.
CREATE TABLE trust_ctl (
    sha512        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,      -- 'white' | 'black'
    allow_expired BIGINT NOT NULL,    -- white only: valid past its validity
    added_at      BIGINT NOT NULL
);
