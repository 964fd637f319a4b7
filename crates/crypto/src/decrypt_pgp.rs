//! Decrypting PGP/MIME mail for an internal recipient whose OpenPGP secret
//! key sealgate holds (`incoming.decrypt`, on the incoming path only), and
//! verifying the signature that came with it.
//!
//! The payload (RFC 3156 §4) is decrypted with the held key's encryption
//! subkeys, valid or not now (an old message may be encrypted to a subkey
//! that has since expired). Its content is the MIME entity the sender
//! encrypted. The signature is either inside the OpenPGP message (signed
//! and encrypted at once, RFC 3156 §6.2) or a `multipart/signed` entity
//! inside (§6.1); both are checked against the certificates the caller
//! gives (the keys sealgate knows for the From address). The result is one
//! of [`PgpSignature`]; a bad signature never stops the decryption, it is
//! reported.

use crate::mime::{split_multipart, Message};
use crate::CryptoError;
use sequoia_openpgp::crypto::SessionKey;
use sequoia_openpgp::packet::{PKESK, SKESK};
use sequoia_openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, DetachedVerifierBuilder, MessageLayer, MessageStructure,
    VerificationError, VerificationHelper,
};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::SymmetricAlgorithm;
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle};
use std::io::Read;

/// What the signature of a decrypted message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgpSignature {
    /// Not signed.
    None,
    /// A good signature by this certificate (primary fingerprint).
    Valid(Fingerprint),
    /// Signed by a key none of the given certificates has.
    UnknownSigner(Vec<String>),
    /// A signature that does not verify (why).
    Invalid(String),
}

/// A decrypted message.
#[derive(Debug, Clone)]
pub struct PgpDecrypted {
    /// The MIME entity the sender encrypted, byte for byte.
    pub entity: Vec<u8>,
    pub signature: PgpSignature,
}

/// Largest decrypted entity accepted: the message itself was bounded by
/// `smtp.max_message_size`, but compression inside could inflate it; past
/// this the message passes encrypted (memory stays bounded).
pub const MAX_ENTITY_BYTES: u64 = 64 << 20;

/// Decrypts the PGP/MIME `message` with `secret` (a certificate with
/// unencrypted secret key material) and checks its signature against
/// `signers`.
///
/// # Errors
/// [`CryptoError::OpenPgp`] when the message is not PGP/MIME, or `secret`
/// does not open it, or the payload is damaged.
pub fn decrypt_pgp(
    message: &[u8],
    secret: &Cert,
    signers: &[Cert],
) -> Result<PgpDecrypted, CryptoError> {
    let err = |e: String| CryptoError::OpenPgp(e);
    let payload = Message::parse(message)
        .pgp_mime_payload()
        .ok_or_else(|| err("not a PGP/MIME encrypted message".into()))?;
    let p = StandardPolicy::new();
    let helper = Helper {
        secret,
        checker: Checker {
            signers,
            signature: PgpSignature::None,
        },
    };
    let mut d = DecryptorBuilder::from_bytes(&payload)
        .map_err(|e| err(format!("the payload cannot be read: {e}")))?
        .with_policy(&p, None, helper)
        .map_err(|e| err(format!("cannot decrypt: {e}")))?;
    let mut entity = Vec::new();
    (&mut d)
        .take(MAX_ENTITY_BYTES + 1)
        .read_to_end(&mut entity)
        .map_err(|e| err(format!("cannot decrypt: {e}")))?;
    if entity.len() as u64 > MAX_ENTITY_BYTES {
        return Err(err(format!(
            "the decrypted content is larger than {MAX_ENTITY_BYTES} bytes"
        )));
    }
    let mut signature = d.into_helper().checker.signature;
    if signature == PgpSignature::None {
        signature = detached(&entity, signers);
    }
    Ok(PgpDecrypted { entity, signature })
}

