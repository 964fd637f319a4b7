//! The policy decides on the domain the upstream will see. The listener hands
//! over addresses in RFC 5321 form (smtp-server's `address.rs`): a local part
//! that is not a dot-atom stays quoted, so the domain is what follows the last
//! `@` (a domain holds no `@`), which is what `settings_for` takes.

use sealgate_policy::{DomainPolicy, Mode, Policy, PolicyConfig};

fn policy() -> Policy {
    let mut c = PolicyConfig {
        mode: Mode::Opportunistic,
        ..Default::default()
    };
    c.domains.insert(
        "mandatory.example".into(),
        DomainPolicy {
            mode: Some(Mode::Mandatory),
            ..Default::default()
        },
    );
    c.domains.insert(
        "open.example".into(),
        DomainPolicy {
            mode: Some(Mode::Off),
            ..Default::default()
        },
    );
    Policy::new(c).unwrap()
}

#[test]
fn a_quoted_local_part_does_not_choose_the_domain() {
    let p = policy();
    for address in [
        r#""victim@mandatory.example"@open.example"#,
        r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#,
        r#""a\"@mandatory.example"@open.example"#,
    ] {
        let s = p.settings_for(address);
        assert_eq!(
            (s.matched.as_str(), s.mode),
            ("open.example", Mode::Off),
            "{address}"
        );
    }
    let s = p.settings_for(r#""x@open.example"@mandatory.example"#);
    assert_eq!(
        (s.matched.as_str(), s.mode),
        ("mandatory.example", Mode::Mandatory)
    );
    // `RCPT TO:<postmaster>` has no domain: the global settings apply.
    let s = p.settings_for("postmaster");
    assert_eq!(
        (s.matched.as_str(), s.mode),
        ("global", Mode::Opportunistic)
    );
}
