//! The subject Common Name of an X.509 certificate: the user name etcd takes from a
//! verified client certificate with `--client-cert-auth`.
//!
//! A minimal DER walk (Certificate → tbsCertificate → subject → the `2.5.4.3` attribute),
//! used only on certificates the handshake has already verified.

/// DER of the attribute type `id-at-commonName` (2.5.4.3).
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject's Common Name (the last one, as Go's `pkix.Name` keeps), or `None` when
/// the certificate has none or is not DER.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (subject, _) = expect(rest, SEQUENCE)?;
    let mut found = None;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (set, next) = expect(rdns, SET)?;
        rdns = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, next) = expect(attributes, SEQUENCE)?;
            attributes = next;
            let (oid, value) = expect(attribute, OID)?;
            if oid == COMMON_NAME {
                let (tag, content, _) = tlv(value)?;
                found = Some(text(tag, content)?);
            }
        }
    }
    found
}

/// The string value of a DirectoryString.
fn text(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, TeletexString (treated as UTF-8, as Go)
        0x0c | 0x13 | 0x16 | 0x14 => String::from_utf8(content.to_vec()).ok(),
        // BMPString: UTF-16BE
        0x1e => {
            if !content.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = content
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// The content of the element at the start of `input` if its tag is `tag`, and what
/// follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, content, rest) = tlv(input)?;
    (found == tag).then_some((content, rest))
}

/// One DER element: tag (single byte), content, and the bytes after it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, input) = input.split_first()?;
    let (len, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || input.len() < n {
            return None;
        }
        let len = input[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &input[n..])
    };
    if input.len() < len {
        return None;
    }
    Some((tag, &input[..len], &input[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    fn cert_with(subject: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        let mut name = DistinguishedName::new();
        for (kind, value) in subject {
            name.push(kind.clone(), *value);
        }
        params.distinguished_name = name;
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn reads_the_common_name_among_other_attributes() {
        let der = cert_with(&[
            (DnType::CountryName, "DE"),
            (DnType::OrganizationName, "Conclave"),
            (DnType::CommonName, "alice"),
        ]);
        assert_eq!(common_name(&der).as_deref(), Some("alice"));
    }

    #[test]
    fn a_certificate_without_a_common_name_has_none() {
        let der = cert_with(&[(DnType::OrganizationName, "Conclave")]);
        assert_eq!(common_name(&der), None);
    }

    #[test]
    fn garbage_and_truncated_der_have_none() {
        let der = cert_with(&[(DnType::CommonName, "bob")]);
        assert_eq!(common_name(&[]), None);
        assert_eq!(common_name(b"not a certificate"), None);
        for cut in [1, 10, der.len() / 2, der.len() - 1] {
            // A truncated certificate must not panic; its outer length no longer fits.
            assert_eq!(common_name(&der[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn long_form_lengths_and_utf8_names_are_read() {
        let long = "x".repeat(300);
        let der = cert_with(&[(DnType::CommonName, long.as_str())]);
        assert_eq!(common_name(&der).as_deref(), Some(long.as_str()));
        let der = cert_with(&[(DnType::CommonName, "jürgen")]);
        assert_eq!(common_name(&der).as_deref(), Some("jürgen"));
    }
}
