//! Random MIME boundaries for the PGP/MIME wrapper.
//!
//! A boundary must not occur in the parts it separates. Ours contains `=_`,
//! which cannot occur in ASCII armor (base64 plus armor lines) nor in the
//! fixed version part, and 128 random bits from OpenSSL, so that nobody can
//! predict it.

use crate::CryptoError;

/// A new boundary such as `=_sealgate_5f0c...` (43 characters, all valid
/// RFC 2046 `bchars`, no space).
pub(crate) fn new_boundary() -> Result<String, CryptoError> {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("=_sealgate_{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_random_and_well_formed() {
        let a = new_boundary().unwrap();
        let b = new_boundary().unwrap();
        assert_ne!(a, b);
        assert!(a.len() <= 70);
        assert!(a.starts_with("=_sealgate_"));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'=' || c == b'_'));
    }
}
