//! The versioned, checksummed envelope every persisted or transmitted openraft value
//! travels in.
//!
//! openraft's serde derives are "not a stable wire or storage format", so nothing of
//! theirs is written raw: a value is encoded with postcard and framed as
//! `[format version: u8][crc32 of payload: u32 LE][payload]`. A reader rejects an unknown
//! version or a checksum mismatch instead of misreading bytes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The only envelope format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

const HEADER_LEN: usize = 5;

/// A value that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the envelope header.
    #[error("envelope truncated: {0} bytes")]
    Truncated(usize),
    /// Written by a format this build does not know.
    #[error("unknown envelope format version {0} (this build reads version {FORMAT_VERSION})")]
    UnknownVersion(u8),
    /// The payload does not match its checksum.
    #[error("envelope checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// postcard failed.
    #[error("envelope payload: {0}")]
    Payload(#[from] postcard::Error),
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Encodes `value` into a fresh envelope.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = postcard::to_extend(value, vec![0u8; HEADER_LEN])?;
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[0] = FORMAT_VERSION;
    out[1..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks an envelope's header and checksum without decoding the payload.
pub fn verify(bytes: &[u8]) -> Result<(), CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Truncated(bytes.len()));
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(bytes[0]));
    }
    let stored = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let computed = crc32fast::hash(&bytes[HEADER_LEN..]);
    if stored != computed {
        return Err(CodecError::Checksum { stored, computed });
    }
    Ok(())
}

/// Decodes an envelope written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    verify(bytes)?;
    Ok(postcard::from_bytes(&bytes[HEADER_LEN..])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let value = (7u64, String::from("conclave"), vec![1u8, 2, 3]);
        let mut bytes = encode(&value).unwrap();
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&bytes).unwrap(), value);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(&bytes),
            Err(CodecError::Checksum { .. })
        ));
        bytes[0] = 9;
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(&bytes),
            Err(CodecError::UnknownVersion(9))
        ));
        assert!(matches!(decode::<u64>(&[1, 2]), Err(CodecError::Truncated(2))));
    }
}
