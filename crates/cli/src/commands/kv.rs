//! `get`, `put` and `del`, and the request builders `txn` shares with them.

use std::io::{Read, Write};

use conclave_client::kv::{Delete, Get, Put};
use conclave_client::{LeaseId, SortOrder, SortTarget};

use super::Context;
use crate::args::{parse_lease_id, Consistency, DelArgs, Format, GetArgs, Order, PutArgs, SortBy};
use crate::error::CliError;
use crate::output;

/// The keys a command selects.
pub enum KeySpan {
    /// One key.
    Key(Vec<u8>),
    /// `[start, end)`; an end of `\0` means "to the last key".
    Range(Vec<u8>, Vec<u8>),
}

/// The span of `key [end]` with `--prefix` / `--from-key`, by clientv3's rules: an empty
/// key with `--prefix` or `--from-key` means every key.
pub fn key_span(key: &str, end: Option<&str>, prefix: bool, from_key: bool) -> KeySpan {
    let key = key.as_bytes().to_vec();
    if prefix {
        if key.is_empty() {
            return KeySpan::Range(vec![0], vec![0]);
        }
        let end = conclave_client::kv::prefix_end(&key);
        return KeySpan::Range(key, end);
    }
    if from_key {
        let start = if key.is_empty() { vec![0] } else { key };
        return KeySpan::Range(start, vec![0]);
    }
    match end {
        Some(end) => KeySpan::Range(key, end.as_bytes().to_vec()),
        None => KeySpan::Key(key),
    }
}

/// The range request `get` sends.
pub fn get_request(args: &GetArgs) -> Get {
    let mut get = match key_span(&args.key, args.end.as_deref(), args.prefix, args.from_key) {
        KeySpan::Key(key) => Get::key(key),
        KeySpan::Range(start, end) => Get::range(start, end),
    };
    if args.limit > 0 {
        get = get.limit(args.limit);
    }
    if args.rev > 0 {
        get = get.revision(args.rev);
    }
    if args.consistency == Consistency::S {
        get = get.serializable();
    }
    if args.keys_only {
        get = get.keys_only();
    }
    if args.count_only {
        get = get.count_only();
    }
    // etcdctl: an order alone sorts by key; a target alone sorts ascending.
    if args.order.is_some() || args.sort_by.is_some() {
        let target = match args.sort_by.unwrap_or(SortBy::Key) {
            SortBy::Create => SortTarget::Create,
            SortBy::Key => SortTarget::Key,
            SortBy::Modify => SortTarget::Mod,
            SortBy::Value => SortTarget::Value,
            SortBy::Version => SortTarget::Version,
        };
        let order = match args.order.unwrap_or(Order::Ascend) {
            Order::Ascend => SortOrder::Ascend,
            Order::Descend => SortOrder::Descend,
        };
        get = get.sort(target, order);
    }
    get
}

/// The put request for `args` with `value`.
pub fn put_request(args: &PutArgs, value: Vec<u8>) -> Result<Put, CliError> {
    let mut put = Put::new(args.key.as_bytes().to_vec(), value);
    if let Some(lease) = &args.lease {
        let id = parse_lease_id(lease).map_err(CliError::InvalidInput)?;
        put = put.lease(LeaseId(id));
    }
    if args.prev_kv {
        put = put.prev_kv();
    }
    if args.ignore_value {
        put = put.ignore_value();
    }
    if args.ignore_lease {
        put = put.ignore_lease();
    }
    Ok(put)
}

/// The delete request `del` sends.
pub fn delete_request(args: &DelArgs) -> Delete {
    let mut delete = match key_span(&args.key, args.end.as_deref(), args.prefix, args.from_key) {
        KeySpan::Key(key) => Delete::key(key),
        KeySpan::Range(start, end) => Delete::range(start, end),
    };
    if args.prev_kv {
        delete = delete.prev_kv();
    }
    delete
}

/// `get`.
pub async fn get(ctx: &Context, args: &GetArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let response = ctx
        .client
        .range(get_request(args))
        .await
        .map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &output::range_json(&response)),
        Format::Table if !args.count_only => output::write(out, output::range_table(&response).as_bytes()),
        _ => output::simple_range(out, &response, args.print_value_only, args.count_only),
    }
}

/// `put`.
pub async fn put(ctx: &Context, args: &PutArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let value = match &args.value {
        Some(value) => value.as_bytes().to_vec(),
        None if args.ignore_value => Vec::new(),
        None => {
            // etcdctl reads the whole of standard input, as is, when the value is omitted.
            let mut value = Vec::new();
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| CliError::io("reading the value from standard input", e))?;
            value
        }
    };
    let response = ctx
        .client
        .put_with(put_request(args, value)?)
        .await
        .map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &output::put_json(&response)),
        _ => output::simple_put(out, &response),
    }
}

/// `del`.
pub async fn del(ctx: &Context, args: &DelArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let response = ctx
        .client
        .delete_with(delete_request(args))
        .await
        .map_err(|e| ctx.fail(e))?;
    match ctx.format {
        Format::Json => output::json_line(out, &output::delete_json(&response)),
        _ => output::simple_delete(out, &response),
    }
}
