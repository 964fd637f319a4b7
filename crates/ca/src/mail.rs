//! The certificate mail: a user's PKCS#12 file, sent through sealgate's own
//! queue as a clear message from the CA email (the seed's "Send
//! certificates" and "Send key file to user by email"). The password is
//! never in it: it goes to the admin, who gives it to the user by another
//! channel.

use mail_builder::headers::raw::Raw;
use mail_builder::MessageBuilder;

/// One PKCS#12 attachment: its file name and bytes.
pub struct KeyFile {
    pub name: String,
    pub p12: Vec<u8>,
}

/// The message to `to` from `from` carrying `files`.
pub fn certificate_mail(from: &str, to: &str, files: &[KeyFile], message_id: &str) -> Vec<u8> {
    let text = format!(
        "Hello,\r\n\r\n\
         attached is your S/MIME certificate with its private key, as a PKCS#12 file{}.\r\n\
         Import it into your mail client to read encrypted mail and to sign yours.\r\n\r\n\
         The file is protected by a password, which you get from your administrator\r\n\
         by another channel. It is not in this message.\r\n",
        if files.len() > 1 { "s" } else { "" }
    );
    let mut b = MessageBuilder::new()
        .from(from)
        .to(to)
        .subject("Your S/MIME certificate")
        .message_id(message_id)
        .header("Auto-Submitted", Raw::new("auto-generated"))
        .text_body(text);
    for f in files {
        b = b.attachment("application/pkcs12", f.name.as_str(), f.p12.as_slice());
    }
    b.write_to_vec().unwrap_or_default()
}

/// A file name for the PKCS#12 of `email`: letters, digits, `.`, `-`, `_`.
pub fn file_name(email: &str, n: usize) -> String {
    let base: String = email
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if n == 0 {
        format!("{base}.p12")
    } else {
        format!("{base}-{}.p12", n + 1)
    }
}
