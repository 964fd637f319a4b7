//! Is this OpenPGP data an encrypted message, and for whom?
//!
//! An armor header line proves nothing: `gpg --armor --sign` output also
//! starts with `-----BEGIN PGP MESSAGE-----` and anyone can read it. The
//! packets decide (RFC 9580 §10.3): one or more PKESK/SKESK packets (marker
//! and padding packets may appear around them), then exactly one SEIPD
//! (v1 or v2) or AEAD (LibrePGP OCB) packet, then nothing. Literal data,
//! compressed data, signatures and the obsolete unprotected SED packet make
//! the data plaintext. The encrypted container is skipped, never decrypted.

use sequoia_openpgp as openpgp;

use openpgp::armor::{Kind, Reader, ReaderMode};
use openpgp::packet::Tag;
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::{KeyHandle, Packet};

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END: &[u8] = b"-----END PGP MESSAGE-----";

/// Most session-key packets we look at before we give up (a message for a
/// thousand recipients is already unusual).
const MAX_ESK: usize = 10_000;

/// The PKESK recipients (`None` for an anonymous recipient) of `text` if it
/// is exactly one ASCII-armored encrypted OpenPGP message, with nothing but
/// white space before its armor header line and after its tail line.
pub fn armored_recipients(text: &[u8]) -> Option<Vec<Option<KeyHandle>>> {
    let trimmed = trim(text);
    if !trimmed.starts_with(BEGIN) || !trimmed.ends_with(END) {
        return None;
    }
    // One block only: a second header or tail line would hide text between.
    if count(trimmed, BEGIN) != 1 || count(trimmed, END) != 1 {
        return None;
    }
    let reader = Reader::from_bytes(trimmed, ReaderMode::Tolerant(Some(Kind::Message)));
    recipients(PacketParser::from_reader(reader).ok()?)
}

fn recipients(mut ppr: PacketParserResult<'_>) -> Option<Vec<Option<KeyHandle>>> {
    let mut out = Vec::new();
    let mut esk = 0usize;
    let mut container = false;
    while let PacketParserResult::Some(pp) = ppr {
        if container {
            // Something after the encrypted container.
            return None;
        }
        let tag = pp.packet.tag();
        match &pp.packet {
            Packet::PKESK(p) => {
                out.push(p.recipient());
                esk += 1;
            }
            Packet::SKESK(_) => esk += 1,
            Packet::Marker(_) | Packet::Padding(_) => {}
            Packet::SEIP(_) => container = true,
            Packet::Unknown(_) if tag == Tag::AED => container = true,
            _ => return None,
        }
        if container && esk == 0 || esk > MAX_ESK {
            return None;
        }
        // `next` skips the container's body without decrypting it.
        ppr = pp.next().ok()?.1;
    }
    match ppr {
        PacketParserResult::EOF(_) if container => Some(out),
        _ => None,
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end]
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}
