//! Rendering results: etcdctl's simple format (raw key and value lines), JSON shaped like
//! etcdctl's (keys and values base64-encoded, binary-safe), and ASCII tables laid out as
//! etcdctl's (centred headers, right-aligned cells).

use std::io::Write;

use conclave_client::kv::{DeleteResponse, PutResponse, RangeResponse};
use conclave_client::KeyValue;
use serde_json::{json, Map, Value};

use crate::error::CliError;

pub mod auth;
pub mod group;

/// Standard base64 (with padding), as etcdctl's JSON encodes byte strings.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A byte count the way etcdctl shows database sizes (go-humanize, SI units): `999 B`,
/// `4.9 kB`, `25 kB`, `1.2 MB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exponent = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = ((bytes as f64) / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// An ASCII table as etcdctl draws one: headers centred, cells right-aligned.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .enumerate()
        .map(|(i, header)| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .chain([header.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths.iter().fold(String::from("+"), |mut line, width| {
        line.push_str(&"-".repeat(width + 2));
        line.push('+');
        line
    });
    let mut out = String::new();
    out.push_str(&rule);
    out.push('\n');
    out.push('|');
    for (header, width) in headers.iter().zip(&widths) {
        let extra = width - header.chars().count();
        let left = extra / 2;
        out.push_str(&format!(
            " {}{}{} |",
            " ".repeat(left),
            header,
            " ".repeat(extra - left)
        ));
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    for row in rows {
        out.push('|');
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            out.push_str(&format!(" {cell:>width$} |"));
        }
        out.push('\n');
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

/// Writes bytes to standard output, mapping failure (e.g. a closed pipe) to an I/O error.
pub fn write(out: &mut dyn Write, bytes: &[u8]) -> Result<(), CliError> {
    out.write_all(bytes)
        .map_err(|e| CliError::io("writing to standard output", e))
}

/// Writes a line of text.
pub fn line(out: &mut dyn Write, text: &str) -> Result<(), CliError> {
    write(out, text.as_bytes())?;
    write(out, b"\n")
}

/// Writes a JSON value on one line.
pub fn json_line(out: &mut dyn Write, value: &Value) -> Result<(), CliError> {
    line(out, &value.to_string())
}

/// etcdctl's `printKV`: the key on one line (unless `value_only`), the value on the next,
/// both as raw bytes.
pub fn simple_kv(out: &mut dyn Write, kv: &KeyValue, value_only: bool) -> Result<(), CliError> {
    if !value_only {
        write(out, &kv.key)?;
        write(out, b"\n")?;
    }
    write(out, &kv.value)?;
    write(out, b"\n")
}

/// A key-value in etcdctl's JSON shape (`lease` only when set, as etcdctl omits zeros).
pub fn kv_json(kv: &KeyValue) -> Value {
    let mut map = Map::new();
    map.insert("key".into(), json!(base64(&kv.key)));
    map.insert("create_revision".into(), json!(kv.create_revision));
    map.insert("mod_revision".into(), json!(kv.mod_revision));
    map.insert("version".into(), json!(kv.version));
    map.insert("value".into(), json!(base64(&kv.value)));
    if let Some(lease) = kv.lease {
        map.insert("lease".into(), json!(lease.0));
    }
    Value::Object(map)
}

/// The response header as far as the SDK reports it (the revision).
pub fn header_json(revision: i64) -> Value {
    json!({ "revision": revision })
}

/// A range answer as JSON.
pub fn range_json(response: &RangeResponse) -> Value {
    let mut map = Map::new();
    map.insert("header".into(), header_json(response.revision));
    map.insert(
        "kvs".into(),
        Value::Array(response.kvs.iter().map(kv_json).collect()),
    );
    map.insert("count".into(), json!(response.count));
    if response.more {
        map.insert("more".into(), json!(true));
    }
    Value::Object(map)
}

/// A put answer as JSON.
pub fn put_json(response: &PutResponse) -> Value {
    let mut map = Map::new();
    map.insert("header".into(), header_json(response.revision));
    if let Some(prev) = &response.prev_kv {
        map.insert("prev_kv".into(), kv_json(prev));
    }
    Value::Object(map)
}

/// A delete answer as JSON.
pub fn delete_json(response: &DeleteResponse) -> Value {
    let mut map = Map::new();
    map.insert("header".into(), header_json(response.revision));
    map.insert("deleted".into(), json!(response.deleted));
    if !response.prev_kvs.is_empty() {
        map.insert(
            "prev_kvs".into(),
            Value::Array(response.prev_kvs.iter().map(kv_json).collect()),
        );
    }
    Value::Object(map)
}

/// etcdctl's simple output of a range: key and value lines; with `count_only`, the count.
pub fn simple_range(
    out: &mut dyn Write,
    response: &RangeResponse,
    value_only: bool,
    count_only: bool,
) -> Result<(), CliError> {
    if count_only {
        return line(out, &response.count.to_string());
    }
    for kv in &response.kvs {
        simple_kv(out, kv, value_only)?;
    }
    Ok(())
}

/// etcdctl's simple output of a put: `OK`, then the previous key-value if asked for.
pub fn simple_put(out: &mut dyn Write, response: &PutResponse) -> Result<(), CliError> {
    line(out, "OK")?;
    if let Some(prev) = &response.prev_kv {
        simple_kv(out, prev, false)?;
    }
    Ok(())
}

/// etcdctl's simple output of a delete: the number deleted, then the deleted key-values.
pub fn simple_delete(out: &mut dyn Write, response: &DeleteResponse) -> Result<(), CliError> {
    line(out, &response.deleted.to_string())?;
    for kv in &response.prev_kvs {
        simple_kv(out, kv, false)?;
    }
    Ok(())
}

/// A range as a table (etcdctl has none for `get`; this one shows the metadata too).
pub fn range_table(response: &RangeResponse) -> String {
    let rows: Vec<Vec<String>> = response
        .kvs
        .iter()
        .map(|kv| {
            vec![
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.create_revision.to_string(),
                kv.mod_revision.to_string(),
                kv.version.to_string(),
                kv.lease.map_or_else(String::new, |l| l.to_string()),
            ]
        })
        .collect();
    table(
        &[
            "KEY",
            "VALUE",
            "CREATE REVISION",
            "MOD REVISION",
            "VERSION",
            "LEASE",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"baz"), "YmF6");
        assert_eq!(base64(b"q"), "cQ==");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }

    #[test]
    fn sizes_are_shown_as_etcdctl_shows_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(4860), "4.9 kB");
        assert_eq!(human_bytes(20_480), "20 kB");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
    }

    #[test]
    fn tables_centre_headers_and_right_align_cells() {
        let text = table(
            &["ID", "STATUS", "NAME"],
            &[vec!["fef47939cadfe7c7".into(), "started".into(), "n1".into()]],
        );
        let expected = "\
+------------------+---------+------+
|        ID        | STATUS  | NAME |
+------------------+---------+------+
| fef47939cadfe7c7 | started |   n1 |
+------------------+---------+------+
";
        assert_eq!(text, expected);
    }

    #[test]
    fn simple_output_is_etcdctls() {
        let kv = KeyValue {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: None,
        };
        let mut out = Vec::new();
        simple_put(
            &mut out,
            &PutResponse {
                revision: 4,
                prev_kv: Some(kv.clone()),
            },
        )
        .unwrap();
        assert_eq!(out, b"OK\nfoo\nbar\n");
        let mut out = Vec::new();
        simple_delete(
            &mut out,
            &DeleteResponse {
                deleted: 1,
                prev_kvs: vec![kv.clone()],
                revision: 5,
            },
        )
        .unwrap();
        assert_eq!(out, b"1\nfoo\nbar\n");
        assert_eq!(
            kv_json(&kv),
            json!({"key": "Zm9v", "create_revision": 2, "mod_revision": 3, "version": 2, "value": "YmFy"})
        );
    }
}
