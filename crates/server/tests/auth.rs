//! Authentication and access control against real members: Debian's `etcdctl` 3.4 for
//! the etcd walk-through, the `etcd-client` crate with credentials, and raw gRPC calls
//! carrying one token to every member.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use conclave_contract::errors;
use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::auth_client::AuthClient;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::v3electionpb as el;
use conclave_proto::v3electionpb::election_client::ElectionClient;
use conclave_testkit::{leader_index, wait_until, Cluster, ClusterOptions};
use tonic::transport::Channel;
use tonic::Code;

/// bcrypt cost 4 keeps the tests quick; the default (10) is what production uses.
fn auth_options(size: usize, extra: &[&str]) -> ClusterOptions {
    let mut options = fast_options(size);
    options
        .extra_args
        .extend(["--bcrypt-cost", "4"].iter().map(|s| s.to_string()));
    options.extra_args.extend(extra.iter().map(|s| s.to_string()));
    options
}

fn start(size: usize, extra: &[&str]) -> Cluster {
    Cluster::start(bin(), auth_options(size, extra)).expect("start cluster")
}

fn etcdctl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut endpoints: Vec<String> = cluster
        .client_endpoints()
        .iter()
        .map(|e| e.trim_start_matches("http://").to_string())
        .collect();
    // etcdctl asks one member for a snapshot.
    if args.contains(&"snapshot") {
        endpoints.truncate(1);
    }
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl not found: install Debian's etcd-client package (make test does)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let (success, stdout, stderr) = etcdctl(cluster, args, None);
    assert!(success, "etcdctl {args:?} failed: {stderr}\n{stdout}");
    stdout
}

/// etcdctl fails, and its last error line carries `message`.
fn fails_with(cluster: &Cluster, args: &[&str], message: &str) {
    let (success, stdout, stderr) = etcdctl(cluster, args, None);
    assert!(!success, "etcdctl {args:?} should fail: {stdout}");
    assert!(
        stderr.contains(message),
        "etcdctl {args:?}: expected {message:?} in {stderr}"
    );
}

const ROOT: &str = "--user=root:rootpw";
const ALICE: &str = "--user=alice:alicepw";

