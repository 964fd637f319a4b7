//! An envelope address in RFC 5321 form.
//!
//! smtp-proto hands back the MAIL FROM / RCPT TO address with quoted local
//! parts unquoted (`"a b"@x` gives `a b@x`, so `"v@m> ORCPT=x"@o` gives
//! `v@m> ORCPT=x@o`), silently drops CR bytes inside the path, turns
//! `<postmaster>` into `""` (the null path), and refuses address literals
//! (`u@[192.0.2.1]`). Written back raw, such an address injects parameters or
//! commands into the upstream dialogue and gets another domain's policy.
//!
//! So the listener reads the path itself, here: [`path_command`] finds the
//! `<...>` of a MAIL or RCPT line (quotes and backslash escapes honoured),
//! parses it strictly and yields the canonical form, which is the only form
//! the rest of sealgate sees (handler, policy, logs, relay):
//!
//! * the local part as a dot-atom if it is one, else as a quoted string with
//!   `"` and `\` escaped by a backslash;
//! * `@` and the domain as given (a name or an address literal), so the
//!   domain is what follows the last `@`: it can contain no `@` and no quote;
//! * a source route (`<@a,@b:u@d>`) dropped (RFC 5321 §4.1.1.3 allows that);
//! * `<>` as `""` (MAIL only), `<postmaster>` (RCPT only, any case, no
//!   domain, RFC 5321 §4.5.1) as `postmaster` as written.
//!
//! smtp-proto still parses the command and its parameters, on a copy of the
//! line whose path is replaced by `<>` (so the two parsers cannot disagree on
//! where the path ends). Addresses that cannot be represented (control
//! characters, unbalanced quotes or angle brackets, bad syntax) get `553` with
//! `5.1.7` (sender) or `5.1.3` (recipient), as Postfix answers.

use crate::Reply;

/// Longest canonical address accepted, in octets (smtp-proto's limit, and
/// RFC 5321 §4.5.3.1.3's 256-octet path less the brackets, rounded up).
pub(crate) const MAX_ADDRESS: usize = 256;

/// The two commands that carry a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// `MAIL FROM:<reverse-path>`
    Mail,
    /// `RCPT TO:<forward-path>`
    Rcpt,
}

/// Why an address cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddressError {
    /// CR, LF, NUL or another control character inside the path.
    Control,
    /// A quoted string that does not end before the closing `>`.
    UnbalancedQuote,
    /// No closing `>`, a second `>`, or a `<` inside the path.
    UnbalancedBracket,
    /// The path is not UTF-8.
    NotUtf8,
    /// `RCPT TO:<>`.
    NullRecipient,
    /// No `@domain` (other than `RCPT TO:<postmaster>`).
    NoDomain,
    /// Longer than [`MAX_ADDRESS`].
    TooLong,
    /// Any other syntax error, with what is wrong.
    Syntax(&'static str),
}

impl AddressError {
    /// What is wrong, for the reply text.
    pub(crate) fn text(&self) -> &'static str {
        match self {
            AddressError::Control => "contains a control character (CR, LF, NUL, ...)",
            AddressError::UnbalancedQuote => "has an unbalanced quote",
            AddressError::UnbalancedBracket => "has unbalanced angle brackets",
            AddressError::NotUtf8 => "is not valid UTF-8",
            AddressError::NullRecipient => "is empty",
            AddressError::NoDomain => "has no domain",
            AddressError::TooLong => "is too long",
            AddressError::Syntax(what) => what,
        }
    }

    /// The reply: `553 5.1.7` for a sender, `553 5.1.3` for a recipient.
    pub(crate) fn reply(&self, verb: Verb) -> Reply {
        let (status, whose) = match verb {
            Verb::Mail => ((5, 1, 7), "sender"),
            Verb::Rcpt => ((5, 1, 3), "recipient"),
        };
        Reply::new(
            553,
            status,
            format!("Bad {whose} address syntax: address {}", self.text()),
        )
    }
}

/// A MAIL or RCPT command line, with its path read by us.
#[derive(Debug)]
pub(crate) struct PathCommand {
    pub(crate) verb: Verb,
    /// The address in canonical form (`""` for `<>`), or why it is refused.
    pub(crate) address: Result<String, AddressError>,
    /// The line with the path replaced by `<>`: what smtp-proto parses (the
    /// command and its parameters).
    pub(crate) neutral: Vec<u8>,
}

