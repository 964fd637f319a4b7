//! Entry points for the fuzz targets in `fuzz/` (see docs/fuzzing.md).
//!
//! The DATA decoder and the MAIL/RCPT path reader are private to the
//! listener; these thin wrappers expose exactly them, unchanged, so they can
//! be fuzzed without a socket. Not part of the crate's API.

use crate::address::{self, Verb};
use crate::data::DataReader;
use crate::{BareLf, Reply};

/// The DATA decoder of `data.rs`.
pub struct DataDecoder(DataReader);

impl DataDecoder {
    /// A decoder with these limits (message size, line length, bare LF).
    pub fn new(max_size: usize, max_line: usize, bare_lf: BareLf) -> Self {
        DataDecoder(DataReader::new(max_size, max_line, bare_lf))
    }

    /// Bytes used from `input` and whether the end of data was reached.
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        self.0.feed(input)
    }

    /// The unstuffed message, or the reply refusing it.
    pub fn finish(self) -> Result<Vec<u8>, Reply> {
        self.0.finish()
    }
}

/// The path of a MAIL or RCPT command line as the session reads it:
/// `None` if `line` is neither; else whether it is MAIL, and the canonical
/// address or the refusal's text.
pub fn path_command(line: &[u8]) -> Option<(bool, Result<String, &'static str>)> {
    address::path_command(line).map(|p| (p.verb == Verb::Mail, p.address.map_err(|e| e.text())))
}

/// The canonical form of a path's contents (between `<` and `>`), as
/// `address.rs` computes it for MAIL (`mail = true`) or RCPT.
pub fn canonical(path: &[u8], mail: bool) -> Result<String, &'static str> {
    let verb = if mail { Verb::Mail } else { Verb::Rcpt };
    address::canonical(path, verb).map_err(|e| e.text())
}
