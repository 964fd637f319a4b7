//! A minimal, bounded BER/DER reader: just enough to walk a CMS ContentInfo.
//!
//! CMS messages arrive from the SMTP client, so every length is checked
//! against the input, nesting is bounded, and indefinite lengths (BER, as
//! streaming encoders write them) are followed to their end-of-contents
//! marker without recursion deeper than [`MAX_DEPTH`]. Nothing here
//! allocates: values are slices of the input.

/// Deeper nesting than this is refused (real CMS needs fewer than 10 levels).
pub const MAX_DEPTH: usize = 32;

/// One TLV: its identifier octet (class, constructed bit, low tag number) and
/// its contents. For an indefinite-length value the contents are the encoded
/// children, without the end-of-contents marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub contents: &'a [u8],
}

/// Universal tags used by CMS.
pub const INTEGER: u8 = 0x02;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const SEQUENCE: u8 = 0x30;
pub const SET: u8 = 0x31;

/// Context-specific tag `[n]`, constructed.
pub const fn context_constructed(n: u8) -> u8 {
    0xa0 | n
}

/// Context-specific tag `[n]`, primitive.
pub const fn context_primitive(n: u8) -> u8 {
    0x80 | n
}

impl<'a> Tlv<'a> {
    /// The children of a constructed value, in order.
    pub fn children(&self) -> Children<'a> {
        Children {
            rest: self.contents,
        }
    }
}

/// Iterator over the TLVs in a byte string; stops (returns `None`) at the end
/// or at the first malformed element, which [`Children::finish`] reports.
pub struct Children<'a> {
    rest: &'a [u8],
}

impl<'a> Children<'a> {
    /// The next element, or `None` at the end; malformed input is an `Err`.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>, ()> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = read(self.rest, 0)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next element, which must exist.
    pub fn expect(&mut self) -> Result<Tlv<'a>, ()> {
        self.next_tlv()?.ok_or(())
    }
}

/// Reads exactly one TLV that spans all of `input`.
pub fn read_all(input: &[u8]) -> Result<Tlv<'_>, ()> {
    let (tlv, rest) = read(input, 0)?;
    if rest.is_empty() {
        Ok(tlv)
    } else {
        Err(())
    }
}

/// Reads one TLV from the start of `input`; returns it and what follows.
fn read(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    let (&tag, rest) = input.split_first().ok_or(())?;
    if tag & 0x1f == 0x1f {
        // High tag numbers do not occur in the structures we read.
        return Err(());
    }
    let (&first, mut rest) = rest.split_first().ok_or(())?;
    if first == 0x80 {
        // Indefinite length: only for constructed values.
        if tag & 0x20 == 0 {
            return Err(());
        }
        let start = rest;
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let used = start.len() - rest.len();
                return Ok((
                    Tlv {
                        tag,
                        contents: &start[..used],
                    },
                    &rest[2..],
                ));
            }
            let (_, after) = read(rest, depth + 1)?;
            rest = after;
        }
    }
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(());
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | b as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(());
    }
    Ok((
        Tlv {
            tag,
            contents: &rest[..len],
        },
        &rest[len..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_and_indefinite_lengths() {
        let t = read_all(&[0x30, 0x03, 0x02, 0x01, 0x05]).unwrap();
        assert_eq!(t.tag, SEQUENCE);
        let mut c = t.children();
        assert_eq!(c.expect().unwrap().contents, &[5]);
        assert_eq!(c.next_tlv(), Ok(None));
        let t = read_all(&[0x30, 0x80, 0x02, 0x01, 0x07, 0x00, 0x00]).unwrap();
        assert_eq!(t.children().expect().unwrap().contents, &[7]);
        let long = [0x04, 0x82, 0x01, 0x00];
        let mut v = long.to_vec();
        v.extend(std::iter::repeat_n(0u8, 256));
        assert_eq!(read_all(&v).unwrap().contents.len(), 256);
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x00],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x30, 0x80, 0x02],
            &[0x1f, 0x01, 0x00],
            &[0x30, 0x00, 0x00],
        ] {
            assert!(read_all(bad).is_err(), "{bad:?}");
        }
        // Deep nesting of indefinite lengths is bounded.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        for _ in 0..100 {
            deep.extend_from_slice(&[0, 0]);
        }
        assert!(read_all(&deep).is_err());
    }
}
