//! Auth tokens: JWTs signed with HMAC-SHA256 (`HS256`) by a key replicated in the auth
//! state, so a token issued by any member is accepted by every member and survives leader
//! changes (etcd's default "simple" tokens live in one member's memory). Claims: the user
//! name, the auth revision at issue and the expiry (`exp`, Unix seconds), as etcd's JWT
//! tokens carry them. Pure: time comes in as an argument.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `{"alg":"HS256","typ":"JWT"}`
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub username: String,
    /// The auth revision when it was issued.
    pub revision: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

/// Why a token was refused (all are etcd's "invalid auth token" to the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match.
    #[error("bad token signature")]
    Signature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// The signing key is unusable.
    #[error("invalid signing key")]
    Key,
}

fn mac(key: &[u8]) -> Result<HmacSha256, TokenError> {
    HmacSha256::new_from_slice(key).map_err(|_| TokenError::Key)
}

/// Signs `claims` with `key`.
pub fn sign(claims: &Claims, key: &[u8]) -> Result<String, TokenError> {
    let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Malformed)?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = mac(key)?;
    mac.update(signing_input.as_bytes());
    let signature = mac.finalize().into_bytes();
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// Checks `token`'s signature with `key` and its expiry against `now` (Unix seconds).
pub fn verify(token: &str, key: &[u8], now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.rsplitn(2, '.');
    let signature = parts.next().ok_or(TokenError::Malformed)?;
    let signing_input = parts.next().ok_or(TokenError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = mac(key)?;
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature).map_err(|_| TokenError::Signature)?;
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    if header != HEADER.as_bytes() {
        return Err(TokenError::Malformed);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            username: "alice".into(),
            revision: 7,
            exp: 1_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(&claims(), b"key").expect("signs");
        assert_eq!(token.matches('.').count(), 2);
        assert_eq!(verify(&token, b"key", 999), Ok(claims()));
        assert_eq!(verify(&token, b"key", 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_or_a_changed_claim_is_refused() {
        let token = sign(&claims(), b"key").expect("signs");
        assert_eq!(verify(&token, b"other", 0), Err(TokenError::Signature));
        let forged = Claims {
            username: "root".into(),
            ..claims()
        };
        let (_, signature) = token.rsplit_once('.').expect("three parts");
        let forged_input = sign(&forged, b"attacker").expect("signs");
        let (input, _) = forged_input.rsplit_once('.').expect("three parts");
        assert_eq!(
            verify(&format!("{input}.{signature}"), b"key", 0),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for token in ["", "a", "a.b", "a.b.c", "sssvIpwfnLAcWAQH.9", "..."] {
            assert!(verify(token, b"key", 0).is_err(), "{token:?}");
        }
    }
}