/// Reads the path of a `MAIL FROM:<...>` or `RCPT TO:<...>` line (`line`
/// with its line ending). `None` when the line is not one of these with a
/// `<` where the path starts: smtp-proto then says what is wrong.
pub(crate) fn path_command(line: &[u8]) -> Option<PathCommand> {
    let (verb, open) = path_start(line)?;
    let body = without_line_ending(line);
    let (address, after) = match path_end(&body[open + 1..]) {
        Ok(len) => {
            let close = open + 1 + len;
            let address = if body.get(close + 1) == Some(&b'>') {
                Err(AddressError::UnbalancedBracket)
            } else {
                canonical(&body[open + 1..close], verb)
            };
            (address, close + 1)
        }
        Err(e) => (Err(e), body.len()),
    };
    let mut neutral = Vec::with_capacity(line.len() + 2);
    neutral.extend_from_slice(&line[..open]);
    neutral.extend_from_slice(b"<>");
    neutral.extend_from_slice(&line[after..]);
    Some(PathCommand {
        verb,
        address,
        neutral,
    })
}

fn without_line_ending(line: &[u8]) -> &[u8] {
    match line.strip_suffix(b"\n") {
        Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
        None => line,
    }
}

/// `MAIL FROM:<` / `RCPT TO:<` (case-insensitive, spaces allowed around the
/// colon as smtp-proto allows them): the verb and the index of the `<`.
fn path_start(line: &[u8]) -> Option<(Verb, usize)> {
    let spaces = |mut i: usize| {
        while line.get(i) == Some(&b' ') {
            i += 1;
        }
        i
    };
    let mut i = spaces(0);
    let word = line.get(i..i + 4)?;
    let (verb, keyword): (Verb, &[u8]) = if word.eq_ignore_ascii_case(b"MAIL") {
        (Verb::Mail, b"FROM")
    } else if word.eq_ignore_ascii_case(b"RCPT") {
        (Verb::Rcpt, b"TO")
    } else {
        return None;
    };
    i += 4;
    if line.get(i) != Some(&b' ') {
        return None;
    }
    i = spaces(i);
    if !line
        .get(i..i + keyword.len())?
        .eq_ignore_ascii_case(keyword)
    {
        return None;
    }
    i = spaces(i + keyword.len());
    if line.get(i) != Some(&b':') {
        return None;
    }
    i = spaces(i + 1);
    (line.get(i) == Some(&b'<')).then_some((verb, i))
}

fn is_control_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// The index of the `>` that closes the path in `rest` (the bytes after the
/// `<`): the first one outside a quoted string.
fn path_end(rest: &[u8]) -> Result<usize, AddressError> {
    let mut in_quote = false;
    let mut i = 0;
    while let Some(&b) = rest.get(i) {
        if is_control_byte(b) {
            return Err(AddressError::Control);
        }
        if in_quote {
            match b {
                b'\\' => {
                    i += 1;
                    match rest.get(i) {
                        Some(&c) if is_control_byte(c) => return Err(AddressError::Control),
                        Some(_) => {}
                        None => break,
                    }
                }
                b'"' => in_quote = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_quote = true,
                b'>' => return Ok(i),
                _ => {}
            }
        }
        i += 1;
    }
    Err(if in_quote {
        AddressError::UnbalancedQuote
    } else {
        AddressError::UnbalancedBracket
    })
}

/// The canonical form of the path text between `<` and `>`.
pub(crate) fn canonical(path: &[u8], verb: Verb) -> Result<String, AddressError> {
    let text = std::str::from_utf8(path).map_err(|_| AddressError::NotUtf8)?;
    if text.chars().any(char::is_control) {
        return Err(AddressError::Control);
    }
    if text.is_empty() {
        return match verb {
            Verb::Mail => Ok(String::new()),
            Verb::Rcpt => Err(AddressError::NullRecipient),
        };
    }
    let mailbox = without_source_route(text)?;
    let (local, domain) = split_mailbox(mailbox)?;
    let address = match domain {
        Some(domain) => {
            check_domain(domain)?;
            if local.is_empty() {
                return Err(AddressError::Syntax("has an empty local part"));
            }
            format!("{}@{domain}", local_part(&local))
        }
        None if verb == Verb::Rcpt && local.eq_ignore_ascii_case("postmaster") => local,
        None => return Err(AddressError::NoDomain),
    };
    if address.len() > MAX_ADDRESS {
        return Err(AddressError::TooLong);
    }
    Ok(address)
}

