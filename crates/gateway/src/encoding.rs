//! Keys and values on the REST API: UTF-8 strings by default, base64 with
//! `?encoding=base64` (in the path key, bodies and answers alike).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use axum::http::StatusCode;

/// How keys and values are written in JSON and in the path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 text (the default). Stored bytes that are not UTF-8 are refused with 422
    /// `not_utf8`: ask again with `?encoding=base64`.
    #[default]
    Utf8,
    /// Standard base64 (URL-safe and unpadded base64 are accepted too).
    Base64,
}

/// Decodes base64 in any of the common alphabets, padded or not.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text.trim()).ok())
}

/// Encodes bytes as standard base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

impl Encoding {
    /// The bytes of `text` (`what` names it in errors).
    pub fn decode(self, what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
        match self {
            Encoding::Utf8 => Ok(text.as_bytes().to_vec()),
            Encoding::Base64 => decode_base64(text)
                .ok_or_else(|| ApiError::invalid(format!("{what} is not valid base64: {text:?}"))),
        }
    }

    /// The text of `bytes` (`what` names it in errors).
    pub fn encode(self, what: &str, bytes: &[u8]) -> Result<String, ApiError> {
        match self {
            Encoding::Base64 => Ok(encode_base64(bytes)),
            Encoding::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|_| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not_utf8",
                    format!("{what} is not UTF-8: ask with ?encoding=base64"),
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_any_alphabet_is_accepted() {
        assert_eq!(decode_base64("/w==").unwrap(), vec![0xff]);
        assert_eq!(decode_base64("_w").unwrap(), vec![0xff]);
        assert!(decode_base64("***").is_none());
        assert!(Encoding::Utf8.encode("value", &[0xff]).is_err());
        assert_eq!(Encoding::Base64.encode("value", &[0xff]).unwrap(), "/w==");
    }
}
