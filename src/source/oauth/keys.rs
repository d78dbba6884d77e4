//! The service app's private key (`okta.private_key_file`) and this process's DPoP key.

use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, RsaKeyPair,
};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

use super::OAuthBuildError;

/// The service app's private key (`okta.private_key_file`), parsed and test-signed once.
#[derive(Clone)]
pub struct ClientKey {
    pub(super) key: EncodingKey,
    pub(super) alg: Algorithm,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Why a private key file cannot be used. Shown after the file name; never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("holds no PEM block; expected a private key in PEM (-----BEGIN PRIVATE KEY-----)")]
    NotPem,
    #[error("holds an encrypted private key; export it without a passphrase (PKCS#8 PEM)")]
    Encrypted,
    #[error(
        "holds a {0}, not a private key; use the private key whose public key is in the Okta app"
    )]
    NotPrivate(String),
    #[error("holds a {0} block; expected an RSA or EC private key in PEM")]
    Unsupported(String),
    #[error("is not a usable RSA (2048 bits or more) or EC P-256/P-384 private key")]
    Unusable,
}

impl ClientKey {
    /// Parses a PEM private key: PKCS#8 (`PRIVATE KEY`, RSA or EC), PKCS#1 (`RSA PRIVATE KEY`)
    /// or SEC1 (`EC PRIVATE KEY`). RSA signs RS256; EC P-256 ES256 and P-384 ES384.
    pub fn from_pem(text: &str) -> Result<ClientKey, KeyError> {
        let blocks = pem::parse_many(text).map_err(|_| KeyError::NotPem)?;
        let mut other = None;
        for block in &blocks {
            match block.tag() {
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                    if block
                        .headers()
                        .get("Proc-Type")
                        .is_some_and(|v| v.contains("ENCRYPTED"))
                    {
                        return Err(KeyError::Encrypted);
                    }
                    return ClientKey::from_block(block);
                }
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                tag => {
                    other.get_or_insert_with(|| tag.to_owned());
                }
            }
        }
        Err(match other {
            None => KeyError::NotPem,
            Some(tag) if tag.ends_with("PUBLIC KEY") || tag == "CERTIFICATE" => {
                KeyError::NotPrivate(tag)
            }
            Some(tag) => KeyError::Unsupported(tag.chars().take(40).collect()),
        })
    }

    fn from_block(block: &pem::Pem) -> Result<ClientKey, KeyError> {
        let der = block.contents();
        let curves: [(Algorithm, &'static EcdsaSigningAlgorithm); 2] = [
            (Algorithm::ES256, &ECDSA_P256_SHA256_FIXED_SIGNING),
            (Algorithm::ES384, &ECDSA_P384_SHA384_FIXED_SIGNING),
        ];
        let (key, alg) = match block.tag() {
            "RSA PRIVATE KEY" => (EncodingKey::from_rsa_der(der), Algorithm::RS256),
            // jsonwebtoken takes RSA keys as PKCS#1; its PEM reader unwraps PKCS#8.
            _ if RsaKeyPair::from_pkcs8(der).is_ok() => (
                EncodingKey::from_rsa_pem(pem::encode(block).as_bytes())
                    .map_err(|_| KeyError::Unusable)?,
                Algorithm::RS256,
            ),
            "PRIVATE KEY" => curves
                .iter()
                .find(|(_, signing)| EcdsaKeyPair::from_pkcs8(signing, der).is_ok())
                .map(|(alg, _)| (EncodingKey::from_ec_der(der), *alg))
                .ok_or(KeyError::Unusable)?,
            // SEC1: re-encoded as PKCS#8, the form jsonwebtoken signs with.
            _ => curves
                .iter()
                .find_map(|(alg, signing)| {
                    let pair = EcdsaKeyPair::from_private_key_der(signing, der).ok()?;
                    let pkcs8 = pair.to_pkcs8v1().ok()?;
                    Some((EncodingKey::from_ec_der(pkcs8.as_ref()), *alg))
                })
                .ok_or(KeyError::Unusable)?,
        };
        jsonwebtoken::crypto::sign(b"q-group-sync key check", &key, alg)
            .map_err(|_| KeyError::Unusable)?;
        Ok(ClientKey { key, alg })
    }

    /// RS256, ES256 or ES384.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half as a JWK (what the Okta app's Public keys must hold).
    pub fn public_jwk(&self) -> Option<Jwk> {
        Jwk::from_encoding_key(&self.key, self.alg).ok()
    }
}

/// The per-process DPoP key: ES256 on P-256, generated at start-up, never written anywhere.
pub(super) struct DpopKey {
    pub(super) key: EncodingKey,
    /// The public key, sent in every proof header.
    pub(super) jwk: Jwk,
    /// RFC 7638 thumbprint; Okta binds tokens to it (`cnf.jkt`).
    pub(super) thumbprint: String,
}

impl DpopKey {
    pub(super) fn generate() -> Result<DpopKey, OAuthBuildError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| OAuthBuildError::DpopKey)?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| OAuthBuildError::DpopKey)?;
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let jwk =
            Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|_| OAuthBuildError::DpopKey)?;
        let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256);
        Ok(DpopKey {
            key,
            jwk,
            thumbprint,
        })
    }
}
