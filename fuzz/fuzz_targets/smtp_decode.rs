//! The listener's sync decoders: the DATA decoder (`data.rs`) fed in
//! chunks, and the MAIL/RCPT path reader (`address.rs`).
//!
//! Input: byte 0 picks the mode and limits, byte 1 the chunking; the rest is
//! DATA content (or a command line).
//!
//! Checks: no panic; the decoder gives the same answer however the input is
//! split; an accepted message is within its limits, has CRLF line endings
//! and no NUL; a canonical address is a fixed point of `canonical` and holds
//! no control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate_smtp_server::fuzzing::{canonical, path_command, DataDecoder};
use sealgate_smtp_server::BareLf;

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (mode, chunking, rest) = (input[0], input[1], &input[2..]);
    if mode & 0x80 != 0 {
        path(rest);
    } else {
        data(mode, chunking, rest);
    }
});

fn data(mode: u8, chunking: u8, input: &[u8]) {
    let bare_lf = if mode & 1 == 0 {
        BareLf::Normalize
    } else {
        BareLf::Reject
    };
    let max_line = [3usize, 16, 1000, 4096][usize::from(mode >> 1 & 3)];
    let max_size = [0usize, 64, 4096, 1 << 20][usize::from(mode >> 3 & 3)];

    let whole = decode(input, input.len().max(1), max_size, max_line, bare_lf);
    let step = usize::from(chunking % 17) + 1;
    let split = decode(input, step, max_size, max_line, bare_lf);
    assert_eq!(whole, split, "result depends on how the input is split");

    if let (Some(end), Ok(body)) = (whole.0, &whole.1) {
        assert!(end <= input.len());
        assert!(body.len() <= max_size, "body over max_size");
        assert!(!body.contains(&0), "NUL in an accepted body");
        assert!(body.is_empty() || body.ends_with(b"\r\n"));
        for line in body.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "line without CRLF: {line:?}");
            assert!(line.len() <= max_line, "line over max_line");
        }
    }
}

/// Feeds `input` in pieces of `step` bytes (the last one shorter). Returns
/// where the end of data was found and the result (only if it was found).
fn decode(
    input: &[u8],
    step: usize,
    max_size: usize,
    max_line: usize,
    bare_lf: BareLf,
) -> (Option<usize>, Result<Vec<u8>, (u16, String)>) {
    let mut d = DataDecoder::new(max_size, max_line, bare_lf);
    let mut at = 0;
    while at < input.len() {
        let chunk = &input[at..(at + step).min(input.len())];
        let (used, end) = d.feed(chunk);
        assert!(used <= chunk.len());
        at += used;
        if end {
            let result = d.finish().map_err(|r| (r.code, r.text));
            return (Some(at), result);
        }
        assert_eq!(used, chunk.len(), "input left over without the end of data");
    }
    (None, Err((0, String::new())))
}

fn path(line: &[u8]) {
    let Some((mail, address)) = path_command(line) else {
        return;
    };
    let Ok(address) = address else {
        return;
    };
    assert!(
        !address.chars().any(char::is_control),
        "control character in {address:?}"
    );
    let again = canonical(address.as_bytes(), mail);
    assert_eq!(
        again.as_deref(),
        Ok(address.as_str()),
        "the canonical form is not canonical"
    );
    if let Some(at) = address.rfind('@') {
        let domain = &address[at + 1..];
        assert!(!domain.contains('"'), "quote in the domain of {address:?}");
    }
}
