//! The one unsafe module: CMS encryption with per-recipient key-transport
//! parameters (RSA-OAEP), which the `openssl` crate does not expose.
//!
//! `CmsContentInfo::encrypt` adds every recipient with OpenSSL's defaults
//! (RSA PKCS#1 v1.5 key transport, ECDH for EC keys). For RSA-OAEP the
//! recipients must be added one by one with `CMS_KEY_PARAM`, their key
//! context set to OAEP padding with SHA-256 (and MGF1-SHA-256), and the
//! structure finished afterwards: OpenSSL's documented sequence (CMS_encrypt
//! with CMS_PARTIAL, CMS_add1_recipient_cert, CMS_RecipientInfo_get0_pkey_ctx,
//! CMS_final). The three functions openssl-sys lacks (without its bindgen
//! feature) are declared here with their OpenSSL 3 signatures.
//!
//! Audit notes: every pointer comes from OpenSSL or from a live Rust value
//! that outlives the call; every returned pointer is checked for NULL; the
//! CMS structure is owned by a `CmsContentInfo` from the moment it exists,
//! so it is freed on every path; the input BIO is freed by a guard; nothing
//! here keeps a pointer past the function.

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::cms::CmsContentInfo;
use openssl::error::ErrorStack;
use openssl::md::Md;
use openssl::pkey_ctx::PkeyCtxRef;
use openssl::rsa::Padding;
use openssl::symm::Cipher;
use openssl::x509::X509;
use openssl_sys as ffi;
use std::os::raw::{c_int, c_uint, c_void};

extern "C" {
    fn CMS_add1_recipient_cert(
        cms: *mut ffi::CMS_ContentInfo,
        recip: *mut ffi::X509,
        flags: c_uint,
    ) -> *mut c_void;
    fn CMS_RecipientInfo_get0_pkey_ctx(ri: *mut c_void) -> *mut ffi::EVP_PKEY_CTX;
    fn CMS_final(
        cms: *mut ffi::CMS_ContentInfo,
        data: *mut ffi::BIO,
        dcont: *mut ffi::BIO,
        flags: c_uint,
    ) -> c_int;
}

/// Frees a BIO when dropped.
struct Bio(*mut ffi::BIO);

impl Drop for Bio {
    fn drop(&mut self) {
        // SAFETY: the pointer came from BIO_new_mem_buf and is freed once.
        unsafe { ffi::BIO_free_all(self.0) };
    }
}

/// CMS EnvelopedData (or AuthEnvelopedData for GCM) of `data` for `certs`,
/// every RSA recipient with RSA-OAEP (SHA-256, MGF1-SHA-256) key transport;
/// other keys (EC) with OpenSSL's default for them. The DER.
pub(crate) fn encrypt_rsa_oaep(
    certs: &[X509],
    data: &[u8],
    cipher: Cipher,
) -> Result<Vec<u8>, ErrorStack> {
    let flags = ffi::CMS_BINARY | ffi::CMS_PARTIAL;
    let len = c_int::try_from(data.len()).map_err(|_| ErrorStack::get())?;
    // SAFETY: CMS_encrypt with a NULL certificate stack and a NULL input
    // BIO under CMS_PARTIAL returns a fresh structure (or NULL, checked),
    // which `cms` owns from here on.
    let cms = unsafe {
        let p = ffi::CMS_encrypt(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            cipher.as_ptr(),
            flags,
        );
        if p.is_null() {
            return Err(ErrorStack::get());
        }
        CmsContentInfo::from_ptr(p)
    };
    for cert in certs {
        let is_rsa = cert.public_key()?.id() == openssl::pkey::Id::RSA;
        // Only an RSA recipient's key parameters are left to us (set below);
        // others get OpenSSL's defaults.
        let add_flags = if is_rsa {
            ffi::CMS_BINARY | ffi::CMS_KEY_PARAM
        } else {
            ffi::CMS_BINARY
        };
        // SAFETY: both pointers are live (`cms` and `cert` outlive the
        // call); the recipient info returned belongs to `cms`.
        let ri = unsafe { CMS_add1_recipient_cert(cms.as_ptr(), cert.as_ptr(), add_flags) };
        if ri.is_null() {
            return Err(ErrorStack::get());
        }
        if is_rsa {
            // SAFETY: `ri` is a live recipient info of `cms`; its key
            // context (checked for NULL) belongs to it and is only used
            // within this block.
            let ctx = unsafe {
                let p = CMS_RecipientInfo_get0_pkey_ctx(ri);
                if p.is_null() {
                    return Err(ErrorStack::get());
                }
                PkeyCtxRef::<openssl::pkey::Public>::from_ptr_mut(p)
            };
            ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
            ctx.set_rsa_oaep_md(Md::sha256())?;
            ctx.set_rsa_mgf1_md(Md::sha256())?;
        }
    }
    // SAFETY: BIO_new_mem_buf reads `data` (live for this function) and
    // does not write it; the BIO is freed by the guard.
    let input = unsafe {
        let p = ffi::BIO_new_mem_buf(data.as_ptr() as *const c_void, len);
        if p.is_null() {
            return Err(ErrorStack::get());
        }
        Bio(p)
    };
    // SAFETY: `cms` and `input` are live; CMS_final reads the BIO to its end.
    if unsafe { CMS_final(cms.as_ptr(), input.0, std::ptr::null_mut(), flags) } != 1 {
        return Err(ErrorStack::get());
    }
    cms.to_der()
}
