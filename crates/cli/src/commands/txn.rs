//! `txn`: etcdctl's transaction format from standard input — compares, a blank line,
//! the operations run when every compare holds, a blank line, the operations run
//! otherwise (a blank line or the end of input closes the last block).
//!
//! ```text
//! mod("key1") > "0"
//! value("key2") = "v"
//!
//! put key1 "new value"
//! get key2
//!
//! del key1
//! ```

use std::io::{BufRead, Write};

use clap::Parser;
use conclave_client::txn::CompareValue;
use conclave_client::{Compare, Op, OpResponse, TxnResponse};
use serde_json::{json, Value};

use super::kv::{delete_request, get_request, put_request};
use super::Context;
use crate::args::{DelArgs, Format, GetArgs, PutArgs, TxnArgs};
use crate::error::CliError;
use crate::output;

/// A parsed transaction.
#[derive(Debug, Default)]
pub struct TxnSpec {
    /// Every compare must hold for `success` to run.
    pub compares: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<Op>,
    /// Run otherwise.
    pub failure: Vec<Op>,
}

/// The three blocks of the input, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Compares.
    Compares,
    /// Operations if every compare holds.
    Success,
    /// Operations otherwise.
    Failure,
}

impl Block {
    /// etcdctl's prompt for the block, in interactive mode.
    fn prompt(self) -> &'static str {
        match self {
            Block::Compares => "compares:",
            Block::Success => "success requests (get, put, del):",
            Block::Failure => "failure requests (get, put, del):",
        }
    }
}

/// Reads a transaction from `lines`, calling `on_block` as each block begins.
pub fn parse_txn<I>(lines: I, mut on_block: impl FnMut(Block)) -> Result<TxnSpec, CliError>
where
    I: IntoIterator<Item = std::io::Result<String>>,
{
    let mut spec = TxnSpec::default();
    let mut block = Block::Compares;
    on_block(block);
    for (number, line) in lines.into_iter().enumerate() {
        let line = line.map_err(|e| CliError::io("reading the transaction from standard input", e))?;
        let line = line.trim();
        let bad = |why: String| CliError::InvalidInput(format!("txn line {}: {why}", number + 1));
        if line.is_empty() {
            block = match block {
                Block::Compares => Block::Success,
                Block::Success => Block::Failure,
                Block::Failure => return Ok(spec),
            };
            on_block(block);
            continue;
        }
        match block {
            Block::Compares => spec.compares.push(parse_compare(line).map_err(bad)?),
            Block::Success => spec.success.push(parse_op(line).map_err(bad)?),
            Block::Failure => spec.failure.push(parse_op(line).map_err(bad)?),
        }
    }
    Ok(spec)
}

/// Parses one compare: `target("key") op "value"` with target `value`/`val`,
/// `version`/`ver`, `create`/`c`, `mod`/`m` or `lease` (hex ID), and op `=`, `!=`, `<`, `>`.
pub fn parse_compare(line: &str) -> Result<Compare, String> {
    let malformed = || {
        format!("malformed comparison {line:?}: expected e.g. mod(\"key\") > \"0\" or value(\"key\") = \"v\"")
    };
    let (target, rest) = line.split_once('(').ok_or_else(malformed)?;
    let (key, rest) = unquote_prefix(rest.trim_start()).ok_or_else(malformed)?;
    let rest = rest
        .trim_start()
        .strip_prefix(')')
        .ok_or_else(malformed)?
        .trim_start();
    let op_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (op, value) = rest.split_at(op_end);
    let value = value.trim();
    let value = match unquote_prefix(value) {
        Some((unquoted, tail)) if tail.trim().is_empty() => unquoted,
        // etcdctl insists on quotes; an unquoted value is accepted as is.
        _ => value.as_bytes().to_vec(),
    };
    let text = String::from_utf8_lossy(&value).into_owned();
    let number = |base: u32| {
        i64::from_str_radix(text.trim_start_matches("0x"), base)
            .map_err(|_| format!("comparison {line:?}: {text:?} is not a number"))
    };
    let (target, value): (_, CompareValue) = match target.trim() {
        "value" | "val" => (Compare::value(key), value.into()),
        "version" | "ver" => (Compare::version(key), number(10)?.into()),
        "create" | "c" => (Compare::create_revision(key), number(10)?.into()),
        "mod" | "m" => (Compare::mod_revision(key), number(10)?.into()),
        "lease" => (Compare::lease(key), number(16)?.into()),
        other => {
            return Err(format!(
                "unknown comparison target {other:?} in {line:?} (use value, version, create, mod or lease)"
            ))
        }
    };
    match op {
        "=" | "==" => Ok(target.eq(value)),
        "!=" => Ok(target.ne(value)),
        "<" => Ok(target.lt(value)),
        ">" => Ok(target.gt(value)),
        other => Err(format!(
            "unknown comparison operator {other:?} in {line:?} (use =, !=, < or >)"
        )),
    }
}