/// A local part (unquoted value) as written in a path.
pub(crate) fn local_part(value: &str) -> String {
    if is_dot_atom(value) {
        return value.to_string();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// RFC 5321 `atext` (RFC 6531: plus any non-ASCII character).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|a| !a.is_empty() && a.chars().all(is_atext))
}

/// Drops `@a,@b:` in front of the mailbox.
fn without_source_route(text: &str) -> Result<&str, AddressError> {
    const BAD: AddressError = AddressError::Syntax("has a malformed source route");
    if !text.starts_with('@') {
        return Ok(text);
    }
    let mut rest = text;
    while let Some(r) = rest.strip_prefix('@') {
        let end = if r.starts_with('[') {
            r.find(']').map(|i| i + 1)
        } else {
            r.find([',', ':'])
        }
        .ok_or(BAD)?;
        check_domain(&r[..end]).map_err(|_| BAD)?;
        match r[end..].chars().next() {
            Some(',') => rest = &r[end + 1..],
            Some(':') => return Ok(&r[end + 1..]),
            _ => return Err(BAD),
        }
    }
    Err(BAD)
}

/// Splits a mailbox into the local part's value (unquoted, unescaped) and
/// the domain, if there is one.
fn split_mailbox(mailbox: &str) -> Result<(String, Option<&str>), AddressError> {
    let (local, rest) = if let Some(quoted) = mailbox.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, c)) => value.push(c),
                    None => return Err(AddressError::UnbalancedQuote),
                },
                Some((i, '"')) => break i + 1,
                Some((_, c)) => value.push(c),
                None => return Err(AddressError::UnbalancedQuote),
            }
        };
        (value, &quoted[end..])
    } else {
        let end = mailbox.find('@').unwrap_or(mailbox.len());
        let local = &mailbox[..end];
        for c in local.chars() {
            match c {
                '<' | '>' => return Err(AddressError::UnbalancedBracket),
                '"' => {
                    return Err(AddressError::Syntax(
                        "has a quote that does not enclose the whole local part",
                    ))
                }
                '.' => {}
                c if is_atext(c) => {}
                ' ' => return Err(AddressError::Syntax("has a space outside quotes")),
                _ => {
                    return Err(AddressError::Syntax(
                        "has a character that needs quotes in its local part",
                    ))
                }
            }
        }
        // A trailing dot (`john.@example.jp`) was accepted before; the
        // canonical form quotes it.
        if local.starts_with('.') || local.contains("..") {
            return Err(AddressError::Syntax(
                "has a misplaced dot in its local part",
            ));
        }
        (local.to_string(), &mailbox[end..])
    };
    match rest.strip_prefix('@') {
        Some(domain) => Ok((local, Some(domain))),
        None if rest.is_empty() => Ok((local, None)),
        None => Err(AddressError::Syntax(
            "has text between the quoted local part and the @",
        )),
    }
}

