//! Is this CMS structure encrypted, and for whom?
//!
//! A `.p7m` name or an `smime-type` parameter is only a label. What counts is
//! the ContentInfo's content type (RFC 5652 §3): enveloped-data
//! (1.2.840.113549.1.7.3) or authEnveloped-data (1.2.840.113549.1.9.16.1.23,
//! RFC 5083). Signed-data, data, compressed-data and anything else is
//! readable by anyone and therefore plaintext. For encrypted data the
//! recipient identifiers are read out of every RecipientInfo, so that the
//! pipeline can check that a mandatory recipient is among them.

use super::der::{self, Tlv};
use super::CmsRecipient;

/// DER contents of the OID 1.2.840.113549.1.7.3 (enveloped-data).
const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// DER contents of the OID 1.2.840.113549.1.9.16.1.23 (authEnveloped-data).
const AUTH_ENVELOPED_DATA: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// The recipients of an enveloped or authEnveloped ContentInfo in `der`, or
/// `None` if `der` is anything else (another content type, trailing bytes,
/// malformed). A well-formed encrypted structure may name no recipient we can
/// recognise (password or KEK recipients); the list is then empty.
pub fn recipients(input: &[u8]) -> Option<Vec<CmsRecipient>> {
    parse(input).ok()
}

fn parse(input: &[u8]) -> Result<Vec<CmsRecipient>, ()> {
    let content_info = der::read_all(input)?;
    if content_info.tag != der::SEQUENCE {
        return Err(());
    }
    let mut fields = content_info.children();
    let oid = fields.expect()?;
    if oid.tag != der::OID
        || !(oid.contents == ENVELOPED_DATA || oid.contents == AUTH_ENVELOPED_DATA)
    {
        return Err(());
    }
    let explicit = fields.expect()?;
    if explicit.tag != der::context_constructed(0) || fields.next_tlv()?.is_some() {
        return Err(());
    }
    let mut inner = explicit.children();
    let enveloped = inner.expect()?;
    if enveloped.tag != der::SEQUENCE || inner.next_tlv()?.is_some() {
        return Err(());
    }
    // version, [0] originatorInfo OPTIONAL, recipientInfos SET, (auth)encryptedContentInfo ...
    let mut f = enveloped.children();
    let version = f.expect()?;
    if version.tag != der::INTEGER {
        return Err(());
    }
    let mut next = f.expect()?;
    if next.tag == der::context_constructed(0) {
        next = f.expect()?;
    }
    if next.tag != der::SET {
        return Err(());
    }
    let infos = next;
    let content = f.expect()?;
    if content.tag != der::SEQUENCE {
        return Err(());
    }
    let mut out = Vec::new();
    let mut ri = infos.children();
    while let Some(info) = ri.next_tlv()? {
        recipient_info(info, &mut out)?;
    }
    if out.is_empty() && infos.contents.is_empty() {
        // No RecipientInfo at all: nobody can decrypt it; not encrypted mail.
        return Err(());
    }
    Ok(out)
}

fn recipient_info(info: Tlv<'_>, out: &mut Vec<CmsRecipient>) -> Result<(), ()> {
    match info.tag {
        // KeyTransRecipientInfo ::= SEQUENCE { version, rid, alg, encryptedKey }
        der::SEQUENCE => {
            let mut f = info.children();
            f.expect()?;
            out.push(recipient_identifier(f.expect()?)?);
        }
        // [1] KeyAgreeRecipientInfo ::= SEQUENCE { version, originator [0],
        //   ukm [1] OPTIONAL, alg, recipientEncryptedKeys SEQUENCE OF
        //   SEQUENCE { rid KeyAgreeRecipientIdentifier, encryptedKey } }
        t if t == der::context_constructed(1) => {
            let mut f = info.children();
            f.expect()?; // version
            let originator = f.expect()?;
            if originator.tag != der::context_constructed(0) {
                return Err(());
            }
            let mut alg = f.expect()?;
            if alg.tag == der::context_constructed(1) {
                alg = f.expect()?;
            }
            if alg.tag != der::SEQUENCE {
                return Err(());
            }
            let keys = f.expect()?;
            if keys.tag != der::SEQUENCE {
                return Err(());
            }
            let mut k = keys.children();
            while let Some(rek) = k.next_tlv()? {
                let rid = rek.children().expect()?;
                if rid.tag == der::context_constructed(0) {
                    // rKeyId RecipientKeyIdentifier ::= SEQUENCE { ski, date, other }
                    let ski = rid.children().expect()?;
                    if ski.tag != der::OCTET_STRING {
                        return Err(());
                    }
                    out.push(CmsRecipient::SubjectKeyId(ski.contents.to_vec()));
                } else {
                    out.push(recipient_identifier(rid)?);
                }
            }
        }
        // [2] KEK, [3] password, [4] other: well-formed but not a certificate.
        t if t == der::context_constructed(2)
            || t == der::context_constructed(3)
            || t == der::context_constructed(4) => {}
        _ => return Err(()),
    }
    Ok(())
}

/// `RecipientIdentifier ::= CHOICE { issuerAndSerialNumber, [0] subjectKeyIdentifier }`.
pub(crate) fn recipient_identifier(rid: Tlv<'_>) -> Result<CmsRecipient, ()> {
    if rid.tag == der::context_primitive(0) {
        return Ok(CmsRecipient::SubjectKeyId(rid.contents.to_vec()));
    }
    if rid.tag != der::SEQUENCE {
        return Err(());
    }
    let mut f = rid.children();
    let issuer = f.expect()?;
    let serial = f.expect()?;
    if issuer.tag != der::SEQUENCE || serial.tag != der::INTEGER {
        return Err(());
    }
    Ok(CmsRecipient::IssuerSerial {
        issuer: reencode(issuer),
        serial: super::strip_leading_zeros(serial.contents).to_vec(),
    })
}

/// The DER encoding of a SEQUENCE with these contents (definite length), so
/// that it compares with `X509NameRef::to_der`.
pub(crate) fn reencode(t: Tlv<'_>) -> Vec<u8> {
    let n = t.contents.len();
    let mut out = vec![t.tag];
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(t.contents);
    out
}