/// One operation line, parsed with the same flags as the top-level commands.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_subcommand = true)]
enum OpLine {
    /// `get key [end] [--prefix] [--from-key] [--limit N] [--rev N] ...`
    Get(GetArgs),
    /// `put key value [--lease ID] [--prev-kv]`
    Put(PutArgs),
    /// `del key [end] [--prefix] [--from-key] [--prev-kv]`
    #[command(alias = "delete")]
    Del(DelArgs),
}

/// Parses one operation line: `put k v`, `get k`, `del k`, with their flags.
pub fn parse_op(line: &str) -> Result<Op, String> {
    let words = split_words(line)?;
    let parsed = OpLine::try_parse_from(&words).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or("").trim_start_matches("error: ");
        format!("bad operation {line:?}: {first} (use put, get or del with their flags)")
    })?;
    match parsed {
        OpLine::Get(args) => Ok(Op::Get(get_request(&args))),
        OpLine::Put(args) => {
            let value = match &args.value {
                Some(value) => value.as_bytes().to_vec(),
                None if args.ignore_value => Vec::new(),
                None => return Err(format!("bad operation {line:?}: put needs a value in a txn")),
            };
            put_request(&args, value).map(Op::Put).map_err(|e| e.to_string())
        }
        OpLine::Del(args) => Ok(Op::Delete(delete_request(&args))),
    }
}

/// Splits a line into words as etcdctl does: whitespace separates, `"..."` (with Go
/// escapes) and `'...'` group.
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if rest.starts_with('"') || rest.starts_with('\'') || rest.starts_with('`') {
            let (word, tail) =
                unquote_prefix(rest).ok_or_else(|| format!("unterminated quote in {line:?}"))?;
            words.push(String::from_utf8_lossy(&word).into_owned());
            rest = tail.trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(words)
}

/// If `text` starts with a quoted string (`"..."` with Go escapes, `'...'` or
/// `` `...` `` raw), its bytes and the text after it.
fn unquote_prefix(text: &str) -> Option<(Vec<u8>, &str)> {
    let mut chars = text.char_indices();
    let (_, quote) = chars.next()?;
    if quote != '"' && quote != '\'' && quote != '`' {
        return None;
    }
    let mut out = Vec::new();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Some((out, &text[i + c.len_utf8()..]));
        }
        if c == '\\' && quote == '"' {
            let (_, escaped) = chars.next()?;
            match escaped {
                'n' => out.push(b'\n'),
                't' => out.push(b'\t'),
                'r' => out.push(b'\r'),
                '0' => out.push(0),
                'x' => {
                    let hi = chars.next()?.1.to_digit(16)?;
                    let lo = chars.next()?.1.to_digit(16)?;
                    out.push((hi * 16 + lo) as u8);
                }
                other => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                }
            }
            continue;
        }
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    None
}

/// `txn`.
pub async fn run(ctx: &Context, args: &TxnArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    let interactive = args.interactive;
    let mut prompt_error = None;
    let spec = parse_txn(stdin.lock().lines(), |block| {
        if interactive {
            if let Err(e) = output::line(out, block.prompt()).and_then(|()| super::flush(out)) {
                prompt_error = Some(e);
            }
        }
    })?;
    if let Some(error) = prompt_error {
        return Err(error);
    }
    if interactive {
        output::line(out, "")?;
    }
    let response = ctx
        .client
        .txn()
        .when(spec.compares)
        .then(spec.success)
        .otherwise(spec.failure)
        .await
        .map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &txn_json(&response)),
        _ => simple_txn(out, &response),
    }
}

/// etcdctl's simple output: `SUCCESS` or `FAILURE`, then each response after a blank line.
pub fn simple_txn(out: &mut dyn Write, response: &TxnResponse) -> Result<(), CliError> {
    output::line(out, if response.succeeded { "SUCCESS" } else { "FAILURE" })?;
    for op in &response.responses {
        output::line(out, "")?;
        match op {
            OpResponse::Get(range) => output::simple_range(out, range, false, false)?,
            OpResponse::Put(put) => output::simple_put(out, put)?,
            OpResponse::Delete(delete) => output::simple_delete(out, delete)?,
            OpResponse::Txn(nested) => simple_txn(out, nested)?,
        }
    }
    Ok(())
}