/// A domain name (labels of letters, digits, `-`, `_` or non-ASCII, an
/// optional final dot) or an address literal (`[192.0.2.1]`, `[IPv6:...]`).
fn check_domain(domain: &str) -> Result<(), AddressError> {
    const BAD: AddressError = AddressError::Syntax("has a malformed domain");
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal.strip_suffix(']').ok_or(BAD)?;
        // dcontent: %d33-90 / %d94-126, less `"` and `@`: no literal in use
        // has them, and the domain must hold neither (it is what follows
        // the last `@`, and quotes belong to local parts only).
        let ok = !inner.is_empty()
            && inner.bytes().all(|b| {
                (33..=126).contains(&b) && !matches!(b, b'[' | b'\\' | b']' | b'"' | b'@')
            });
        return if ok { Ok(()) } else { Err(BAD) };
    }
    if domain.contains(['<', '>']) {
        return Err(AddressError::UnbalancedBracket);
    }
    if domain.contains('@') {
        return Err(AddressError::Syntax("has more than one @ outside quotes"));
    }
    let name = domain.strip_suffix('.').unwrap_or(domain);
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        });
    if ok {
        Ok(())
    } else {
        Err(BAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::Request;

    fn rcpt(path: &str) -> Result<String, AddressError> {
        canonical(path.as_bytes(), Verb::Rcpt)
    }

    fn mail(path: &str) -> Result<String, AddressError> {
        canonical(path.as_bytes(), Verb::Mail)
    }

    /// The whole line through [`path_command`].
    fn line(text: &[u8]) -> PathCommand {
        path_command(text).expect("a MAIL or RCPT line")
    }

    #[test]
    fn dot_atoms_stay_as_they_are() {
        for a in [
            "alice@example.org",
            "Alice.B+tag@Example.ORG",
            "o'brien@example.org",
            "a!#$%&'*+-/=?^_`{|}~@example.org",
            "jörg@bücher.example",
            "u@[192.0.2.1]",
            "u@[IPv6:2001:db8::1]",
            "u@example.org.",
            "u@host_name.example",
        ] {
            assert_eq!(rcpt(a).as_deref(), Ok(a), "{a}");
            assert_eq!(mail(a).as_deref(), Ok(a), "{a}");
        }
    }

    #[test]
    fn quoted_local_parts_stay_quoted_and_dot_atoms_lose_their_quotes() {
        let cases = [
            (r#""a b"@example.org"#, r#""a b"@example.org"#),
            (r#""ab"@example.org"#, "ab@example.org"),
            (r#""a.b"@example.org"#, "a.b@example.org"),
            (r#""a..b"@example.org"#, r#""a..b"@example.org"#),
            (r#"".a"@example.org"#, r#"".a"@example.org"#),
            (r#""a@b"@example.org"#, r#""a@b"@example.org"#),
            (r#""a\"b"@example.org"#, r#""a\"b"@example.org"#),
            (r#""a\\b"@example.org"#, r#""a\\b"@example.org"#),
            (r#""a\\"@example.org"#, r#""a\\"@example.org"#),
            // A quoted-pair of an ordinary character is that character.
            (r#""a\xb"@example.org"#, "axb@example.org"),
            (r#""<a>"@example.org"#, r#""<a>"@example.org"#),
            (r#""é è"@example.org"#, r#""é è"@example.org"#),
            // A trailing dot was accepted unquoted before; now it is quoted.
            ("john.@example.jp", r#""john."@example.jp"#),
            (
                r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#,
                r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(rcpt(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn canonical_form_is_stable_and_its_domain_is_after_the_last_at() {
        let input = r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#;
        let once = rcpt(input).unwrap();
        assert_eq!(rcpt(&once).unwrap(), once, "round trip");
        assert_eq!(once.rsplit_once('@').unwrap().1, "open.example");
        for value in ["a b", "a\"b", "a\\b", "x@y", "\"", "\\", "a.b", ""] {
            let written = local_part(value);
            let address = format!("{written}@d.example");
            if value.is_empty() {
                assert_eq!(written, "\"\"");
                continue;
            }
            let (back, domain) = split_mailbox(&address).unwrap();
            assert_eq!((back.as_str(), domain), (value, Some("d.example")));
            assert_eq!(rcpt(&address).unwrap(), address);
        }
    }

    #[test]
    fn source_routes_are_dropped() {
        assert_eq!(
            rcpt("@a.example,@b.example:u@d.example").unwrap(),
            "u@d.example"
        );
        assert_eq!(rcpt("@[192.0.2.1]:u@d.example").unwrap(), "u@d.example");
        assert_eq!(
            rcpt(r#"@a.example:"x:y"@d.example"#).unwrap(),
            r#""x:y"@d.example"#
        );
        assert_eq!(rcpt("@a.example:postmaster").unwrap(), "postmaster");
        for bad in [
            "@a.example",
            "@a.example,u@d.example",
            "@:u@d.example",
            "@a b:u@d",
        ] {
            assert!(matches!(rcpt(bad), Err(AddressError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn null_path_and_postmaster() {
        assert_eq!(mail("").unwrap(), "");
        assert_eq!(rcpt(""), Err(AddressError::NullRecipient));
        assert_eq!(rcpt("postmaster").unwrap(), "postmaster");
        assert_eq!(rcpt("PostMaster").unwrap(), "PostMaster");
        assert_eq!(rcpt(r#""postmaster""#).unwrap(), "postmaster");
        // Only RCPT has the exception; a sender needs a domain.
        assert_eq!(mail("postmaster"), Err(AddressError::NoDomain));
        assert_eq!(rcpt("root"), Err(AddressError::NoDomain));
        assert_eq!(rcpt(r#""a b""#), Err(AddressError::NoDomain));
    }

    #[test]
    fn unrepresentable_addresses_are_refused() {
        use AddressError::*;
        let cases: &[(&[u8], AddressError)] = &[
            (b"RCPT TO:<a\rb@example.org>\r\n", Control),
            (b"RCPT TO:<\"a\rb\"@example.org>\r\n", Control),
            (b"RCPT TO:<\"a\0b\"@example.org>\r\n", Control),
            (b"RCPT TO:<a\0b@example.org>\r\n", Control),
            (b"RCPT TO:<\"a\\\0b\"@example.org>\r\n", Control),
            (b"RCPT TO:<\"a\tb\"@example.org>\r\n", Control),
            (b"RCPT TO:<\"a\x7fb\"@example.org>\r\n", Control),
            (b"RCPT TO:<\"a\xc2\x85b\"@example.org>\r\n", Control),
            (b"RCPT TO:<\"ab@example.org>\r\n", UnbalancedQuote),
            (b"RCPT TO:<ab\"@example.org>\r\n", UnbalancedQuote),
            (b"RCPT TO:<\"a\\\"@example.org>\r\n", UnbalancedQuote),
            (b"RCPT TO:<ab@example.org\r\n", UnbalancedBracket),
            (b"RCPT TO:<ab@example.org>>\r\n", UnbalancedBracket),
            (b"RCPT TO:<a<b@example.org>\r\n", UnbalancedBracket),
            (b"RCPT TO:<ab@exa<mple.org>\r\n", UnbalancedBracket),
            (b"RCPT TO:<\xff@example.org>\r\n", NotUtf8),
            (b"RCPT TO:<>\r\n", NullRecipient),
            (b"RCPT TO:<root>\r\n", NoDomain),
            (b"MAIL FROM:<postmaster>\r\n", NoDomain),
        ];
        for (input, want) in cases {
            let got = line(input).address;
            assert_eq!(got.as_ref(), Err(want), "{}", input.escape_ascii());
        }
        let syntax: &[&str] = &[
            r#"a"b"c@example.org"#,
            r#""a""b"@example.org"#,
            r#""a"b@example.org"#,
            r#"a@"x@y""#,
            "a b@example.org",
            " a@example.org",
            "a\\b@example.org",
            "a..b@example.org",
            ".a@example.org",
            "@example.org",
            r#"""@example.org"#,
            "a@",
            "a@b@example.org",
            "a@exa mple.org",
            "a@example..org",
            "a@.example.org",
            "a@[]",
            "a@[1.2.3.4",
            "a@[1 2]",
            "a@x.example;b",
        ];
        for input in syntax {
            assert!(
                matches!(rcpt(input), Err(AddressError::Syntax(_))),
                "{input}: {:?}",
                rcpt(input)
            );
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(rcpt(&long), Err(AddressError::TooLong));
    }

    #[test]
    fn address_literals_hold_no_quote_and_no_at() {
        // Found by fuzzing (smtp_decode): a literal with quotes was taken,
        // so the domain held a quote; with an `@` inside, the part after
        // the last `@` was not the domain.
        for path in [
            "u@[IP\"\"\"b{{\"\"81]",
            "u@[\"]",
            "victim@[x@mandatory.example]",
        ] {
            assert!(rcpt(path).is_err(), "{path} taken");
        }
        assert_eq!(rcpt("u@[192.0.2.1]").unwrap(), "u@[192.0.2.1]");
        assert_eq!(
            rcpt("u@[IPv6:2001:db8::1]").unwrap(),
            "u@[IPv6:2001:db8::1]"
        );
    }

    #[test]
    fn the_path_ends_at_the_first_bracket_outside_quotes() {
        let c = line(b"RCPT TO:<\"victim@mandatory.example> ORCPT=rfc822;x\"@open.example>\r\n");
        assert_eq!(c.verb, Verb::Rcpt);
        assert_eq!(
            c.address.unwrap(),
            r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#
        );
        assert_eq!(c.neutral, b"RCPT TO:<>\r\n");

        let c = line(b"mail from : <\"a>b\"@x.example> SIZE=10 AUTH=<>\n");
        assert_eq!(c.verb, Verb::Mail);
        assert_eq!(c.address.unwrap(), r#""a>b"@x.example"#);
        assert_eq!(c.neutral, b"mail from : <> SIZE=10 AUTH=<>\n");

        // Not ours: smtp-proto reports these.
        for other in [
            &b"RCPT TO:a@example.org\r\n"[..],
            b"RCPT TO <a@example.org>\r\n",
            b"RCPTX TO:<a@example.org>\r\n",
            b"MAIL FROMX:<a@example.org>\r\n",
            b"MAIL\rFROM:<a@example.org>\r\n",
            b"DATA\r\n",
            b"MAI",
        ] {
            assert!(path_command(other).is_none(), "{}", other.escape_ascii());
        }
    }

    #[test]
    fn refusals_are_553_with_the_verbs_status() {
        let r = AddressError::Control.reply(Verb::Rcpt);
        assert_eq!((r.code, r.status), (553, (5, 1, 3)));
        assert!(r.text.contains("control character"), "{}", r.text);
        let r = AddressError::UnbalancedQuote.reply(Verb::Mail);
        assert_eq!((r.code, r.status), (553, (5, 1, 7)));
        assert!(r.text.contains("unbalanced quote"), "{}", r.text);
    }

    /// What smtp-proto 0.2 itself makes of paths: the reasons this module
    /// exists. If one of these changes, revisit the module comment.
    #[test]
    fn what_smtp_proto_does_with_paths() {
        fn proto(line: &[u8]) -> Result<String, smtp_proto::Error> {
            match Request::parse(&mut line.iter())? {
                Request::Rcpt { to } => Ok(to.address.into_owned()),
                Request::Mail { from } => Ok(from.address.into_owned()),
                other => panic!("{other:?}"),
            }
        }
        let unquoted = [
            (
                &b"RCPT TO:<\"victim@mandatory.example> ORCPT=rfc822;x\"@open.example>\r\n"[..],
                "victim@mandatory.example> ORCPT=rfc822;x@open.example",
            ),
            (b"RCPT TO:<\"a b\"@x.example>\r\n", "a b@x.example"),
            (b"RCPT TO:<\"a\\\"b\"@x.example>\r\n", "a\"b@x.example"),
            (b"RCPT TO:<\"a\\\\b\"@x.example>\r\n", "a\\b@x.example"),
            (b"RCPT TO:<a\"b\"c@x.example>\r\n", "abc@x.example"),
            (b"RCPT TO:<a@\"x@y\">\r\n", "a@x@y"),
            // CR bytes vanish, NUL inside quotes stays.
            (b"RCPT TO:<a\rb@x.example>\r\n", "ab@x.example"),
            (b"RCPT TO:<\"a\rb\"@x.example>\r\n", "ab@x.example"),
            (b"RCPT TO:<\"a\0b\"@x.example>\r\n", "a\0b@x.example"),
            // postmaster (any case, quoted, routed) becomes the null path.
            (b"RCPT TO:<postmaster>\r\n", ""),
            (b"RCPT TO:<PostMaster>\r\n", ""),
            (b"RCPT TO:<\"postmaster\">\r\n", ""),
            (b"RCPT TO:<@a,@b:postmaster>\r\n", ""),
            (b"MAIL FROM:<postmaster>\r\n", ""),
            (b"RCPT TO:<>\r\n", ""),
            (b"RCPT TO:<@a,@b:u@d.example>\r\n", "u@d.example"),
            (b"RCPT TO:<ab.@x.example>\r\n", "ab.@x.example"),
        ];
        for (input, want) in unquoted {
            assert_eq!(
                proto(input).as_deref(),
                Ok(want),
                "{}",
                input.escape_ascii()
            );
        }
        for refused in [
            &b"RCPT TO:<u@[192.0.2.1]>\r\n"[..],
            b"RCPT TO:<u@[IPv6:2001:db8::1]>\r\n",
            b"RCPT TO:<root>\r\n",
            b"RCPT TO:<\"ab@x.example>\r\n",
            b"RCPT TO:<a\0b@x.example>\r\n",
            b"RCPT TO:<\"\"@x.example>\r\n",
        ] {
            assert_eq!(
                proto(refused),
                Err(smtp_proto::Error::InvalidRecipientAddress),
                "{}",
                refused.escape_ascii()
            );
        }
        // The neutral path keeps the parameters parseable.
        assert_eq!(
            proto(b"MAIL FROM:<> SIZE=10 AUTH=<>\r\n").as_deref(),
            Ok("")
        );
    }
}
