//! Scraping `/metrics` over plain HTTP/1.1, and reading the exposition.

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_testkit::Cluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A scraped exposition: each sample line as `series -> value`, where `series` is the
/// metric name with its labels exactly as served (`name` or `name{a="x",b="y"}`).
#[derive(Debug, Clone)]
pub struct Scrape(pub BTreeMap<String, f64>);

impl Scrape {
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut samples = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .ok_or_else(|| format!("sample line without a value: {line:?}"))?;
            let value = value
                .parse::<f64>()
                .map_err(|e| format!("bad value in {line:?}: {e}"))?;
            samples.insert(series.to_string(), value);
        }
        Ok(Scrape(samples))
    }

    /// The value of an unlabelled metric.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// The sum over the series of `name` that carry every one of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let prefix = format!("{name}{{");
        self.0
            .iter()
            .filter(|(series, _)| series.starts_with(&prefix))
            .filter(|(series, _)| {
                labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
            })
            .map(|(_, value)| value)
            .sum()
    }

    pub fn get(&self, name: &str) -> f64 {
        self.value(name)
            .unwrap_or_else(|| panic!("{name} missing from the scrape: {:?}", self.0.keys()))
    }
}

/// One plain HTTP/1.1 GET; returns the status code and the body.
pub async fn http_get(host_port: &str, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(host_port)
            .await
            .map_err(|e| format!("connect {host_port}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("GET {path} from {host_port} timed out"))?
}

/// Splits an HTTP/1.1 response into status and body (`Content-Length` or chunked).
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8(raw.to_vec()).map_err(|e| format!("response is not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {text:?}"))?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.1 ") {
        return Err(format!("not an HTTP/1.1 response: {status_line:?}"));
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        let mut decoded = String::new();
        let mut rest = body;
        loop {
            let (size, after) = rest
                .split_once("\r\n")
                .ok_or_else(|| "truncated chunk size".to_string())?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|e| format!("bad chunk size: {e}"))?;
            if size == 0 {
                break;
            }
            let chunk = after.get(..size).ok_or_else(|| "truncated chunk".to_string())?;
            decoded.push_str(chunk);
            rest = after.get(size + 2..).unwrap_or_default();
        }
        return Ok((status, decoded));
    }
    if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|e| format!("bad content-length: {e}"))?;
        if body.len() != length {
            return Err(format!(
                "body is {} bytes, content-length says {length}",
                body.len()
            ));
        }
    }
    Ok((status, body.to_string()))
}

/// `host:port` of a `http://host:port` URL.
pub fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// Scrapes `/metrics` at `url` and checks it is a Prometheus text exposition.
pub async fn scrape(url: &str) -> Result<Scrape, String> {
    let (status, body) = http_get(host_port(url), "/metrics").await?;
    if status != 200 {
        return Err(format!("GET /metrics answered {status}: {body}"));
    }
    Scrape::parse(&body)
}

pub async fn scrape_node(cluster: &Cluster, i: usize) -> Result<Scrape, String> {
    scrape(cluster.node(i).client_url()).await
}
