//! Certificate request handlers, behind one trait, so that others (EJBCA,
//! an ACME S/MIME CA) can be added: the seed's "certificate request
//! handlers".
//!
//! - [`BuiltIn`] issues at once with the default CA; it never pends.
//! - [`Csr`] makes the key and a PKCS#10 request and keeps a *pending
//!   request* (`sealgate ca pending`): the admin takes the CSR to an
//!   external CA and uploads what it issued, which is matched to its key by
//!   the public key.
//!
//! Pending requests are looked at again in the background on a schedule
//! ([`crate::Ca::retry_pending`]), so that a handler whose CA answers
//! later (a polling API) fits: its [`RequestHandler::poll`] returns the
//! certificate once there is one.

use crate::pending::{PendingRequest, PendingView};
use crate::{Ca, CaError, Issued, Request};
use openssl::x509::X509;

/// What a request came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    Issued(Box<Issued>),
    Pending(PendingView),
}

#[async_trait::async_trait]
pub trait RequestHandler: Send + Sync {
    /// The name requests and the configuration use (`builtin`, `csr`).
    fn name(&self) -> &'static str;

    /// Issues the certificate, or hands the request on and keeps it pending.
    async fn submit(&self, ca: &Ca, request: &Request) -> Result<Outcome, CaError>;

    /// The certificate of a pending request, once the CA behind it issued
    /// one; `None` while it has not.
    async fn poll(&self, ca: &Ca, pending: &PendingRequest) -> Result<Option<X509>, CaError>;
}

/// Issues at once, signed by the chosen or default CA.
pub struct BuiltIn;

#[async_trait::async_trait]
impl RequestHandler for BuiltIn {
    fn name(&self) -> &'static str {
        "builtin"
    }

    async fn submit(&self, ca: &Ca, request: &Request) -> Result<Outcome, CaError> {
        Ok(Outcome::Issued(Box::new(ca.issue(request).await?)))
    }

    async fn poll(&self, _: &Ca, _: &PendingRequest) -> Result<Option<X509>, CaError> {
        Ok(None)
    }
}

/// A PKCS#10 request for an external CA, kept pending until its
/// certificate is uploaded.
pub struct Csr;

#[async_trait::async_trait]
impl RequestHandler for Csr {
    fn name(&self) -> &'static str {
        "csr"
    }

    async fn submit(&self, ca: &Ca, request: &Request) -> Result<Outcome, CaError> {
        Ok(Outcome::Pending(
            ca.request_csr(request, self.name()).await?,
        ))
    }

    async fn poll(&self, _: &Ca, _: &PendingRequest) -> Result<Option<X509>, CaError> {
        // The certificate arrives by `sealgate ca pending upload`.
        Ok(None)
    }
}

/// The handler named `name`.
pub fn by_name(name: &str) -> Result<Box<dyn RequestHandler>, CaError> {
    match name {
        "builtin" => Ok(Box::new(BuiltIn)),
        "csr" => Ok(Box::new(Csr)),
        other => Err(CaError::Invalid(format!(
            "{other:?} is not a request handler; the handlers are: {}",
            crate::config::HANDLERS.join(", ")
        ))),
    }
}
