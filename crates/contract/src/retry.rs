//! Which failed calls certainly never reached their target.
//!
//! A write may be sent again only if the first attempt certainly did not apply. The one
//! failure that proves it is a connection that was never established: tonic reports it
//! as `Unavailable` "transport error" with the cause (the OS's "connection refused", hyper's
//! "tcp connect error", "error trying to connect"; conclave-tls's connector words its TCP
//! and TLS handshake failures the same way) in the error's source chain. A fatal TLS alert
//! from the target proves it too: with TLS 1.3 the client counts the handshake as done
//! before the server has checked the client certificate, so a refused certificate
//! surfaces as the alert on the first request, which the server never read. Anything
//! else — a reset stream, a timeout, a broken connection — may come after the target
//! received the request.
//! Members use this when forwarding to the leader, the SDK when failing over.

use tonic::{Code, Status};

/// Whether `status` is a failure to connect at all, so the request was never sent.
pub fn never_sent(status: &Status) -> bool {
    if status.code() != Code::Unavailable {
        return false;
    }
    let is_connect = |text: &str| {
        text.contains("tcp connect error")
            || text.contains("error trying to connect")
            || text.contains("Connection refused")
            // rustls: the peer aborted the TLS handshake (e.g. CertificateRequired).
            || text.contains("received fatal alert")
    };
    if is_connect(status.message()) {
        return true;
    }
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if is_connect(&error.to_string()) {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether the failure came from the transport (the status has a source error: a broken
/// connection, a reset stream) rather than from an answer the target sent.
pub fn is_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// `status` with its code and its whole source chain, for messages and logs (tonic shows
/// only "transport error" otherwise).
pub fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        text.push_str(": ");
        text.push_str(&error.to_string());
        source = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connect_failures_are_never_sent() {
        assert!(never_sent(&Status::unavailable("tcp connect error")));
        assert!(never_sent(&Status::unavailable(
            "error trying to connect: Connection refused (os error 111)"
        )));
        assert!(never_sent(&Status::unavailable(
            "error trying to connect: TLS handshake with 127.0.0.1:2379: invalid peer certificate: UnknownIssuer"
        )));
        assert!(never_sent(&Status::unavailable(
            "transport error: received fatal alert: CertificateRequired"
        )));
        assert!(!never_sent(&Status::unavailable("connection reset")));
        assert!(!never_sent(&Status::unavailable(crate::errors::NO_LEADER)));
        // A connect error under another code is not trusted: the code says what happened.
        assert!(!never_sent(&Status::deadline_exceeded("tcp connect error")));
        assert!(!is_transport(&Status::unavailable("x")));
        assert_eq!(describe(&Status::unavailable("x")), "Unavailable: x");
    }
}