/// root (with the root role), auth on, role `app` with readwrite on `/app/`, user `alice`
/// with `app` — the walk-through of etcd's docs.
fn set_up_alice(cluster: &Cluster) {
    assert_eq!(
        ok(cluster, &["user", "add", "root:rootpw"]),
        "User root created\n"
    );
    assert_eq!(ok(cluster, &["auth", "enable"]), "Authentication Enabled\n");
    assert_eq!(ok(cluster, &[ROOT, "role", "add", "app"]), "Role app created\n");
    assert_eq!(
        ok(
            cluster,
            &[
                ROOT,
                "role",
                "grant-permission",
                "--prefix=true",
                "app",
                "readwrite",
                "/app/"
            ]
        ),
        "Role app updated\n"
    );
    assert_eq!(
        ok(cluster, &[ROOT, "user", "add", "alice:alicepw"]),
        "User alice created\n"
    );
    assert_eq!(
        ok(cluster, &[ROOT, "user", "grant-role", "alice", "app"]),
        "Role app is granted to user alice\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_users_roles_and_prefix_permissions_allow_and_deny_as_etcd_does() {
    let cluster = start(3, &[]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    ok(&cluster, &["put", "/other", "before"]);
    set_up_alice(&cluster);

    // Without a token, and with a wrong password.
    fails_with(&cluster, &["get", "/app/a"], errors::USER_EMPTY);
    fails_with(
        &cluster,
        &["--user=alice:nope", "get", "/app/a"],
        errors::AUTH_FAILED,
    );
    fails_with(
        &cluster,
        &["--user=mallory:x", "get", "/app/a"],
        errors::AUTH_FAILED,
    );

    // Inside the prefix: allowed.
    assert_eq!(ok(&cluster, &[ALICE, "put", "/app/a", "1"]), "OK\n");
    assert_eq!(ok(&cluster, &[ALICE, "get", "/app/a"]), "/app/a\n1\n");
    assert_eq!(ok(&cluster, &[ALICE, "get", "--prefix", "/app/"]), "/app/a\n1\n");
    let (success, stdout, stderr) = etcdctl(
        &cluster,
        &[ALICE, "txn"],
        Some("value(\"/app/a\") = \"1\"\n\nput /app/b 2\n\nput /app/b 3\n\n"),
    );
    assert!(success, "{stderr}");
    assert_eq!(stdout, "SUCCESS\n\nOK\n");
    assert_eq!(ok(&cluster, &[ALICE, "del", "/app/b"]), "1\n");
    assert!(ok(&cluster, &[ALICE, "lock", "/app/lk", "--", "echo", "held"]).contains("held\n"));

    // Outside: denied, for every kind of request.
    let denied = errors::PERMISSION_DENIED;
    fails_with(&cluster, &[ALICE, "get", "/other"], denied);
    fails_with(&cluster, &[ALICE, "put", "/other", "x"], denied);
    fails_with(&cluster, &[ALICE, "del", "/other"], denied);
    fails_with(&cluster, &[ALICE, "get", "--from-key", ""], denied);
    fails_with(&cluster, &[ALICE, "get", "--prefix", "/_conclave/auth/"], denied);
    // A txn is denied by any compare or op outside, in either branch.
    let (success, _, stderr) = etcdctl(
        &cluster,
        &[ALICE, "txn"],
        Some("value(\"/other\") = \"before\"\n\nput /app/c 1\n\n\n"),
    );
    assert!(!success && stderr.contains(denied), "{stderr}");
    let (success, _, stderr) = etcdctl(
        &cluster,
        &[ALICE, "txn"],
        Some("value(\"/app/a\") = \"1\"\n\nput /app/c 1\n\nput /other 2\n\n"),
    );
    assert!(!success && stderr.contains(denied), "{stderr}");
    fails_with(
        &cluster,
        &[ALICE, "lock", "/locks/x", "--", "echo", "held"],
        denied,
    );
    fails_with(&cluster, &[ALICE, "elect", "/elections/x", "me"], denied);
    // A watch outside is created canceled, with etcd 3.4's reason.
    let (success, stdout, stderr) = etcdctl(&cluster, &[ALICE, "watch", "/other"], None);
    assert!(!success, "{stdout}");
    assert!(
        format!("{stdout}{stderr}").contains(&format!("code = PermissionDenied desc = {denied}")),
        "{stdout}{stderr}"
    );
    // Revoking a lease that holds a key alice may not write.
    let granted = ok(&cluster, &[ROOT, "lease", "grant", "60"]);
    let lease = granted.split_whitespace().nth(1).expect("lease id").to_string();
    ok(&cluster, &[ROOT, "put", "--lease", &lease, "/other/leased", "v"]);
    fails_with(&cluster, &[ALICE, "lease", "revoke", &lease], denied);
    fails_with(
        &cluster,
        &[ALICE, "lease", "timetolive", "--keys", &lease],
        denied,
    );
    // Admin calls.
    fails_with(&cluster, &[ALICE, "user", "list"], denied);
    fails_with(&cluster, &[ALICE, "role", "add", "x"], denied);
    fails_with(&cluster, &[ALICE, "compaction", "1"], denied);
    let snapshot = cluster.dir().join("alice.db");
    fails_with(
        &cluster,
        &[ALICE, "snapshot", "save", &snapshot.to_string_lossy()],
        denied,
    );
    fails_with(&cluster, &[ALICE, "auth", "disable"], denied);
    // Nothing denied was written.
    assert_eq!(ok(&cluster, &[ROOT, "get", "/other"]), "/other\nbefore\n");

    // What root and alice may read about themselves, in etcdctl's words.
    assert_eq!(
        ok(&cluster, &[ALICE, "user", "get", "alice"]),
        "User: alice\nRoles: app\n"
    );
    assert_eq!(
        ok(&cluster, &[ROOT, "role", "get", "app"]),
        "Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:\n\t[/app/, /app0) (prefix /app/)\n"
    );
    assert_eq!(ok(&cluster, &[ROOT, "user", "list"]), "alice\nroot\n");
    assert_eq!(ok(&cluster, &[ROOT, "role", "list"]), "app\nroot\n");
    fails_with(&cluster, &[ROOT, "user", "get", "nobody"], errors::USER_NOT_FOUND);
    fails_with(&cluster, &[ROOT, "role", "get", "nobody"], errors::ROLE_NOT_FOUND);
    fails_with(
        &cluster,
        &[ROOT, "user", "add", "alice:x"],
        errors::USER_ALREADY_EXIST,
    );
    fails_with(
        &cluster,
        &[ROOT, "user", "revoke-role", "alice", "root"],
        errors::ROLE_NOT_GRANTED,
    );
    fails_with(
        &cluster,
        &[ROOT, "role", "revoke-permission", "app", "/nope"],
        errors::PERMISSION_NOT_GRANTED,
    );
    fails_with(
        &cluster,
        &[ROOT, "role", "grant-permission", "app", "read", "/b", "/a"],
        errors::INVALID_AUTH_MGMT,
    );
    // A single key and a from-key grant.
    ok(
        &cluster,
        &[ROOT, "role", "grant-permission", "app", "read", "/other"],
    );
    assert_eq!(ok(&cluster, &[ALICE, "get", "/other"]), "/other\nbefore\n");
    fails_with(&cluster, &[ALICE, "put", "/other", "x"], denied);
    ok(
        &cluster,
        &[
            ROOT,
            "role",
            "grant-permission",
            "--from-key",
            "app",
            "read",
            "/z",
        ],
    );
    ok(&cluster, &[ROOT, "put", "/zz", "1"]);
    assert_eq!(ok(&cluster, &[ALICE, "get", "--from-key", "/z"]), "/zz\n1\n");
    // Revoking the role takes the rights away.
    ok(&cluster, &[ROOT, "user", "revoke-role", "alice", "app"]);
    fails_with(&cluster, &[ALICE, "get", "/app/a"], denied);

    // Auth off: anyone again.
    assert_eq!(
        ok(&cluster, &[ROOT, "auth", "disable"]),
        "Authentication Disabled\n"
    );
    assert_eq!(ok(&cluster, &["get", "/app/a"]), "/app/a\n1\n");
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

async fn token_from(url: &str, name: &str, password: &str) -> Result<String, tonic::Status> {
    let mut auth = AuthClient::new(channel(url).await);
    let response = auth
        .authenticate(pb::AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await?;
    Ok(response.into_inner().token)
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("token", token.parse().expect("ascii token"));
    request
}

async fn put_as(url: &str, token: &str, key: &str) -> Result<(), tonic::Status> {
    let mut kv = KvClient::new(channel(url).await);
    kv.put(with_token(
        pb::PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            ..Default::default()
        },
        token,
    ))
    .await
    .map(|_| ())
}

async fn get_as(url: &str, token: &str, key: &str) -> Result<(), tonic::Status> {
    let mut kv = KvClient::new(channel(url).await);
    kv.range(with_token(
        pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        },
        token,
    ))
    .await
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_from_one_member_works_on_every_member_and_after_the_leader_dies() {
    let cluster = start(3, &[]);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    set_up_alice(&cluster);
    let urls: Vec<String> = cluster.client_endpoints();
    let token = token_from(&urls[leader - 1], "alice", "alicepw")
        .await
        .expect("authenticate");
    for url in &urls {
        put_as(url, &token, "/app/k").await.expect("put with the token");
        get_as(url, &token, "/app/k").await.expect("get with the token");
        let denied = put_as(url, &token, "/other").await.expect_err("outside /app/");
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert_eq!(denied.message(), errors::PERMISSION_DENIED);
    }
    // Elections: write on the name's keys (`{name}/…`), with a lease of the user's own.
    let channel_b = channel(&urls[leader % 3]).await;
    let lease = conclave_proto::etcdserverpb::lease_client::LeaseClient::new(channel_b.clone())
        .lease_grant(with_token(
            pb::LeaseGrantRequest {
                ttl: 30,
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("an authenticated user grants a lease")
        .into_inner()
        .id;
    let mut election = ElectionClient::new(channel_b);
    let campaign = |name: &str| {
        with_token(
            el::CampaignRequest {
                name: name.into(),
                lease,
                value: b"me".to_vec(),
            },
            &token,
        )
    };
    let won = election
        .campaign(campaign("/app/e"))
        .await
        .expect("campaign inside /app/")
        .into_inner();
    assert!(won.leader.expect("leader key").key.starts_with(b"/app/e/"));
    let denied = election
        .campaign(campaign("/elections/x"))
        .await
        .expect_err("campaign outside /app/");
    assert_eq!(
        (denied.code(), denied.message()),
        (Code::PermissionDenied, errors::PERMISSION_DENIED)
    );

    let forged = format!("{token}x");
    let refused = get_as(&urls[0], &forged, "/app/k").await.expect_err("forged");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::Unauthenticated, errors::INVALID_AUTH_TOKEN)
    );

    cluster.kill(leader).expect("kill the leader");
    // Members are numbered from 1; `urls` from 0.
    let survivors: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();
    for i in survivors {
        let url = urls[i - 1].clone();
        let token = token.clone();
        wait_until_put(&url, &token).await;
    }
}

async fn wait_until_put(url: &str, token: &str) {
    let url = url.to_string();
    let token = token.to_string();
    wait_until(
        "a put with the old token on a survivor",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            let token = token.clone();
            async move {
                match put_as(&url, &token, "/app/after").await {
                    Ok(()) => Some(()),
                    Err(status) => {
                        // Only unavailability is waited out; a refused token fails the test.
                        assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
                        assert_ne!(status.code(), Code::PermissionDenied, "{status:?}");
                        None
                    }
                }
            }
        },
    )
    .await
    .expect("the token works after the leader died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_role_denies_at_once_on_every_member() {
    let cluster = start(3, &[]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    set_up_alice(&cluster);
    let urls = cluster.client_endpoints();
    let token = token_from(&urls[0], "alice", "alicepw")
        .await
        .expect("authenticate");
    let mut admin = AuthClient::new(channel(&urls[0]).await);
    let root = token_from(&urls[0], "root", "rootpw").await.expect("root");
    // Each round: revoke through member 0, and at once write and read through another
    // member: the very next request must be refused there (no waiting for it to catch up).
    for round in 0..6 {
        let other = &urls[1 + round % 2];
        put_as(other, &token, "/app/r")
            .await
            .expect("allowed before the revoke");
        admin
            .user_revoke_role(with_token(
                pb::AuthUserRevokeRoleRequest {
                    name: "alice".into(),
                    role: "app".into(),
                },
                &root,
            ))
            .await
            .expect("revoke");
        let put = put_as(other, &token, "/app/r").await.expect_err("denied at once");
        assert_eq!(put.code(), Code::PermissionDenied, "round {round}: {put:?}");
        let get = get_as(other, &token, "/app/r").await.expect_err("denied at once");
        assert_eq!(get.code(), Code::PermissionDenied, "round {round}: {get:?}");
        admin
            .user_grant_role(with_token(
                pb::AuthUserGrantRoleRequest {
                    user: "alice".into(),
                    role: "app".into(),
                },
                &root,
            ))
            .await
            .expect("grant again");
    }
}

/// A member that lags (it gets no appends from the leader, yet still forwards writes to
/// it) has not applied a revocation: a write it checks against its stale permissions must
/// still be refused, because the write carries the auth state it was checked against.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_member_never_lets_a_revoked_user_write() {
    let mut options = auth_options(3, &[]);
    // Long enough that the lagging follower does not campaign while the test runs.
    options.election_timeout_ms = Some(6000);
    let cluster = Cluster::start(bin(), options).expect("start cluster");
    let leader = leader_index(&cluster, Duration::from_secs(40))
        .await
        .expect("leader");
    set_up_alice(&cluster);
    let urls = cluster.client_endpoints();
    let lagging = if leader == 1 { 2 } else { 1 };
    let token = token_from(&urls[lagging - 1], "alice", "alicepw")
        .await
        .expect("authenticate");
    put_as(&urls[lagging - 1], &token, "/app/lag")
        .await
        .expect("allowed before the revoke");
    let root = token_from(&urls[leader - 1], "root", "rootpw")
        .await
        .expect("root");

    cluster.block_direction(leader, lagging);
    let mut admin = AuthClient::new(channel(&urls[leader - 1]).await);
    admin
        .user_revoke_role(with_token(
            pb::AuthUserRevokeRoleRequest {
                name: "alice".into(),
                role: "app".into(),
            },
            &root,
        ))
        .await
        .expect("revoke");
    // The lagging member still holds the grant; the write it forwards must not land. It
    // is refused, or fails while the member cannot catch up (then the retry after healing
    // is refused).
    let first = put_as(&urls[lagging - 1], &token, "/app/lag").await;
    cluster.heal();
    match first {
        Ok(()) => panic!("a lagging member let a revoked user write"),
        Err(status) if status.code() == Code::PermissionDenied => {}
        Err(status) => {
            assert_ne!(status.code(), Code::Unauthenticated, "{status:?}");
            let retried = wait_until("the lagging member to answer", Duration::from_secs(30), || {
                let (url, token) = (urls[lagging - 1].clone(), token.clone());
                async move {
                    match put_as(&url, &token, "/app/lag").await {
                        Ok(()) => Some(Ok(())),
                        Err(s) if s.code() == Code::PermissionDenied => Some(Err(s)),
                        Err(_) => None,
                    }
                }
            })
            .await
            .expect("an answer");
            assert!(retried.is_err(), "a revoked user wrote after healing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_etcd_client_crate_authenticates_and_is_refused_outside_its_rights() {
    let cluster = start(1, &[]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    set_up_alice(&cluster);
    let options = etcd_client::ConnectOptions::new().with_user("alice", "alicepw");
    let mut client = etcd_client::Client::connect(cluster.client_endpoints(), Some(options))
        .await
        .expect("connect with credentials");
    client.put("/app/x", "1", None).await.expect("put inside");
    assert_eq!(
        get_value(&mut client, "/app/x").await.expect("get"),
        Some(b"1".to_vec())
    );
    assert_grpc_error(
        client.put("/elsewhere", "1", None).await,
        Code::PermissionDenied,
        errors::PERMISSION_DENIED,
    );
    let own = client
        .user_get("alice")
        .await
        .expect("a user reads its own record");
    assert_eq!(own.roles(), ["app".to_string()]);
    assert_grpc_error(
        client.role_list().await.map(|_| ()),
        Code::PermissionDenied,
        errors::PERMISSION_DENIED,
    );
    let wrong = etcd_client::ConnectOptions::new().with_user("alice", "wrong");
    let refused = etcd_client::Client::connect(cluster.client_endpoints(), Some(wrong))
        .await
        .map(|_| ());
    assert_grpc_error(refused, Code::InvalidArgument, errors::AUTH_FAILED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_expire_after_the_ttl_and_a_changed_password_voids_old_tokens() {
    let cluster = start(1, &["--auth-token-ttl", "2"]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    set_up_alice(&cluster);
    let url = cluster.client_endpoints()[0].clone();
    let token = token_from(&url, "alice", "alicepw").await.expect("authenticate");
    get_as(&url, &token, "/app/x").await.expect("fresh token");
    let expired = wait_until("the token to expire", Duration::from_secs(10), || {
        let url = url.clone();
        let token = token.clone();
        async move { get_as(&url, &token, "/app/x").await.err() }
    })
    .await
    .expect("expiry");
    assert_eq!(
        (expired.code(), expired.message()),
        (Code::Unauthenticated, errors::INVALID_AUTH_TOKEN)
    );

    let token = token_from(&url, "alice", "alicepw").await.expect("authenticate");
    let (success, _, stderr) = etcdctl(
        &cluster,
        &[ROOT, "user", "passwd", "alice", "--interactive=false"],
        Some("newpw\n"),
    );
    assert!(success, "{stderr}");
    let voided = get_as(&url, &token, "/app/x")
        .await
        .expect_err("old password's token");
    assert_eq!(voided.message(), errors::INVALID_AUTH_TOKEN);
    let token = token_from(&url, "alice", "newpw").await.expect("new password");
    get_as(&url, &token, "/app/x").await.expect("new token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_are_rate_limited_and_counted() {
    let cluster = start(1, &[]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    set_up_alice(&cluster);
    let url = cluster.client_endpoints()[0].clone();
    let mut codes = Vec::new();
    for _ in 0..7 {
        let error = token_from(&url, "alice", "guess")
            .await
            .expect_err("wrong password");
        codes.push(error.code());
    }
    assert_eq!(&codes[..5], &[Code::InvalidArgument; 5]);
    assert_eq!(&codes[5..], &[Code::ResourceExhausted; 2]);
    // Even the right password waits while the user is locked; another user does not.
    let locked = token_from(&url, "alice", "alicepw").await.expect_err("locked");
    assert_eq!(locked.message(), errors::AUTH_RATE_LIMITED);
    token_from(&url, "root", "rootpw")
        .await
        .expect("root is not locked");
    let scrape = common::scrape::scrape_node(&cluster, 1).await.expect("scrape");
    assert_eq!(
        scrape.sum("conclave_auth_failures_total", &[("reason", "password")]),
        5.0
    );
    assert!(scrape.sum("conclave_auth_failures_total", &[("reason", "rate_limited")]) >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_auth_input_gets_clear_errors_and_the_member_keeps_serving() {
    let cluster = start(1, &[]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let url = cluster.client_endpoints()[0].clone();
    let mut auth = AuthClient::new(channel(&url).await);
    // Auth is off: Authenticate says so.
    let off = token_from(&url, "root", "x").await.expect_err("auth off");
    assert_eq!(off.message(), errors::AUTH_NOT_ENABLED);
    // Enabling without root.
    let no_root = auth
        .auth_enable(pb::AuthEnableRequest {})
        .await
        .expect_err("no root");
    assert_eq!(
        (no_root.code(), no_root.message()),
        (Code::FailedPrecondition, errors::ROOT_USER_NOT_EXIST)
    );
    // An oversized Authenticate.
    let huge = auth
        .authenticate(pb::AuthenticateRequest {
            name: "x".repeat(1_700_000),
            password: String::new(),
        })
        .await
        .expect_err("too large");
    assert_eq!(huge.message(), errors::REQUEST_TOO_LARGE);
    // Empty names, unknown users and roles, permissions without a range.
    let empty = auth
        .user_add(pb::AuthUserAddRequest {
            name: String::new(),
            password: "p".into(),
            ..Default::default()
        })
        .await
        .expect_err("empty name");
    assert_eq!(empty.message(), errors::USER_EMPTY);
    let unknown = auth
        .user_grant_role(pb::AuthUserGrantRoleRequest {
            user: "ghost".into(),
            role: "root".into(),
        })
        .await
        .expect_err("unknown user");
    assert_eq!(unknown.message(), errors::USER_NOT_FOUND);
    let no_perm = auth
        .role_grant_permission(pb::AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: None,
        })
        .await
        .expect_err("no permission");
    assert_eq!(no_perm.message(), errors::PERMISSION_NOT_GIVEN);
    for (key, range_end) in [(&b""[..], &b""[..]), (b"/b", b"/a"), (b"/a", b"/a")] {
        let bad = auth
            .role_grant_permission(pb::AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(conclave_proto::authpb::Permission {
                    perm_type: 0,
                    key: key.to_vec(),
                    range_end: range_end.to_vec(),
                }),
            })
            .await
            .expect_err("bad range");
        assert_eq!(bad.message(), errors::INVALID_AUTH_MGMT, "{key:?} {range_end:?}");
    }
    let no_role = auth
        .role_get(pb::AuthRoleGetRequest { role: "ghost".into() })
        .await
        .expect_err("unknown role");
    assert_eq!(no_role.message(), errors::ROLE_NOT_FOUND);
    // Clients cannot write the auth records through the KV API.
    let mut kv = KvClient::new(channel(&url).await);
    let guarded = kv
        .put(pb::PutRequest {
            key: b"/_conclave/auth/users/root".to_vec(),
            value: b"{}".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("reserved");
    assert_eq!(guarded.code(), Code::PermissionDenied);
    // Still serving.
    let mut client = client_of(&cluster, 1).await;
    client.put("k", "v", None).await.expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passwords_are_never_stored_in_plaintext() {
    let cluster = start(3, &[]);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let password = "plaintext-canary-7f3a91";
    ok(&cluster, &["user", "add", &format!("canary:{password}")]);
    let (success, _, stderr) = etcdctl(
        &cluster,
        &["user", "passwd", "canary", "--interactive=false"],
        Some(&format!("{password}-2\n")),
    );
    assert!(success, "{stderr}");
    // A snapshot file (searched too: it lies in the cluster's directory).
    ok(
        &cluster,
        &[
            "snapshot",
            "save",
            &cluster.dir().join("snap.db").to_string_lossy(),
        ],
    );
    for i in 1..=3 {
        cluster.terminate(i).expect("stop the member");
    }
    let mut files = 0;
    let mut hashes = 0;
    let mut stack = vec![cluster.dir().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read file");
            files += 1;
            assert!(
                !bytes.windows(password.len()).any(|w| w == password.as_bytes()),
                "{} holds the password in plaintext",
                path.display()
            );
            if bytes.windows(4).any(|w| w == b"$2b$") {
                hashes += 1;
            }
        }
    }
    assert!(files > 10, "searched {files} files");
    assert!(
        hashes > 0,
        "no bcrypt hash found in {files} files: the search saw no auth data"
    );
}
