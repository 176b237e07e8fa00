//! Compiles the etcd v3 wire API and Conclave's peer protocol (top-level `proto/` directory)
//! into Rust with prost + tonic (both clients and servers).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Proto files to compile, relative to the proto root.
const PROTOS: &[&str] = &[
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
    "conclave/raft.proto",
    "conclave/partition.proto",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let proto_root = manifest_dir.join("../../proto");
    let proto_root = proto_root.canonicalize().unwrap_or_else(|e| {
        panic!(
            "conclave-proto: proto directory {} not found: {e}",
            proto_root.display()
        )
    });

    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!("cargo:rerun-if-env-changed=PROTOC");

    check_protoc();

    let protos: Vec<PathBuf> = PROTOS.iter().map(|p| proto_root.join(p)).collect();
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(&protos, &[proto_root])
        .unwrap_or_else(|e| panic!("conclave-proto: failed to compile protobuf definitions: {e}"));
}

/// Fails the build with an actionable message when `protoc` is not available.
fn check_protoc() {
    let protoc = env::var_os("PROTOC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("protoc"));
    match Command::new(&protoc).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "conclave-proto: `{} --version` failed ({}): {}\n\
             Install Debian's `protobuf-compiler` package (apt-get install protobuf-compiler) \
             or set PROTOC to a working protoc binary.",
            display(&protoc),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "conclave-proto: could not run the protobuf compiler `{}`: {e}\n\
             protoc is required to build Conclave. Install Debian's `protobuf-compiler` package \
             (apt-get install protobuf-compiler) or set the PROTOC environment variable to the \
             path of a protoc binary.",
            display(&protoc)
        ),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
