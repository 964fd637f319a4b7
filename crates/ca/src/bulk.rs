//! Bulk requests from a CSV file (`sealgate ca bulk FILE [--preview]`),
//! with the seed's rules:
//!
//! - comma separated, values may be double-quoted, the first row names the
//!   columns;
//! - US-ASCII unless a byte order mark says otherwise (UTF-8, UTF-16 LE or
//!   BE);
//! - the columns EMAIL, ORGANISATION, COMMONNAME, FIRSTNAME, LASTNAME, in
//!   any case, with the aliases `e`; `org`, `o`; `cn`; `fn`, `givenname`,
//!   `gn`; `ln`, `surname`, `sn`; EMAIL and COMMONNAME are mandatory;
//! - at most [`MAX_ROWS`] rows and values of at most [`MAX_VALUE`]
//!   characters;
//! - an address that already has a valid signing certificate is skipped.
//!
//! Every error names the row (the header is row 1) and the column. The
//! whole file is checked before anything is requested.

use crate::{CaError, Request};

pub const MAX_ROWS: usize = 10_000;
pub const MAX_VALUE: usize = 256;

/// The columns and their aliases.
const COLUMNS: &[(&str, &[&str])] = &[
    ("EMAIL", &["email", "e"]),
    (
        "ORGANISATION",
        &["organisation", "organization", "org", "o"],
    ),
    ("COMMONNAME", &["commonname", "cn"]),
    ("FIRSTNAME", &["firstname", "fn", "givenname", "gn"]),
    ("LASTNAME", &["lastname", "ln", "surname", "sn"]),
];

/// One row to request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// The row number in the file (the header is row 1).
    pub row: usize,
    pub email: String,
    pub common_name: String,
    pub organisation: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl Row {
    pub fn request(&self) -> Request {
        Request {
            email: self.email.clone(),
            common_name: Some(self.common_name.clone()),
            organisation: self.organisation.clone(),
            given_name: self.first_name.clone(),
            surname: self.last_name.clone(),
            ..Default::default()
        }
    }
}

