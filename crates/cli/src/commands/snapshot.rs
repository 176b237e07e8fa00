//! `snapshot save` (stream a member's snapshot into a file) and `snapshot restore`
//! (prepare a new member's data dir from one, offline).
//!
//! How restore works: the node restores a snapshot only at its first start on a fresh
//! data dir, given `--restore-snapshot FILE` (`consensus::restore`: the snapshot becomes
//! the Raft snapshot at index 1 of a new log whose membership is `--initial-cluster`).
//! There is no offline library call that does this, so `snapshot restore` checks the file
//! (format and SHA-256), copies it into the new data dir as `restore.snapshot`, and
//! writes `conclave.toml` there with every setting that first start needs. Then
//! `conclave --config-file <data-dir>/conclave.toml` starts the member, which restores
//! from the copy; later starts ignore `restore_snapshot` (the data dir is initialised).

use std::fs::{self, File};
use std::io::{BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Context, Interrupt};
use crate::args::{Format, RestoreArgs};
use crate::error::CliError;
use crate::output;

/// The first bytes of a Conclave snapshot file (`consensus::snapshot::MAGIC`).
const SNAPSHOT_MAGIC: &[u8; 8] = b"CNCLSNP1";
/// etcd's trailer after the snapshot: zero padding to a multiple of 512 bytes, then the
/// SHA-256 of everything before it (32 bytes); a file with it has `len % 512 == 32`.
const TRAILER_LEN: u64 = 32;
/// The snapshot's name inside a restored data dir.
pub const RESTORE_FILE: &str = "restore.snapshot";
/// The config file written into a restored data dir.
pub const CONFIG_FILE: &str = "conclave.toml";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `path` with `.part` appended, in the same directory (so the rename is atomic).
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".part");
    path.with_file_name(name)
}

/// Fsyncs the directory holding `path`, so a rename into it survives a crash.
fn sync_parent(path: &Path) -> Result<(), CliError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| CliError::io(format!("syncing {}", parent.display()), e))
}

/// What `snapshot save` wrote.
struct Saved {
    bytes: u64,
    sha256: String,
    /// Whether the stream carried etcd's SHA-256 trailer and it matched.
    verified: bool,
}

/// `snapshot save`.
pub async fn save(ctx: &Context, file: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let mut interrupt = Interrupt::install();
    let part = partial_path(file);
    let downloaded = tokio::select! {
        saved = download(ctx, &part) => saved,
        _ = interrupt.wait() => Err(CliError::Failed("interrupted: no snapshot was saved".into())),
    };
    let saved = match downloaded.and_then(|saved| {
        fs::rename(&part, file)
            .map_err(|e| CliError::io(format!("renaming {} to {}", part.display(), file.display()), e))?;
        sync_parent(file)?;
        Ok(saved)
    }) {
        Ok(saved) => saved,
        Err(error) => {
            let _ = fs::remove_file(&part);
            return Err(error);
        }
    };
    match ctx.format {
        Format::Json => output::json_line(
            out,
            &json!({
                "path": file.display().to_string(),
                "bytes": saved.bytes,
                "sha256": saved.sha256,
                "verified": saved.verified,
            }),
        ),
        _ => output::line(
            out,
            &format!(
                "Snapshot saved at {} ({} bytes, sha256 {}{})",
                file.display(),
                saved.bytes,
                saved.sha256,
                if saved.verified {
                    ""
                } else {
                    ", no checksum trailer to verify"
                }
            ),
        ),
    }
}

