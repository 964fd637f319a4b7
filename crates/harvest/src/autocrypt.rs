//! The Autocrypt header (Autocrypt Level 1, §2.1 and §2.3), read by our own
//! parser.
//!
//! sequoia-autocrypt's parser matches field names case-sensitively, takes a
//! leading `_` as marking a *critical* attribute (the spec says the
//! opposite) and never compares `addr` with From, so this one follows the
//! spec itself:
//! - the field name is matched case-insensitively; a message with more than
//!   one Autocrypt field, a `multipart/report` (bounces, receipts) or more
//!   than one From address teaches nothing;
//! - `addr` and `keydata` are required; `prefer-encrypt` is `mutual` or
//!   anything else (`nopreference`); an unknown attribute not starting with
//!   `_` is critical and makes the field invalid; `_…` ones are ignored;
//! - `addr` must equal the From address (case-insensitive);
//! - `keydata` is one OpenPGP certificate (base64, white space ignored),
//!   which must carry a valid User ID equal to `addr` (sealgate binds keys to
//!   addresses through their User IDs).
//!
//! The field is unsigned: [`crate::dkim`] decides whether the domain vouched
//! for it. What passes enters at `weak_chain`.

use crate::fields;
use crate::smime::Refused;
use sealgate_crypto::mime::{header_value_unfolded, Message};
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Cert;

/// Largest `keydata` read (decoded).
pub const MAX_KEYDATA_BYTES: usize = 32 * 1024;

/// `prefer-encrypt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferEncrypt {
    Mutual,
    NoPreference,
}

impl PreferEncrypt {
    pub fn as_str(self) -> &'static str {
        match self {
            PreferEncrypt::Mutual => "mutual",
            PreferEncrypt::NoPreference => "nopreference",
        }
    }
}

/// A valid Autocrypt field whose `addr` is the author.
#[derive(Debug, Clone)]
pub struct Header {
    /// The author (lower case).
    pub address: String,
    pub prefer_encrypt: PreferEncrypt,
    /// The key, public parts only.
    pub key: Cert,
}

/// Whether `message` has an Autocrypt field at its top (cheap).
pub fn has_field(message: &[u8]) -> bool {
    Message::parse(message).header("Autocrypt").is_some()
}

