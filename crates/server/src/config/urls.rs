//! The URL-valued settings: lists, `--initial-cluster` pairs, and listen URLs into socket
//! addresses (with whether they are `https://`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::ConfigError;

pub(super) fn non_empty<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.trim().is_empty() {
        fallback
    } else {
        value
    }
}

pub(super) fn split_urls(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn parse_initial_cluster(value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, url)) if !name.is_empty() && !url.is_empty() => {
                Ok((name.to_string(), url.to_string()))
            }
            _ => Err(ConfigError::Invalid(format!(
                "--initial-cluster entry {pair:?} is not name=peerURL"
            ))),
        })
        .collect()
}

/// `http://host:port` or (where `tls_allowed`) `https://host:port` → a socket address
/// (`localhost` resolves to loopback) and whether it is `https://`.
pub(super) fn listen_addr(
    url: &str,
    flag: &str,
    tls_allowed: bool,
) -> Result<(SocketAddr, bool), ConfigError> {
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (None, Some(rest)) if tls_allowed => (rest, true),
        (None, Some(_)) => {
            return Err(ConfigError::Invalid(format!(
                "{flag}: {url:?} must start with http:// (this listener is plain HTTP only, as etcd's)"
            )))
        }
        (None, None) => {
            return Err(ConfigError::Invalid(format!(
                "{flag}: {url:?} must start with http:// or https://"
            )))
        }
    };
    socket_addr(rest, url, flag).map(|addr| (addr, tls))
}

fn socket_addr(rest: &str, url: &str, flag: &str) -> Result<SocketAddr, ConfigError> {
    let hostport = rest.trim_end_matches('/');
    if let Ok(addr) = hostport.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let mut addrs = hostport
        .to_socket_addrs()
        .map_err(|e| ConfigError::Invalid(format!("{flag}: cannot resolve {url:?}: {e}")))?;
    let prefer_v4 = addrs.clone().find(|a| matches!(a.ip(), IpAddr::V4(_)));
    prefer_v4
        .or_else(|| addrs.next())
        .ok_or_else(|| ConfigError::Invalid(format!("{flag}: {url:?} resolves to no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls_say_whether_they_are_tls() {
        let (addr, tls) = listen_addr("https://127.0.0.1:2379", "--listen-client-urls", true).unwrap();
        assert_eq!((addr, tls), ("127.0.0.1:2379".parse().unwrap(), true));
        let (_, tls) = listen_addr("http://127.0.0.1:2379/", "--listen-client-urls", true).unwrap();
        assert!(!tls);
        let error = listen_addr("https://127.0.0.1:2381", "--listen-metrics-urls", false).unwrap_err();
        assert!(error.to_string().contains("plain HTTP only"), "{error}");
        let error = listen_addr("unix:///x", "--listen-peer-urls", true).unwrap_err();
        assert!(error.to_string().contains("http:// or https://"), "{error}");
    }
}