/// Streams the snapshot into `part`, hashing as it goes and checking etcd's trailer.
async fn download(ctx: &Context, part: &Path) -> Result<Saved, CliError> {
    let mut chunks = ctx.client.snapshot().await.map_err(|e| ctx.fail(e))?;
    let mut file = File::create(part).map_err(|e| CliError::io(format!("creating {}", part.display()), e))?;
    let mut whole = Sha256::new();
    // The body hash lags 32 bytes behind, so that at the end it covers all but the trailer.
    let mut body = Sha256::new();
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TRAILER_LEN as usize);
    let mut written = 0u64;
    let mut remaining = None;
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{wide_bar}] {bytes_per_sec} ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ctx.fail(e))?;
        file.write_all(&chunk.blob)
            .map_err(|e| CliError::io(format!("writing {}", part.display()), e))?;
        whole.update(&chunk.blob);
        tail.extend_from_slice(&chunk.blob);
        if tail.len() > TRAILER_LEN as usize {
            let settled = tail.len() - TRAILER_LEN as usize;
            body.update(&tail[..settled]);
            tail.drain(..settled);
        }
        written += chunk.blob.len() as u64;
        remaining = Some(chunk.remaining_bytes);
        if let Some(bar) = &progress {
            bar.set_length(written + chunk.remaining_bytes);
            bar.set_position(written);
        }
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    // A stream that stops early must not become a snapshot file: the member's last chunk
    // says nothing remains, and the file ends with etcd's SHA-256 trailer.
    if remaining != Some(0) {
        return Err(CliError::Failed(format!(
            "the snapshot stream ended early ({written} bytes received, {} more announced): save it again",
            remaining.map_or_else(|| "unknown".to_string(), |r| r.to_string())
        )));
    }
    file.sync_all()
        .map_err(|e| CliError::io(format!("syncing {}", part.display()), e))?;
    let verified = written % 512 == TRAILER_LEN && tail.len() == TRAILER_LEN as usize;
    if !verified {
        return Err(CliError::Failed(format!(
            "the snapshot ({written} bytes) has no SHA-256 trailer, so it may be incomplete: save it again"
        )));
    }
    if body.finalize().as_slice() != tail.as_slice() {
        return Err(CliError::Failed(
            "the snapshot failed its SHA-256 check: it was damaged in transit; save it again".into(),
        ));
    }
    Ok(Saved {
        bytes: written,
        sha256: hex(&whole.finalize()),
        verified,
    })
}

/// What [`check_snapshot`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct SnapshotCheck {
    /// The file's size.
    pub bytes: u64,
    /// Whether it carries etcd's SHA-256 trailer (and it matched).
    pub verified: bool,
}

/// Checks that `path` is a Conclave snapshot and, when it carries etcd's SHA-256
/// trailer (as `snapshot save` files do), that the checksum matches.
pub fn check_snapshot(path: &Path) -> Result<SnapshotCheck, CliError> {
    let io = |e| CliError::io(format!("reading {}", path.display()), e);
    let file = File::open(path).map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if bytes < 8 || input.read_exact(&mut magic).is_err() || &magic != SNAPSHOT_MAGIC {
        return Err(CliError::InvalidInput(format!(
            "{} is not a Conclave snapshot (save one with `conclavectl snapshot save`; an etcd \
             bbolt snapshot cannot be restored into Conclave)",
            path.display()
        )));
    }
    if bytes % 512 != TRAILER_LEN {
        return Ok(SnapshotCheck {
            bytes,
            verified: false,
        });
    }
    let mut hasher = Sha256::new();
    hasher.update(magic);
    let Some(mut remaining) = bytes.checked_sub(TRAILER_LEN + magic.len() as u64) else {
        return Err(CliError::InvalidInput(format!(
            "{} is too short to be a snapshot: the file is truncated",
            path.display()
        )));
    };
    let mut buffer = vec![0u8; 1 << 20];
    while remaining > 0 {
        let want = remaining.min(buffer.len() as u64) as usize;
        input.read_exact(&mut buffer[..want]).map_err(io)?;
        hasher.update(&buffer[..want]);
        remaining -= want as u64;
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    input.read_exact(&mut trailer).map_err(io)?;
    if hasher.finalize().as_slice() != trailer {
        return Err(CliError::InvalidInput(format!(
            "{} fails its SHA-256 check: the file is damaged or truncated",
            path.display()
        )));
    }
    Ok(SnapshotCheck {
        bytes,
        verified: true,
    })
}

/// Splits `name=url,name=url` (a name may appear once per peer URL).
pub fn parse_initial_cluster(text: &str) -> Result<Vec<(String, String)>, CliError> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, url)) if !name.trim().is_empty() && !url.trim().is_empty() => {
                Ok((name.trim().to_string(), url.trim().to_string()))
            }
            _ => Err(CliError::InvalidInput(format!(
                "--initial-cluster entry {pair:?} is not name=peerURL"
            ))),
        })
        .collect()
}

