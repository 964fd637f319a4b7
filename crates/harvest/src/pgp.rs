//! OpenPGP harvesting: the gates an attached key passes before it is
//! learned (Bitmask's "keys attached to incoming emails", made safe).
//!
//! 1. The key is attached *inside* the signed part of a PGP/MIME message
//!    (`multipart/signed; protocol="application/pgp-signature"`, RFC 3156),
//!    as an `application/pgp-keys` part or an `.asc` attachment holding a
//!    public key block. A key attached anywhere else is ignored (and the
//!    refusal counted): nothing vouches for it.
//! 2. The signature verifies over the exact bytes of the signed part, made
//!    by the attached key itself or by the address's current (active) key.
//!    A signature by any other key, or none that verifies, refuses.
//! 3. The message has one author, and the key carries a valid User ID whose
//!    email is exactly that address (a key signed by itself proves only
//!    that its holder made it, so the User ID must tie it to From).
//!
//! What passes enters at `weak_chain` and is offered against the address's
//! active key by the can-upgrade rules (`sealgate_keys::offer`).

use crate::smime::Refused;
use sealgate_crypto::mime::{field_param, header_value_unfolded, split_multipart, Message};
use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::stream::{
    DetachedVerifierBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::{Cert, Fingerprint, KeyHandle};

/// Largest key attachment looked at (decoded bytes); bigger ones are refused.
pub const MAX_KEY_BYTES: usize = 256 * 1024;
/// Most keys taken from one message.
pub const MAX_KEYS: usize = 8;
/// Deepest MIME nesting walked, and most parts looked at.
const MAX_DEPTH: usize = 8;
const MAX_PARTS: usize = 128;
/// Largest detached signature read.
const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// What a signed message teaches.
#[derive(Debug, Clone)]
pub struct Found {
    /// The author (lower case).
    pub address: String,
    /// The keys to learn (public parts), each with a User ID equal to the author.
    pub keys: Vec<Cert>,
    /// The key that made the verified signature.
    pub signer: Fingerprint,
    /// How the signature vouches for the keys, for the log.
    pub how: &'static str,
}

/// The single From address of `message`, lower case, if there is exactly one.
pub fn author(message: &[u8]) -> Option<String> {
    let parsed = Message::parse(message);
    match parsed.addresses(&["From"]).as_slice() {
        [one] if one.len() <= 254 && !one.chars().any(|c| c.is_control()) => {
            Some(one.to_lowercase())
        }
        _ => None,
    }
}

/// Whether `message` is PGP/MIME signed (a cheap look at its header).
pub fn is_pgp_signed(message: &[u8]) -> bool {
    let ct = Message::parse(message).content_type();
    ct.mime_type == "multipart/signed"
        && ct
            .param("protocol")
            .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-signature"))
}

/// A key attachment found in the MIME tree.
struct KeyPart {
    /// Inside the signed part.
    signed: bool,
    data: Result<Vec<u8>, String>,
}

/// `Ok(None)`: no key attachment (nothing to learn, not a refusal).
/// `current`: the address's active key, which may vouch for a new one.
pub fn examine(message: &[u8], current: Option<&Cert>) -> Result<Option<Found>, Refused> {
    let address = author(message);
    let refuse = |reason: String| Refused {
        address: address.clone(),
        reason,
    };
    let top = Message::parse(message);
    let mut parts = Vec::new();
    let mut seen = 0;
    let mut signed: Option<(&[u8], &[u8])> = None;
    if is_pgp_signed(message) {
        let ct = top.content_type();
        let Some(boundary) = ct.param("boundary") else {
            return Err(refuse("multipart/signed without a boundary".into()));
        };
        let (children, _) = split_multipart(top.body(), boundary);
        if children.len() != 2 {
            return Err(refuse(format!(
                "multipart/signed with {} parts (2 expected)",
                children.len()
            )));
        }
        collect(children[0], 1, true, &mut parts, &mut seen);
        signed = Some((children[0], children[1]));
    } else {
        collect(message, 0, false, &mut parts, &mut seen);
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let Some((content, signature_part)) = signed else {
        return Err(refuse(format!(
            "{} key attachment(s) in mail that is not PGP/MIME signed: ignored",
            parts.len()
        )));
    };
    let unsigned = parts.iter().filter(|p| !p.signed).count();
    let signed_parts: Vec<&KeyPart> = parts.iter().filter(|p| p.signed).collect();
    if signed_parts.is_empty() {
        return Err(refuse(format!(
            "{unsigned} key attachment(s) outside the signed part: ignored"
        )));
    }
    let Some(address) = address.clone() else {
        return Err(refuse(
            "the message has no single From: address; a key is learned only for a single author"
                .into(),
        ));
    };
    let mut attached: Vec<Cert> = Vec::new();
    for p in signed_parts {
        let data = p.data.as_ref().map_err(|e| refuse(e.clone()))?;
        for cert in CertParser::from_bytes(data)
            .map_err(|e| refuse(format!("the attached key cannot be read: {e}")))?
        {
            let cert = cert.map_err(|e| refuse(format!("the attached key cannot be read: {e}")))?;
            if attached.len() >= MAX_KEYS {
                return Err(refuse(format!("more than {MAX_KEYS} attached keys")));
            }
            attached.push(cert.strip_secret_key_material());
        }
    }
    let signature = decode(&Message::parse(signature_part), MAX_SIGNATURE_BYTES)
        .map_err(|e| refuse(format!("the signature part: {e}")))?;
    let mut candidates = attached.clone();
    if let Some(c) = current {
        if !candidates
            .iter()
            .any(|a| a.fingerprint() == c.fingerprint())
        {
            candidates.push(c.clone());
        }
    }
    let signer = verify(content, &signature, candidates).map_err(refuse)?;
    let by_current = current.is_some_and(|c| c.fingerprint() == signer)
        && !attached.iter().any(|a| a.fingerprint() == signer);
    let names_author = |c: &Cert| names_address(c, &address);
    if !by_current {
        let own = attached.iter().find(|a| a.fingerprint() == signer).cloned();
        return match own {
            Some(k) if names_author(&k) => Ok(Some(Found {
                address,
                keys: vec![k],
                signer,
                how: "attached key, signed by itself",
            })),
            Some(_) => Err(refuse(format!(
                "the signing key {signer} has no valid User ID equal to the From address"
            ))),
            None => Err(refuse("the signature is not by an attached key".into())),
        };
    }
    let keys: Vec<Cert> = attached.into_iter().filter(names_author).collect();
    if keys.is_empty() {
        return Err(refuse(
            "signed by the address's current key, but no attached key has a valid User ID equal to the From address"
                .into(),
        ));
    }
    Ok(Some(Found {
        address,
        keys,
        signer,
        how: "attached key, signed by the address's current key",
    }))
}

/// Whether `cert` has a User ID, valid under the standard policy now, whose
/// email is exactly `address` (case-insensitive).
pub fn names_address(cert: &Cert, address: &str) -> bool {
    let p = StandardPolicy::new();
    cert.with_policy(&p, None).is_ok_and(|vc| {
        vc.userids().any(|u| {
            u.userid()
                .email()
                .ok()
                .flatten()
                .is_some_and(|e| e.eq_ignore_ascii_case(address))
        })
    })
}

/// The public keys in `data` (armored or binary) with a valid User ID equal
/// to `address`, at most [`MAX_KEYS`]; how many keys were in `data` at all.
pub fn keys_naming(data: &[u8], address: &str) -> Result<(Vec<Cert>, usize), String> {
    let mut keys = Vec::new();
    let mut total = 0;
    for cert in CertParser::from_bytes(data).map_err(|e| format!("no OpenPGP key in it: {e}"))? {
        let cert = cert.map_err(|e| format!("a key in it cannot be read: {e}"))?;
        total += 1;
        if total > MAX_KEYS * 4 {
            return Err(format!("more than {} keys in it", MAX_KEYS * 4));
        }
        if names_address(&cert, address) && keys.len() < MAX_KEYS {
            keys.push(cert.strip_secret_key_material());
        }
    }
    Ok((keys, total))
}

/// Walks the MIME tree below `entity` for key attachments.
fn collect(entity: &[u8], depth: usize, signed: bool, out: &mut Vec<KeyPart>, seen: &mut usize) {
    *seen += 1;
    if *seen > MAX_PARTS || depth > MAX_DEPTH {
        return;
    }
    let m = Message::parse(entity);
    let ct = m.content_type();
    if ct.mime_type.starts_with("multipart/") {
        if let Some(boundary) = ct.param("boundary") {
            let (children, _) = split_multipart(m.body(), boundary);
            for c in children {
                collect(c, depth + 1, signed, out, seen);
            }
        }
        return;
    }
    let named_asc = |v: Option<&str>| v.is_some_and(|n| n.to_ascii_lowercase().ends_with(".asc"));
    let filename = m
        .header("Content-Disposition")
        .and_then(|h| field_param(h, "filename"));
    let is_keys = ct.mime_type == "application/pgp-keys";
    let is_asc = ct.mime_type != "application/pgp-signature"
        && (named_asc(ct.param("name")) || named_asc(filename.as_deref()));
    if !is_keys && !is_asc {
        return;
    }
    let data = decode(&m, MAX_KEY_BYTES);
    if is_asc && !is_keys {
        // An .asc file is a key only if it holds a public key block.
        match &data {
            Ok(d) if contains(d, b"-----BEGIN PGP PUBLIC KEY BLOCK-----") => {}
            _ => return,
        }
    }
    out.push(KeyPart { signed, data });
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A part's body, decoded (7bit/8bit/binary as is, base64), at most `max` bytes.
fn decode(part: &Message<'_>, max: usize) -> Result<Vec<u8>, String> {
    let body = part.body();
    let cte = part
        .header("Content-Transfer-Encoding")
        .map(|h| header_value_unfolded(h).trim().to_ascii_lowercase());
    let out = match cte.as_deref() {
        None | Some("7bit") | Some("8bit") | Some("binary") => {
            if body.len() > max {
                return Err(format!("larger than {max} bytes"));
            }
            body.to_vec()
        }
        Some("base64") => {
            if body.len() > max / 3 * 4 + max / 38 + 1024 {
                return Err(format!("larger than {max} bytes"));
            }
            sealgate_crypto::mime::decode_base64(body)?
        }
        Some(other) => return Err(format!("unsupported Content-Transfer-Encoding {other:?}")),
    };
    Ok(out)
}

struct Helper {
    certs: Vec<Cert>,
    good: Option<Fingerprint>,
    errors: Vec<String>,
}

impl VerificationHelper for Helper {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> sequoia_openpgp::Result<Vec<Cert>> {
        Ok(self.certs.clone())
    }

    fn check(&mut self, structure: MessageStructure) -> sequoia_openpgp::Result<()> {
        for layer in structure.into_iter() {
            if let MessageLayer::SignatureGroup { results } = layer {
                for r in results {
                    match r {
                        Ok(good) => {
                            self.good.get_or_insert(good.ka.cert().fingerprint());
                        }
                        Err(e) => self.errors.push(e.to_string()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// The fingerprint of the candidate whose key made a good signature over
/// `content`, or why none did.
fn verify(content: &[u8], signature: &[u8], candidates: Vec<Cert>) -> Result<Fingerprint, String> {
    let p = StandardPolicy::new();
    let helper = Helper {
        certs: candidates,
        good: None,
        errors: Vec::new(),
    };
    let mut v = DetachedVerifierBuilder::from_bytes(signature)
        .map_err(|e| format!("the signature cannot be read: {e}"))?
        .with_policy(&p, None, helper)
        .map_err(|e| format!("the signature cannot be read: {e}"))?;
    v.verify_bytes(content)
        .map_err(|e| format!("the signature does not verify: {e}"))?;
    let h = v.into_helper();
    h.good.ok_or_else(|| {
        format!(
            "no signature made by the attached key or the address's current key verifies ({})",
            if h.errors.is_empty() {
                "no signature".to_string()
            } else {
                h.errors.join("; ")
            }
        )
    })
}