/// The transaction's answer as JSON, in etcdctl's shape.
pub fn txn_json(response: &TxnResponse) -> Value {
    let responses: Vec<Value> = response
        .responses
        .iter()
        .map(|op| match op {
            OpResponse::Get(r) => json!({ "Response": { "ResponseRange": output::range_json(r) } }),
            OpResponse::Put(r) => json!({ "Response": { "ResponsePut": output::put_json(r) } }),
            OpResponse::Delete(r) => json!({ "Response": { "ResponseDeleteRange": output::delete_json(r) } }),
            OpResponse::Txn(r) => json!({ "Response": { "ResponseTxn": txn_json(r) } }),
        })
        .collect();
    json!({
        "header": output::header_json(response.revision),
        "succeeded": response.succeeded,
        "responses": responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<std::io::Result<String>> {
        text.lines().map(|l| Ok(l.to_string())).collect()
    }

    #[test]
    fn compares_follow_etcdctls_syntax() {
        assert_eq!(
            parse_compare(r#"mod("k") > "5""#).unwrap(),
            Compare::mod_revision("k").gt(5)
        );
        assert_eq!(
            parse_compare(r#"value("k") = "v w""#).unwrap(),
            Compare::value("k").eq("v w")
        );
        assert_eq!(
            parse_compare(r#"version("k") != "0""#).unwrap(),
            Compare::version("k").ne(0)
        );
        assert_eq!(
            parse_compare(r#"create("a b") < "3""#).unwrap(),
            Compare::create_revision("a b").lt(3)
        );
        assert_eq!(
            parse_compare(r#"lease("k") = "694d77aa9e38260f""#).unwrap(),
            Compare::lease("k").eq(0x694d77aa9e38260f_i64)
        );
        assert_eq!(
            parse_compare(r#"val("k") = "a\"b""#).unwrap(),
            Compare::value("k").eq("a\"b")
        );
        assert!(parse_compare(r#"mod(k) > "0""#).is_err());
        assert!(parse_compare(r#"mod("k") >= "0""#).is_err());
        assert!(parse_compare(r#"size("k") = "0""#).is_err());
        assert!(parse_compare(r#"mod("k") = "x""#).is_err());
    }

    #[test]
    fn operations_take_the_commands_flags() {
        assert!(matches!(parse_op("put k v").unwrap(), Op::Put(_)));
        assert!(matches!(parse_op(r#"put k "two words""#).unwrap(), Op::Put(_)));
        assert!(matches!(parse_op("put --prev-kv k v").unwrap(), Op::Put(_)));
        assert!(matches!(parse_op("get k --prefix").unwrap(), Op::Get(_)));
        assert!(matches!(parse_op("get a z").unwrap(), Op::Get(_)));
        assert!(matches!(parse_op("del k").unwrap(), Op::Delete(_)));
        assert!(matches!(parse_op("delete k --prefix").unwrap(), Op::Delete(_)));
        assert!(parse_op("put k").unwrap_err().contains("needs a value"));
        assert!(parse_op("frobnicate k").is_err());
        assert!(parse_op("get").is_err());
    }

    #[test]
    fn words_split_on_spaces_and_group_on_quotes() {
        assert_eq!(
            split_words(r#"put k "a b" 'c d'"#).unwrap(),
            vec!["put", "k", "a b", "c d"]
        );
        assert_eq!(split_words(r#"put k "a\nb""#).unwrap()[2], "a\nb");
        assert!(split_words(r#"put k "open"#).is_err());
    }

    #[test]
    fn blocks_are_separated_by_blank_lines() {
        let mut seen = Vec::new();
        let spec = parse_txn(
            lines("mod(\"k\") > \"0\"\nvalue(\"k\") = \"v\"\n\nput k v\nget k\n\nget k\ndel k\n"),
            |block| seen.push(block),
        )
        .unwrap();
        assert_eq!(spec.compares.len(), 2);
        assert_eq!(spec.success.len(), 2);
        assert_eq!(spec.failure.len(), 2);
        assert_eq!(seen, vec![Block::Compares, Block::Success, Block::Failure]);

        // No compares, no failure block: a plain batch.
        let spec = parse_txn(lines("\nput a 1\nput b 2\n"), |_| {}).unwrap();
        assert_eq!(
            (spec.compares.len(), spec.success.len(), spec.failure.len()),
            (0, 2, 0)
        );

        // What follows the closing blank line is not read.
        let spec = parse_txn(lines("\n\nget k\n\nthis is ignored"), |_| {}).unwrap();
        assert_eq!(spec.failure.len(), 1);

        let error = parse_txn(lines("mod(\"k\") ? \"0\"\n"), |_| {}).unwrap_err();
        assert!(error.to_string().starts_with("txn line 1: "), "{error}");
    }

    #[test]
    fn simple_output_is_etcdctls() {
        use conclave_client::kv::{PutResponse, RangeResponse};
        use conclave_client::KeyValue;
        let response = TxnResponse {
            succeeded: true,
            revision: 7,
            responses: vec![
                OpResponse::Put(PutResponse {
                    revision: 7,
                    prev_kv: None,
                }),
                OpResponse::Get(RangeResponse {
                    kvs: vec![KeyValue {
                        key: b"foo".to_vec(),
                        value: b"q".to_vec(),
                        create_revision: 2,
                        mod_revision: 7,
                        version: 3,
                        lease: None,
                    }],
                    count: 1,
                    more: false,
                    revision: 7,
                }),
            ],
        };
        let mut out = Vec::new();
        simple_txn(&mut out, &response).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "SUCCESS\n\nOK\n\nfoo\nq\n");
    }
}