fn split_urls(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect()
}

/// Checks the restore's membership flags the way the node will use them: `name` must be
/// in `initial_cluster` with exactly the advertised peer URLs, every URL plain http.
/// Returns the initial cluster (defaulting to this member alone).
pub fn check_membership(args: &RestoreArgs) -> Result<Vec<(String, String)>, CliError> {
    let advertised = split_urls(&args.initial_advertise_peer_urls);
    if advertised.is_empty() {
        return Err(CliError::InvalidInput(
            "--initial-advertise-peer-urls is empty: give this member's peer URL".into(),
        ));
    }
    let cluster = if args.initial_cluster.trim().is_empty() {
        advertised
            .iter()
            .map(|u| (args.name.clone(), u.clone()))
            .collect()
    } else {
        parse_initial_cluster(&args.initial_cluster)?
    };
    for (_, url) in &cluster {
        if !url.starts_with("http://") {
            return Err(CliError::InvalidInput(format!(
                "peer URL {url:?} must start with http:// (TLS is not supported yet)"
            )));
        }
    }
    let mut own: Vec<&String> = cluster
        .iter()
        .filter(|(name, _)| *name == args.name)
        .map(|(_, url)| url)
        .collect();
    if own.is_empty() {
        return Err(CliError::InvalidInput(format!(
            "member {:?} is not in --initial-cluster {:?}: add {}={} or fix --name",
            args.name, args.initial_cluster, args.name, advertised[0]
        )));
    }
    let mut expected: Vec<&String> = advertised.iter().collect();
    own.sort();
    expected.sort();
    if own != expected {
        return Err(CliError::InvalidInput(format!(
            "--initial-cluster gives {} the peer URLs {:?} but --initial-advertise-peer-urls says {:?}: make them agree",
            args.name, own, expected
        )));
    }
    Ok(cluster)
}

/// Refuses a data dir that is in use; creates it if missing. Returns its absolute path.
fn prepare_data_dir(dir: &Path) -> Result<PathBuf, CliError> {
    if dir.exists() {
        if dir.join("member.json").exists() {
            return Err(CliError::InvalidInput(format!(
                "data dir {} already belongs to a member: restore into a fresh --data-dir",
                dir.display()
            )));
        }
        let mut entries =
            fs::read_dir(dir).map_err(|e| CliError::io(format!("reading {}", dir.display()), e))?;
        if entries.next().is_some() {
            return Err(CliError::InvalidInput(format!(
                "data dir {} is not empty: restore into a fresh --data-dir",
                dir.display()
            )));
        }
    }
    fs::create_dir_all(dir).map_err(|e| CliError::io(format!("creating {}", dir.display()), e))?;
    fs::canonicalize(dir).map_err(|e| CliError::io(format!("resolving {}", dir.display()), e))
}

/// Writes `contents` to `path` durably: a temporary file, fsync, rename, fsync the dir.
fn write_durably(
    path: &Path,
    contents: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let part = partial_path(path);
    let written = File::create(&part).and_then(|mut file| {
        contents(&mut file)?;
        file.sync_all()
    });
    written.and_then(|()| fs::rename(&part, path)).map_err(|e| {
        let _ = fs::remove_file(&part);
        CliError::io(format!("writing {}", path.display()), e)
    })?;
    sync_parent(path)
}