/// The text of the file: by its BOM, else US-ASCII.
fn decode(bytes: &[u8]) -> Result<String, CaError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8(rest.to_vec())
            .map_err(|e| CaError::Invalid(format!("the file says UTF-8 (BOM) but is not: {e}")));
    }
    let utf16 = |rest: &[u8], le: bool| -> Result<String, CaError> {
        if rest.len() % 2 != 0 {
            return Err(CaError::Invalid(
                "the file says UTF-16 (BOM) but has an odd number of bytes".into(),
            ));
        }
        let units: Vec<u16> = rest
            .chunks(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units)
            .map_err(|e| CaError::Invalid(format!("the file says UTF-16 (BOM) but is not: {e}")))
    };
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, false);
    }
    if let Some(at) = bytes.iter().position(|b| !b.is_ascii()) {
        let row = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = bytes[line_start..at].iter().filter(|&&b| b == b',').count() + 1;
        return Err(CaError::Invalid(format!(
            "row {row}, column {column}: a byte that is not US-ASCII; save the file as UTF-8 with a byte order mark to use other characters"
        )));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The rows of a CSV file, checked.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, CaError> {
    let text = decode(bytes)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(CaError::Invalid(format!("row 1: {e}"))),
        None => {
            return Err(CaError::Invalid(
                "the file is empty: row 1 must name the columns".into(),
            ))
        }
    };
    let mut index: Vec<Option<usize>> = vec![None; COLUMNS.len()];
    for (i, name) in header.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let Some(c) = COLUMNS
            .iter()
            .position(|(_, aliases)| aliases.contains(&lower.as_str()))
        else {
            return Err(CaError::Invalid(format!(
                "row 1, column {}: {name:?} is not a column; the columns are EMAIL (e), ORGANISATION (org, o), COMMONNAME (cn), FIRSTNAME (fn, givenname, gn), LASTNAME (ln, surname, sn)",
                i + 1
            )));
        };
        if index[c].is_some() {
            return Err(CaError::Invalid(format!(
                "row 1, column {}: {} is named twice",
                i + 1,
                COLUMNS[c].0
            )));
        }
        index[c] = Some(i);
    }
    for must in [0, 2] {
        if index[must].is_none() {
            return Err(CaError::Invalid(format!(
                "row 1: the mandatory column {} is missing",
                COLUMNS[must].0
            )));
        }
    }
    let mut rows = Vec::new();
    // The line a record starts on, blank lines counted (the reader skips
    // them in its own numbering). A record's position is where the line end
    // before it starts: step over line ends to its first byte.
    let line_of = |byte: u64| {
        let t = text.as_bytes();
        let mut at = (byte as usize).min(t.len());
        while at < t.len() && matches!(t[at], b'\r' | b'\n') {
            at += 1;
        }
        t[..at].iter().filter(|&&b| b == b'\n').count() + 1
    };
    for (n, record) in records.enumerate() {
        let record = record.map_err(|e| {
            let row = e.position().map_or(n + 2, |p| line_of(p.byte()));
            CaError::Invalid(format!("row {row}: {e}"))
        })?;
        let row = record.position().map_or(n + 2, |p| line_of(p.byte()));
        if n >= MAX_ROWS {
            return Err(CaError::Invalid(format!(
                "row {row}: more than {MAX_ROWS} rows"
            )));
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let value = |c: usize| -> Result<Option<String>, CaError> {
            let Some(i) = index[c] else { return Ok(None) };
            let v = record.get(i).unwrap_or("").to_string();
            if v.chars().count() > MAX_VALUE {
                return Err(CaError::Invalid(format!(
                    "row {row}, column {} ({}): more than {MAX_VALUE} characters",
                    i + 1,
                    COLUMNS[c].0
                )));
            }
            if v.chars().any(char::is_control) {
                return Err(CaError::Invalid(format!(
                    "row {row}, column {} ({}): control characters are not allowed",
                    i + 1,
                    COLUMNS[c].0
                )));
            }
            Ok((!v.is_empty()).then_some(v))
        };
        let at = |c: usize| index[c].map_or(0, |i| i + 1);
        let email = value(0)?.ok_or_else(|| {
            CaError::Invalid(format!("row {row}, column {} (EMAIL): empty", at(0)))
        })?;
        let email = crate::params::email(&email)
            .map_err(|e| CaError::Invalid(format!("row {row}, column {} (EMAIL): {e}", at(0))))?;
        let common_name = value(2)?.ok_or_else(|| {
            CaError::Invalid(format!("row {row}, column {} (COMMONNAME): empty", at(2)))
        })?;
        rows.push(Row {
            row,
            email,
            common_name,
            organisation: value(1)?,
            first_name: value(3)?,
            last_name: value(4)?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_quotes_and_case() {
        let rows = parse(b"E,cn,Org,GivenName,sn\r\nann@example.com,\"Ann, the first\",\"Example \"\"Ltd\"\"\",Ann,Smith\r\n\r\nbo@example.com,Bo,,,\r\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].common_name, "Ann, the first");
        assert_eq!(rows[0].organisation.as_deref(), Some("Example \"Ltd\""));
        assert_eq!(rows[0].last_name.as_deref(), Some("Smith"));
        assert_eq!(rows[1].row, 4);
        assert_eq!(rows[1].organisation, None);
    }

    #[test]
    fn encodings_by_bom() {
        let mut utf8 = b"\xEF\xBB\xBFemail,cn\n".to_vec();
        utf8.extend("jo@example.com,J\u{f6}rg\n".as_bytes());
        assert_eq!(parse(&utf8).unwrap()[0].common_name, "J\u{f6}rg");
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "email,cn\nx@example.com,\u{c5}sa\n".encode_utf16() {
            utf16.extend(u.to_le_bytes());
        }
        assert_eq!(parse(&utf16).unwrap()[0].common_name, "\u{c5}sa");
        let e = parse("email,cn\nx@example.com,J\u{f6}rg\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("row 2, column 2:"), "{e}");
    }

    #[test]
    fn errors_name_row_and_column() {
        let e = parse(b"email,org\nx@example.com,X\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 1") && e.contains("COMMONNAME"), "{e}");
        let e = parse(b"email,cn,phone\n").unwrap_err().to_string();
        assert!(
            e.contains("row 1, column 3") && e.contains("\"phone\""),
            "{e}"
        );
        let long = format!("email,cn\nx@example.com,{}\n", "a".repeat(257));
        let e = parse(long.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("row 2, column 2 (COMMONNAME)") && e.contains("256"),
            "{e}"
        );
        let e = parse(b"cn,email\nX,not-an-address\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2, column 2 (EMAIL)"), "{e}");
        let e = parse(b"cn,email\n,x@example.com\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("row 2, column 1 (COMMONNAME): empty"), "{e}");
        let mut big = String::from("email,cn\n");
        for i in 0..=MAX_ROWS {
            big.push_str(&format!("u{i}@example.com,U\n"));
        }
        let e = parse(big.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("row 10002") && e.contains("10000"), "{e}");
        assert!(parse(b"").is_err());
    }
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    pub row: usize,
    pub email: String,
    pub reason: String,
}

/// What a bulk file comes to: the requests, and the rows skipped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub requests: Vec<Row>,
    pub skipped: Vec<Skipped>,
}

impl crate::Ca {
    /// What `bytes` would request (`--preview`): every row, but those whose
    /// address already has a valid signing certificate and repeats of an
    /// address earlier in the file.
    pub async fn bulk_plan(&self, bytes: &[u8]) -> Result<Plan, CaError> {
        let rows = parse(bytes)?;
        let verifier = self.trust.verifier().await?;
        let mut plan = Plan {
            requests: Vec::new(),
            skipped: Vec::new(),
        };
        for r in rows {
            let skip = |why: String| Skipped {
                row: r.row,
                email: r.email.clone(),
                reason: why,
            };
            if let Some(first) = plan
                .requests
                .iter()
                .find(|q| q.email.eq_ignore_ascii_case(&r.email))
            {
                plan.skipped.push(skip(format!(
                    "the address is requested in row {} already",
                    first.row
                )));
                continue;
            }
            if let Some((c, _)) = self
                .trust
                .signing_certificate_judged(&r.email, &verifier)
                .await?
            {
                plan.skipped.push(skip(format!(
                    "it has a valid signing certificate already ({})",
                    c.info.sha256
                )));
                continue;
            }
            plan.requests.push(r);
        }
        Ok(plan)
    }

    /// Requests every row of [`crate::Ca::bulk_plan`] with `handler`, in
    /// file order; the first failure stops it (the rows before it are
    /// done) with an error naming its row.
    pub async fn bulk(
        &self,
        bytes: &[u8],
        handler: &dyn crate::handler::RequestHandler,
    ) -> Result<(Plan, Vec<(usize, crate::handler::Outcome)>), CaError> {
        let plan = self.bulk_plan(bytes).await?;
        let mut done = Vec::new();
        for r in &plan.requests {
            let outcome = handler
                .submit(self, &r.request())
                .await
                .map_err(|e| CaError::Invalid(format!("row {} ({}): {e}", r.row, r.email)))?;
            done.push((r.row, outcome));
        }
        Ok((plan, done))
    }
}