/// The verdict on a `multipart/signed` (application/pgp-signature) entity;
/// [`PgpSignature::None`] for any other.
fn detached(entity: &[u8], signers: &[Cert]) -> PgpSignature {
    let m = Message::parse(entity);
    let ct = m.content_type();
    let pgp_signed = ct.mime_type == "multipart/signed"
        && ct
            .param("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-signature"));
    if !pgp_signed {
        return PgpSignature::None;
    }
    let Some(boundary) = ct.param("boundary") else {
        return PgpSignature::Invalid("multipart/signed without a boundary".into());
    };
    let (parts, _) = split_multipart(m.body(), boundary);
    if parts.len() != 2 {
        return PgpSignature::Invalid(format!(
            "multipart/signed with {} parts (2 expected)",
            parts.len()
        ));
    }
    let signature = Message::parse(parts[1]).body().to_vec();
    let p = StandardPolicy::new();
    let helper = Checker {
        signers,
        signature: PgpSignature::None,
    };
    let verified = DetachedVerifierBuilder::from_bytes(&signature)
        .and_then(|b| b.with_policy(&p, None, helper))
        .and_then(|mut v| {
            v.verify_bytes(parts[0])?;
            Ok(v.into_helper().signature)
        });
    match verified {
        Ok(PgpSignature::None) => {
            PgpSignature::Invalid("no signature in the signature part".into())
        }
        Ok(s) => s,
        Err(e) => PgpSignature::Invalid(format!("the signature cannot be read: {e}")),
    }
}

/// Collects the signature verdict of a message structure: the first good
/// signature wins; else an unknown signer; else the first error.
fn judge(structure: MessageStructure, verdict: &mut PgpSignature) {
    for layer in structure.into_iter() {
        let MessageLayer::SignatureGroup { results } = layer else {
            continue;
        };
        for r in results {
            let next = match r {
                Ok(good) => PgpSignature::Valid(good.ka.cert().fingerprint()),
                Err(VerificationError::MissingKey { sig }) => PgpSignature::UnknownSigner(
                    sig.get_issuers().iter().map(|h| h.to_hex()).collect(),
                ),
                Err(e) => PgpSignature::Invalid(e.to_string()),
            };
            let better = match (&*verdict, &next) {
                (PgpSignature::Valid(_), _) => false,
                (_, PgpSignature::Valid(_)) => true,
                (PgpSignature::None, _) => true,
                _ => false,
            };
            if better {
                *verdict = next;
            }
        }
    }
}

struct Checker<'a> {
    signers: &'a [Cert],
    signature: PgpSignature,
}

impl VerificationHelper for Checker<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> sequoia_openpgp::Result<Vec<Cert>> {
        Ok(self.signers.to_vec())
    }

    fn check(&mut self, structure: MessageStructure) -> sequoia_openpgp::Result<()> {
        judge(structure, &mut self.signature);
        Ok(())
    }
}

/// The decryption helper: the held key, and a [`Checker`] for the signature.
struct Helper<'a> {
    secret: &'a Cert,
    checker: Checker<'a>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> sequoia_openpgp::Result<Vec<Cert>> {
        self.checker.get_certs(ids)
    }

    fn check(&mut self, structure: MessageStructure) -> sequoia_openpgp::Result<()> {
        self.checker.check(structure)
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> sequoia_openpgp::Result<Option<Cert>> {
        // Every encryption-capable subkey with secret material, whatever
        // its validity now: the message may be older than an expiry.
        let keys: Vec<_> = self
            .secret
            .keys()
            .secret()
            .filter(|k| {
                k.key().pk_algo().for_encryption()
                    && !k.key().optional_secret().is_some_and(|s| s.is_encrypted())
            })
            .collect();
        for pkesk in pkesks {
            for ka in &keys {
                let named = pkesk
                    .recipient()
                    .is_none_or(|r| ka.key().key_handle().aliases(r));
                if !named {
                    continue;
                }
                let Ok(mut pair) = ka.key().clone().into_keypair() else {
                    continue;
                };
                if pkesk
                    .decrypt(&mut pair, sym_algo)
                    .is_some_and(|(algo, sk)| decrypt(algo, &sk))
                {
                    return Ok(Some(self.secret.clone()));
                }
            }
        }
        Err(sequoia_openpgp::Error::InvalidOperation(
            "none of the held key's encryption subkeys opens the message".into(),
        )
        .into())
    }
}