/// A TOML basic string (JSON's string escapes are valid TOML).
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The node configuration for the restored member's first start.
pub fn restore_config(args: &RestoreArgs, data_dir: &Path, cluster: &[(String, String)]) -> String {
    let initial_cluster: Vec<String> = cluster.iter().map(|(n, u)| format!("{n}={u}")).collect();
    let advertised = split_urls(&args.initial_advertise_peer_urls).join(",");
    let listen_peer = args
        .listen_peer_urls
        .clone()
        .unwrap_or_else(|| advertised.clone());
    let snapshot = data_dir.join(RESTORE_FILE);
    let mut text = format!(
        "# Written by `conclavectl snapshot restore`. Start the member with\n\
         #   conclave --config-file {config}\n\
         # (flags given on that command line override these settings). The snapshot is\n\
         # loaded at the first start only; later starts ignore restore_snapshot, and\n\
         # {restore} may be deleted once the member has started.\n",
        config = data_dir.join(CONFIG_FILE).display(),
        restore = snapshot.display(),
    );
    let mut setting = |key: &str, value: &str| {
        text.push_str(&format!("{key} = {}\n", toml_string(value)));
    };
    setting("name", &args.name);
    setting("data_dir", &data_dir.display().to_string());
    setting("initial_cluster", &initial_cluster.join(","));
    setting("initial_cluster_state", "new");
    setting("initial_cluster_token", &args.initial_cluster_token);
    setting("initial_advertise_peer_urls", &advertised);
    setting("listen_peer_urls", &listen_peer);
    if let Some(client) = &args.listen_client_urls {
        setting("listen_client_urls", client);
    }
    setting("restore_snapshot", &snapshot.display().to_string());
    text
}

