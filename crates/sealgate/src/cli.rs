//! The command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// SMTP encryption gateway: receives mail over SMTP, encrypts it for each
/// recipient with OpenPGP (PGP/MIME) or S/MIME, and relays it upstream.
#[derive(Debug, Parser)]
#[command(name = "sealgate", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Without it sealgate runs on its embedded
    /// defaults. Any key can be overridden as SEALGATE__SECTION__KEY.
    #[arg(
        short,
        long,
        global = true,
        env = "SEALGATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (SIGHUP re-reads the configuration's policy and the key
    /// files, SIGTERM/SIGINT stop it).
    Serve,
    /// Check the configuration and the key files, print a summary, exit 0 if valid.
    CheckConfig,
    /// Ask every configured key source for ADDRESS and explain which keys would
    /// be used and why others would not.
    Verify {
        /// The recipient address to look up.
        address: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Manage keys and certificates stored in the database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the cache of remote key source answers (LDAP, key servers, WKD).
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Look at and act on the mail queue (works against a running gateway).
    #[command(subcommand)]
    Queue(QueueCommand),
    /// The S/MIME certificate store: end-user and intermediate certificates,
    /// each with its status (valid, or why not).
    #[command(subcommand)]
    Certs(CertsCommand),
    /// The root store: the CA certificates trusted as anchors (empty by default).
    #[command(subcommand)]
    Roots(RootsCommand),
    /// The certificate trust list: certificates white-listed (trusted
    /// without a root) or black-listed (never used, nor what they issued).
    #[command(subcommand)]
    Ctl(CtlCommand),
    /// The CRL store: revocation lists of the CAs, downloaded from the
    /// certificates' distribution points or imported.
    #[command(subcommand)]
    Crl(CrlCommand),
    /// What harvesting learned from incoming mail, and what it refused.
    #[command(subcommand)]
    Harvest(HarvestCommand),
    /// The encryption policy: global, per domain and per user, from the
    /// configuration file and the store (store values win at the same level).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The built-in certificate authority: create CAs, issue S/MIME
    /// certificates (trusted and used at once), PKCS#12 files, CRLs.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Admin accounts and API tokens of the admin HTTP API (/api/v1 on the
    /// admin listener), kept in the store for every instance.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Read a password on standard input and print a hash for smtp.auth_users.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an admin account; the password (at least 12 characters) is the
    /// first line of standard input.
    Add {
        name: String,
        /// Set a new password for an existing account.
        #[arg(long)]
        replace: bool,
    },
    /// The admin accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an admin account and revoke its tokens.
    Remove { name: String },
    /// API tokens: `Authorization: Bearer sgt_...`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token acting as ADMIN; it is printed this once (only its
    /// hash is stored).
    Create {
        admin: String,
        /// What the token is for.
        #[arg(long)]
        name: String,
    },
    /// Every token (never their secrets), revoked ones too.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once on every instance.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a CA: a root (into the root store) and an intermediate signed
    /// by it, their keys sealed under the key-encryption key. 1024-bit keys
    /// and SHA-1 are refused.
    Create {
        /// Common name of the root.
        #[arg(long)]
        root_cn: String,
        /// Common name of the intermediate (must differ from the root's).
        #[arg(long)]
        intermediate_cn: String,
        /// An email address for both certificates.
        #[arg(long)]
        email: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// rsa2048, rsa3072, rsa4096, p256 or p384.
        #[arg(long, default_value = "rsa4096")]
        key: String,
        /// sha256, sha384 or sha512.
        #[arg(long, default_value = "sha256")]
        signature: String,
        /// Make it the default CA (the first CA is the default anyway).
        #[arg(long)]
        default: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the CAs (the default one is marked).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Select the default CA (the one requests and CRLs use).
    Default {
        /// The intermediate's SHA-256 thumbprint (at least 8 digits).
        thumbprint: String,
    },
    /// The CA configuration: defaults of new certificates, CA email,
    /// PKCS#12 passwords, CRL distribution point, request handler.
    #[command(subcommand)]
    Config(CaConfigCommand),
    /// Request a certificate with the built-in handler: issued at once by
    /// the default CA, stored with its key, used for mail to EMAIL at once.
    Request {
        #[arg(long)]
        email: String,
        /// Common name (default: the configuration's default_common_name).
        #[arg(long)]
        cn: Option<String>,
        #[arg(long)]
        organisation: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// Validity in days (default: the configuration's).
        #[arg(long)]
        days: Option<u32>,
        /// Key (default: the configuration's).
        #[arg(long)]
        key: Option<String>,
        /// Signature algorithm (default: the configuration's).
        #[arg(long)]
        signature: Option<String>,
        /// Add the CRL distribution point (default: the configuration's).
        #[arg(long)]
        crl_dp: bool,
        /// Leave the CRL distribution point out.
        #[arg(long, conflicts_with = "crl_dp")]
        no_crl_dp: bool,
        /// The CA (default: the default CA).
        #[arg(long)]
        ca: Option<String>,
        /// Write the PKCS#12 (certificate, key, chain) here; the generated
        /// password is printed.
        #[arg(long, value_name = "FILE")]
        p12_out: Option<PathBuf>,
        /// 3DES/SHA-1 PKCS#12 for old importers (gpgsm 2.2).
        #[arg(long)]
        legacy: bool,
        /// Mail the PKCS#12 to EMAIL from the CA email, through the queue
        /// (the password is printed, never mailed).
        #[arg(long)]
        send: bool,
        /// Add the user object: EMAIL gets a policy entry of its own in the
        /// store (`sign = "opportunistic"`: mail from it is signed with the
        /// new certificate).
        #[arg(long)]
        add_user: bool,
        /// The request handler: builtin (issued at once) or csr (a pending
        /// request with a PKCS#10 for an external CA). Default: the
        /// configuration's default_handler.
        #[arg(long)]
        handler: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Mail ADDRESS the PKCS#12 of its certificates with their keys, from
    /// the CA email, through the queue. The password is printed here, never
    /// put in the mail.
    Send {
        address: String,
        /// A certificate to send (thumbprint; repeatable). Default: every
        /// unexpired certificate sealgate holds a key for that names ADDRESS.
        #[arg(long = "cert", value_name = "THUMBPRINT")]
        certs: Vec<String>,
        /// Send certificates that do not name ADDRESS.
        #[arg(long)]
        allow_mismatch: bool,
        /// The password (first line of the file); default: a generated one.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        #[arg(long)]
        legacy: bool,
        #[arg(long)]
        json: bool,
    },
    /// Export the PKCS#12 of a stored certificate with its key.
    Export {
        /// The certificate's SHA-256 thumbprint (at least 8 digits).
        thumbprint: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The password (first line of the file); default: a generated
        /// one, printed.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        #[arg(long)]
        legacy: bool,
    },
    /// CRLs of the built-in CA.
    #[command(subcommand)]
    Crl(CaCrlCommand),
    /// Requests waiting for an external CA (the csr handler).
    #[command(subcommand)]
    Pending(CaPendingCommand),
    /// Request certificates for every row of a CSV file (columns EMAIL,
    /// COMMONNAME mandatory; ORGANISATION, FIRSTNAME, LASTNAME; aliases
    /// e, cn, org/o, fn/givenname/gn, ln/surname/sn). Addresses with a valid
    /// signing certificate are skipped. The whole file is checked first.
    Bulk {
        file: PathBuf,
        /// Show what would be requested; request nothing.
        #[arg(long)]
        preview: bool,
        /// The request handler (default: the configuration's).
        #[arg(long)]
        handler: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaPendingCommand {
    /// Every pending request.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The PKCS#10 request (PEM) of a pending request, for the external CA.
    Download {
        id: String,
        /// Write it here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The certificate(s) the external CA issued (PEM, DER or .p7b): each
    /// is matched to its request by the public key, stored with the key and
    /// used at once.
    Upload { file: PathBuf },
    /// Look at a pending request again now.
    Reschedule { id: String },
    /// Drop a pending request and its key.
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CaConfigCommand {
    /// Every CA setting with its value.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Set one CA setting (checked; the valid choices are named).
    Set { name: String, value: String },
}

#[derive(Debug, Subcommand)]
pub enum CaCrlCommand {
    /// Create a CRL: the serials given (hex) and, unless --replace, those
    /// of the CA's earlier CRLs. It goes into the CRL store (sealgate stops
    /// using the certificates at once) and is published at
    /// /crl/<CA>.crl on the admin listener.
    Create {
        /// The CA (default: the default CA).
        #[arg(long)]
        ca: Option<String>,
        /// Serial numbers to revoke, in hex.
        #[arg(long = "serial", value_name = "HEX")]
        serials: Vec<String>,
        /// Days until the next update.
        #[arg(long, default_value_t = 30)]
        next_update_days: u32,
        /// Drop the earlier CRLs' serials ("update existing CRL" off).
        #[arg(long)]
        replace: bool,
        /// Signature algorithm (default: the configuration's).
        #[arg(long)]
        signature: Option<String>,
        /// Also write the CRL (DER) here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Every effective setting for ADDRESS and the level it came from
    /// (default, global, domain, user; file or store).
    Show {
        /// The recipient (or sender) address.
        address: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set a setting in the store: running gateways obey it within
    /// policy.reload_secs, without a restart.
    Set {
        /// `global`, `@domain` (or `*.domain`), or an address.
        scope: String,
        /// The setting (mode, methods, smime_cipher, ...; `policy show`
        /// lists them).
        name: String,
        /// The value as in the configuration file: `mandatory`,
        /// `pgp,smime` or `["pgp","smime"]`, `true`.
        value: String,
    },
    /// Remove a setting from the store: the scope inherits it again (from
    /// the file's value at the same level, or the level above).
    Unset {
        /// `global`, `@domain` (or `*.domain`), or an address.
        scope: String,
        /// The setting.
        name: String,
    },
    /// Every setting the store holds, by scope.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum HarvestCommand {
    /// The newest harvest decisions (kept or refused, and why), newest first.
    Log {
        /// Only the decisions about this address.
        #[arg(long)]
        address: Option<String>,
        /// How many at most.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrlCommand {
    /// Download the CRL of every distribution point named by a stored
    /// certificate (http, https, ldap, ldaps) now; exit 1 if one failed.
    Update,
    /// Add CRLs (DER or PEM) from files.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the CRLs: valid or why not, issuer, updates, entries, source.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one CRL.
    Show {
        /// Its id (SHA-256 of its DER, as `crl list` shows; at least 8 digits).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Put a certificate on the list (replacing its entry if it has one).
    Add {
        /// Its SHA-512 thumbprint (the certificate need not be in the store),
        /// or the SHA-256 (at least its first 8 digits) of a stored one.
        thumbprint: String,
        /// Trust it without a path to a root. Not inherited by what it issued.
        #[arg(long, conflicts_with = "black", required_unless_present = "black")]
        white: bool,
        /// Never use it, nor any certificate it issued (directly or not).
        #[arg(long)]
        black: bool,
        /// With --white: valid outside its validity period too.
        #[arg(long, requires = "white")]
        allow_expired: bool,
    },
    /// List the entries.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an entry.
    Remove {
        /// SHA-512 thumbprint (or its start), or the SHA-256 of a stored certificate.
        thumbprint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// List certificates: status, SHA-256 thumbprint, addresses, subject, expiry.
    List {
        /// Only certificates naming this address.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// Only expired certificates.
        #[arg(long, conflicts_with = "unexpired")]
        expired: bool,
        /// Only certificates not expired.
        #[arg(long)]
        unexpired: bool,
        /// Only certificates whose private key sealgate holds.
        #[arg(long)]
        with_key: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show one certificate: every field, its status and why, and its chain.
    Show {
        /// SHA-256 or SHA-512 thumbprint (hex, any case; at least its first 8 digits).
        thumbprint: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Import certificates (PEM, DER .cer, PKCS#7 .p7b). CA certificates
    /// become intermediates that chains are built through. PKCS#12 files
    /// (.p12, .pfx) bring a private key: it is stored sealed under the
    /// key-encryption key (store.key_encryption_key_file or
    /// SEALGATE_KEY_ENCRYPTION_KEY).
    Import {
        /// The password of the .p12/.pfx files (the file's first line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove a certificate from the store.
    Remove {
        /// SHA-256 or SHA-512 thumbprint (at least its first 8 digits).
        thumbprint: String,
    },
    /// Select a certificate for a user or a domain by hand: S/MIME copies
    /// for them are also encrypted to it while it is valid, whether or not
    /// it names them.
    Select {
        /// A mail address, or @domain for everyone there.
        target: String,
        /// SHA-256 or SHA-512 thumbprint of a stored certificate.
        thumbprint: String,
    },
    /// Undo `certs select` (automatic selections cannot be deselected).
    Deselect {
        /// The address or @domain it was selected for.
        target: String,
        thumbprint: String,
    },
    /// Choose the certificate a user or a domain signs with (one whose
    /// private key sealgate holds); replaces the previous choice.
    SignSelect {
        /// A mail address, or @domain.
        target: String,
        thumbprint: String,
    },
    /// Go back to the automatic signing certificate for a user or a domain.
    SignAuto {
        /// A mail address, or @domain.
        target: String,
    },
    /// What is selected for an address: by hand (its own and its domain's)
    /// and automatically (stored certificates that name it), with status.
    Selected {
        address: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RootsCommand {
    /// Add CA certificates (PEM, DER, p7b) to the root store.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the root store.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove a root.
    Remove {
        /// SHA-256 or SHA-512 thumbprint (at least its first 8 digits).
        thumbprint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List queued messages, oldest first: id, arrival, size, sender, recipient states.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Only messages with a deferred recipient.
        #[arg(long, conflicts_with = "held")]
        deferred: bool,
        /// Only messages with a held recipient.
        #[arg(long)]
        held: bool,
    },
    /// Show one message: envelope, copies, and each recipient's state,
    /// attempts, last error and next attempt (never the content).
    Show {
        /// The queue id (as in the 250 reply and `queue list`).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Try waiting recipients now (one message, or every message).
    Flush {
        /// The queue id; without it, the whole queue.
        id: Option<String>,
    },
    /// Keep a message aside: it is not tried until released.
    Hold { id: String },
    /// Put a held message back in the queue, due now.
    Release { id: String },
    /// Remove a message from the queue; nobody is told.
    Delete { id: String },
    /// Give up on a message now: its waiting recipients fail and the sender
    /// gets a failure DSN.
    Bounce { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Mark cached answers stale so the next message asks the sources again.
    Expire {
        /// Only this address (default: every address).
        address: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Import OpenPGP keys (armored or binary keyrings) and X.509 certificates
    /// (PEM, DER, PKCS#7 .p7b) into the store.
    Import {
        /// Record the keys as a user's own upload for this address: the
        /// `upload` source, which outranks every other source.
        #[arg(long = "for", value_name = "ADDRESS")]
        for_address: Option<String>,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List the stored keys by address: each binding's validation level,
    /// source, and which key is active (used) for the address.
    List {
        /// Only this address.
        #[arg(long)]
        address: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Confirm a key for an address (admin-confirmed `fingerprint` level): it
    /// becomes the address's active key, and only another confirmed key, or
    /// the key becoming unusable (expired, revoked), moves it.
    Trust {
        /// The mail address.
        address: String,
        /// The key's fingerprint, as `keys list` shows it.
        fingerprint: String,
    },
    /// Hold OpenPGP secret keys of internal users (armored or binary, as
    /// `gpg --export-secret-keys` writes them), so that `incoming.decrypt`
    /// can open PGP/MIME mail sent to them. They are stored only sealed
    /// under the key-encryption key (store.key_encryption_key_file).
    ImportSecret {
        /// A file whose first line is the passphrase of protected keys.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Files with secret keys.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove stored keys by fingerprint, or every key bound to an address
    /// (a held secret key of that fingerprint too).
    Remove {
        /// Fingerprints (as shown by `keys list`) or addresses.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}