/// The Autocrypt header of `message`, checked. `Ok(None)`: there is none.
/// The refusal names the rule that failed.
pub fn read(message: &[u8]) -> Result<Option<Header>, Refused> {
    let m = Message::parse(message);
    let mut found = m
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Autocrypt"));
    let Some(field) = found.next() else {
        return Ok(None);
    };
    let author = crate::pgp::author(message);
    let refuse = |reason: String| Refused {
        address: author.clone(),
        reason,
    };
    if found.next().is_some() {
        return Err(refuse(
            "more than one Autocrypt field: all are ignored (Level 1)".into(),
        ));
    }
    if m.content_type().mime_type == "multipart/report" {
        return Err(refuse(
            "a multipart/report (a bounce or receipt) teaches no Autocrypt key".into(),
        ));
    }
    let Some(author) = author.clone() else {
        return Err(refuse(
            "the message has no single From: address; a key is learned only for a single author"
                .into(),
        ));
    };
    let attrs = fields::attributes(&header_value_unfolded(field))
        .map_err(|e| refuse(format!("the Autocrypt field cannot be read: {e}")))?;
    for (name, _) in &attrs {
        if !matches!(name.as_str(), "addr" | "prefer-encrypt" | "keydata") && !name.starts_with('_')
        {
            return Err(refuse(format!(
                "the Autocrypt field has the unknown critical attribute {name:?}"
            )));
        }
    }
    let addr = fields::get(&attrs, "addr")
        .ok_or_else(|| refuse("the Autocrypt field has no addr".into()))?;
    if !addr.eq_ignore_ascii_case(&author) {
        return Err(refuse(format!(
            "the Autocrypt addr {:?} is not the From address",
            fields::shorten(addr)
        )));
    }
    let keydata = fields::get(&attrs, "keydata")
        .ok_or_else(|| refuse("the Autocrypt field has no keydata".into()))?;
    if keydata.len() > MAX_KEYDATA_BYTES / 3 * 4 + MAX_KEYDATA_BYTES / 16 {
        return Err(refuse(format!(
            "the Autocrypt keydata is larger than {MAX_KEYDATA_BYTES} bytes"
        )));
    }
    let der = sealgate_crypto::mime::decode_base64(keydata.as_bytes())
        .map_err(|e| refuse(format!("the Autocrypt keydata is not base64: {e}")))?;
    let key = Cert::from_bytes(&der)
        .map_err(|e| refuse(format!("the Autocrypt keydata is not one OpenPGP key: {e}")))?
        .strip_secret_key_material();
    if !crate::pgp::names_address(&key, &author) {
        return Err(refuse(format!(
            "the Autocrypt key {} has no valid User ID equal to the From address",
            key.fingerprint()
        )));
    }
    let prefer_encrypt = match fields::get(&attrs, "prefer-encrypt") {
        Some(v) if v.eq_ignore_ascii_case("mutual") => PreferEncrypt::Mutual,
        _ => PreferEncrypt::NoPreference,
    };
    Ok(Some(Header {
        address: author,
        prefer_encrypt,
        key,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sequoia_openpgp::cert::CertBuilder;
    use sequoia_openpgp::serialize::Serialize;

    fn key(uid: &str) -> (Cert, String) {
        let (cert, _) = CertBuilder::general_purpose(Some(uid)).generate().unwrap();
        let mut der = Vec::new();
        cert.serialize(&mut der).unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        // Folded as a mail client would.
        let folded: Vec<String> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        (cert, folded.join("\r\n "))
    }

    fn mail(from: &str, fields: &str) -> Vec<u8> {
        format!("From: {from}\r\nTo: ian@corp.example\r\n{fields}Subject: hi\r\n\r\nbody\r\n")
            .into_bytes()
    }

    #[test]
    fn reads_a_valid_header() {
        let (cert, kd) = key("Olga <olga@partner.example>");
        let m = mail(
            "Olga <Olga@Partner.example>",
            &format!("autocrypt: addr=olga@partner.example; prefer-encrypt=mutual; _x=1;\r\n keydata={kd}\r\n"),
        );
        let h = read(&m).unwrap().unwrap();
        assert_eq!(h.address, "olga@partner.example");
        assert_eq!(h.prefer_encrypt, PreferEncrypt::Mutual);
        assert_eq!(h.key.fingerprint(), cert.fingerprint());
        let m = mail(
            "olga@partner.example",
            &format!(
                "Autocrypt: addr=olga@partner.example; prefer-encrypt=maybe; keydata={kd}\r\n"
            ),
        );
        assert_eq!(
            read(&m).unwrap().unwrap().prefer_encrypt,
            PreferEncrypt::NoPreference
        );
        assert!(read(&mail("olga@partner.example", "")).unwrap().is_none());
    }

    #[test]
    fn refuses_by_the_level_1_rules() {
        let (_, kd) = key("Olga <olga@partner.example>");
        let field = |attrs: &str| format!("Autocrypt: {attrs}\r\n");
        let good = format!("addr=olga@partner.example; keydata={kd}");
        let cases = [
            (
                mail("olga@partner.example", &field(&format!("addr=mallory@evil.example; keydata={kd}"))),
                "is not the From address",
            ),
            (
                mail("olga@partner.example", &format!("{}{}", field(&good), field(&good))),
                "more than one Autocrypt field",
            ),
            (
                mail("olga@partner.example", &field(&format!("{good}; critical=1"))),
                "unknown critical attribute",
            ),
            (
                mail("olga@partner.example", &field("addr=olga@partner.example")),
                "no keydata",
            ),
            (
                mail("olga@partner.example", &field(&format!("keydata={kd}"))),
                "no addr",
            ),
            (
                mail("olga@partner.example", &field("addr=olga@partner.example; keydata=!!!")),
                "not base64",
            ),
            (
                mail("olga@partner.example", &field("addr=olga@partner.example; keydata=AAAA")),
                "not one OpenPGP key",
            ),
            (
                mail("olga@partner.example, uma@partner.example", &field(&good)),
                "no single From",
            ),
            (
                mail(
                    "olga@partner.example",
                    &format!("{}Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n", field(&good)),
                ),
                "multipart/report",
            ),
        ];
        for (m, why) in cases {
            let r = read(&m).unwrap_err();
            assert!(r.reason.contains(why), "{why}: {}", r.reason);
        }
        let (_, other) = key("Olga <olga@elsewhere.example>");
        let m = mail(
            "olga@partner.example",
            &field(&format!("addr=olga@partner.example; keydata={other}")),
        );
        assert!(read(&m).unwrap_err().reason.contains("no valid User ID"));
    }
}