/// `snapshot restore`: offline, no cluster needed.
pub fn restore(args: &RestoreArgs, format: Format, out: &mut dyn Write) -> Result<(), CliError> {
    let cluster = check_membership(args)?;
    let check = check_snapshot(&args.file)?;
    let data_dir = prepare_data_dir(&args.data_dir)?;
    let snapshot = data_dir.join(RESTORE_FILE);
    let config = data_dir.join(CONFIG_FILE);
    let prepared = write_durably(&snapshot, |target| {
        let mut source = File::open(&args.file)?;
        std::io::copy(&mut source, target).map(|_| ())
    })
    .and_then(|()| {
        let text = restore_config(args, &data_dir, &cluster);
        write_durably(&config, |file| file.write_all(text.as_bytes()))
    });
    if let Err(error) = prepared {
        // Leave no half-prepared data dir behind to be mistaken for a good one.
        let _ = fs::remove_file(&snapshot);
        let _ = fs::remove_file(&config);
        return Err(error);
    }
    let start = format!("conclave --config-file {}", config.display());
    if format == Format::Json {
        return output::json_line(
            out,
            &json!({
                "data_dir": data_dir.display().to_string(),
                "config_file": config.display().to_string(),
                "snapshot": snapshot.display().to_string(),
                "bytes": check.bytes,
                "verified": check.verified,
                "start": start,
            }),
        );
    }
    output::line(
        out,
        &format!(
            "Restored snapshot {} ({} bytes, {}) into {} for member {} of a new {}-member cluster.",
            args.file.display(),
            check.bytes,
            if check.verified {
                "SHA-256 verified"
            } else {
                "no checksum trailer to verify"
            },
            data_dir.display(),
            args.name,
            cluster
                .iter()
                .map(|(n, _)| n)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        ),
    )?;
    output::line(out, "Start the member with:")?;
    output::line(out, &format!("  {start}"))?;
    if cluster.iter().any(|(name, _)| *name != args.name) {
        output::line(
            out,
            "Restore every other member of --initial-cluster the same way: its own --name, --data-dir and \
             --initial-advertise-peer-urls, the same file, --initial-cluster and --initial-cluster-token.",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore_args(name: &str, cluster: &str, advertise: &str) -> RestoreArgs {
        RestoreArgs {
            file: PathBuf::from("backup.db"),
            data_dir: PathBuf::from("d"),
            name: name.into(),
            initial_cluster: cluster.into(),
            initial_cluster_token: "t".into(),
            initial_advertise_peer_urls: advertise.into(),
            listen_client_urls: None,
            listen_peer_urls: None,
        }
    }

    #[test]
    fn membership_must_name_this_member_with_its_advertised_urls() {
        let ok = restore_args("n1", "n1=http://a:1,n2=http://b:1", "http://a:1");
        assert_eq!(check_membership(&ok).unwrap().len(), 2);
        let alone = restore_args("n1", "", "http://a:1");
        assert_eq!(
            check_membership(&alone).unwrap(),
            vec![("n1".to_string(), "http://a:1".to_string())]
        );
        let missing = restore_args("n3", "n1=http://a:1,n2=http://b:1", "http://c:1");
        assert!(check_membership(&missing)
            .unwrap_err()
            .to_string()
            .contains("not in --initial-cluster"));
        let mismatch = restore_args("n1", "n1=http://a:1", "http://z:1");
        assert!(check_membership(&mismatch)
            .unwrap_err()
            .to_string()
            .contains("make them agree"));
        let tls = restore_args("n1", "n1=https://a:1", "https://a:1");
        assert!(check_membership(&tls).is_err());
    }

    #[test]
    fn snapshots_are_checked_by_magic_and_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = SNAPSHOT_MAGIC.to_vec();
        body.extend_from_slice(&[7u8; 1000]);
        body.resize(1024, 0);
        let digest = Sha256::digest(&body);
        let mut good = body.clone();
        good.extend_from_slice(&digest);
        let path = dir.path().join("good");
        fs::write(&path, &good).unwrap();
        assert_eq!(
            check_snapshot(&path).unwrap(),
            SnapshotCheck {
                bytes: 1056,
                verified: true
            }
        );

        let mut damaged = good.clone();
        damaged[100] ^= 1;
        fs::write(&path, &damaged).unwrap();
        assert!(check_snapshot(&path).unwrap_err().to_string().contains("SHA-256"));

        fs::write(&path, b"bbolt-ish data that is not ours").unwrap();
        assert!(check_snapshot(&path)
            .unwrap_err()
            .to_string()
            .contains("not a Conclave snapshot"));

        fs::write(&path, &body[..100]).unwrap();
        assert!(!check_snapshot(&path).unwrap().verified);
    }

    #[test]
    fn the_config_carries_every_first_start_setting() {
        let args = restore_args("n1", "n1=http://a:1,n2=http://b:1", "http://a:1");
        let text = restore_config(&args, Path::new("/data/n1"), &check_membership(&args).unwrap());
        for line in [
            "name = \"n1\"",
            "data_dir = \"/data/n1\"",
            "initial_cluster = \"n1=http://a:1,n2=http://b:1\"",
            "initial_cluster_state = \"new\"",
            "initial_cluster_token = \"t\"",
            "initial_advertise_peer_urls = \"http://a:1\"",
            "listen_peer_urls = \"http://a:1\"",
            "restore_snapshot = \"/data/n1/restore.snapshot\"",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_used_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("member.json"), "{}").unwrap();
        assert!(prepare_data_dir(dir.path())
            .unwrap_err()
            .to_string()
            .contains("already belongs"));
        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join("x"), "").unwrap();
        assert!(prepare_data_dir(other.path())
            .unwrap_err()
            .to_string()
            .contains("not empty"));
        let fresh = other.path().join("new/dir");
        assert!(prepare_data_dir(&fresh).unwrap().is_absolute());
    }
}
