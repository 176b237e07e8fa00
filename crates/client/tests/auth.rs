//! The SDK against members with auth enabled: credentials, typed refusals, the admin
//! API, and tokens that expire under running calls, watches and lease keep-alives.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{fast_options, leader, set_up_auth, start_cluster_with, ALICE_PW, ROOT_PW};
use conclave_client::auth::{Permission, PermissionType};
use conclave_client::watch::Watch;
use conclave_client::{Client, ClientOptions, Error, EventKind};
use conclave_testkit::{wait_until, Cluster};
use futures::StreamExt;

/// bcrypt cost 4 keeps logins quick in tests.
fn start(size: usize, extra: &[&str]) -> Cluster {
    let mut args = vec!["--bcrypt-cost", "4"];
    args.extend_from_slice(extra);
    start_cluster_with(size, &args)
}

fn endpoints(cluster: &Cluster, nodes: &[usize]) -> Vec<String> {
    nodes
        .iter()
        .map(|&i| cluster.node(i).client_url().to_string())
        .collect()
}

fn all(cluster: &Cluster) -> Vec<usize> {
    (1..=cluster.size()).collect()
}

async fn client_as(cluster: &Cluster, nodes: &[usize], user: &str, password: &str) -> Result<Client, Error> {
    Client::connect_with(
        endpoints(cluster, nodes),
        fast_options().credentials(user, password),
    )
    .await
}

/// root (with the root role), role `app` with READWRITE on `/app/`, user alice with
/// `app`; then auth enabled. Returns root's client.
async fn secure(cluster: &Cluster) -> Client {
    let admin = Client::connect_with(endpoints(cluster, &all(cluster)), fast_options())
        .await
        .expect("admin client");
    set_up_auth(&admin).await;
    client_as(cluster, &all(cluster), "root", ROOT_PW)
        .await
        .expect("root client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_allow_what_the_roles_grant_and_typed_errors_refuse_the_rest() {
    let cluster = start(3, &[]);
    leader(&cluster).await;
    let root = secure(&cluster).await;
    let alice = client_as(&cluster, &all(&cluster), "alice", ALICE_PW)
        .await
        .expect("alice logs in at connect");

    // Allowed: KV, a lease with keys under it, a lock and a watch under /app/.
    alice.put("/app/x", "1").await.expect("put /app/x");
    let got = alice.get("/app/x").await.expect("get /app/x").expect("present");
    assert_eq!(got.value, b"1");
    let lease = alice
        .grant_lease(Duration::from_secs(5))
        .await
        .expect("lease grant");
    let lock = alice.lock("/app/lk").await.expect("lock /app/lk");
    lock.unlock().await.expect("unlock");
    let mut events = alice
        .watch(Watch::prefix("/app/w/"))
        .await
        .expect("watch /app/w/");
    root.put("/app/w/1", "v").await.expect("root put");
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("event");
    assert_eq!(
        (event.kind, event.kv.key.as_slice()),
        (EventKind::Put, &b"/app/w/1"[..])
    );
    lease.revoke().await.expect("revoke");

    // Refused with typed errors.
    assert!(matches!(alice.get("/other").await, Err(Error::PermissionDenied)));
    assert!(matches!(
        alice.put("/other", "x").await,
        Err(Error::PermissionDenied)
    ));
    assert!(matches!(alice.lock("/other").await, Err(Error::PermissionDenied)));
    assert!(matches!(
        alice.watch(Watch::key("/other")).await,
        Err(Error::PermissionDenied)
    ));
    assert!(matches!(
        alice.auth().user_list().await,
        Err(Error::PermissionDenied)
    ));
    assert!(matches!(
        client_as(&cluster, &[1], "alice", "wrong").await,
        Err(Error::AuthenticationFailed)
    ));
    let anonymous = Client::connect_with(endpoints(&cluster, &[1]), fast_options())
        .await
        .expect("anonymous client");
    assert!(matches!(anonymous.get("/app/x").await, Err(Error::AuthRequired)));

    // A token from Authenticate works for another client over the same connections,
    // which then never logs in itself.
    let token = root
        .auth()
        .authenticate("alice", ALICE_PW)
        .await
        .expect("authenticate");
    let on_behalf = anonymous.with_token(&token.token).expect("token client");
    assert!(on_behalf.get("/app/x").await.expect("get with token").is_some());
    assert!(matches!(
        on_behalf.get("/other").await,
        Err(Error::PermissionDenied)
    ));
    let forged = anonymous.with_token("not-a-token").expect("token client");
    assert!(matches!(
        forged.get("/app/x").await,
        Err(Error::InvalidToken { .. })
    ));

    // Maintenance and cluster calls carry the token too.
    root.endpoint_status(&endpoints(&cluster, &[1])[0])
        .await
        .expect("status as root");
    root.member_list().await.expect("member list as root");
    // And the Groups service: root lists groups, a client without a user is refused.
    root.groups().await.expect("groups as root");
    assert!(matches!(anonymous.groups().await, Err(Error::AuthRequired)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_api_manages_users_roles_and_permissions() {
    let cluster = start(1, &[]);
    leader(&cluster).await;
    let root = secure(&cluster).await;
    let auth = root.auth();

    let status = auth.status().await.expect("status");
    assert!(status.enabled);
    assert_eq!(auth.user_list().await.expect("users"), vec!["alice", "root"]);
    assert_eq!(auth.role_list().await.expect("roles"), vec!["app", "root"]);
    assert_eq!(auth.user_get("alice").await.expect("alice"), vec!["app"]);

    auth.role_grant_permission("app", Permission::key(PermissionType::Read, "/k1"))
        .await
        .expect("grant key");
    auth.role_grant_permission("app", Permission::new(PermissionType::Write, "/a", "/b"))
        .await
        .expect("grant range");
    auth.role_grant_permission("app", Permission::from_key(PermissionType::ReadWrite, "/z"))
        .await
        .expect("grant from key");
    let perms: BTreeSet<(Vec<u8>, Vec<u8>, PermissionType)> = auth
        .role_get("app")
        .await
        .expect("role get")
        .into_iter()
        .map(|p| (p.key, p.range_end, p.perm_type))
        .collect();
    let expected: BTreeSet<(Vec<u8>, Vec<u8>, PermissionType)> = [
        (b"/app/".to_vec(), b"/app0".to_vec(), PermissionType::ReadWrite),
        (b"/k1".to_vec(), Vec::new(), PermissionType::Read),
        (b"/a".to_vec(), b"/b".to_vec(), PermissionType::Write),
        (b"/z".to_vec(), vec![0], PermissionType::ReadWrite),
    ]
    .into_iter()
    .collect();
    assert_eq!(perms, expected);

    // The new permissions hold for alice at once.
    let alice = client_as(&cluster, &[1], "alice", ALICE_PW).await.expect("alice");
    alice.put("/a1", "w").await.expect("write in [/a, /b)");
    assert!(matches!(alice.get("/a1").await, Err(Error::PermissionDenied)));
    alice.put("/zz", "w").await.expect("write from /z on");

    auth.role_revoke_permission("app", "/a", "/b")
        .await
        .expect("revoke range");
    assert!(matches!(
        alice.put("/a1", "w").await,
        Err(Error::PermissionDenied)
    ));
    match auth.role_revoke_permission("app", "/a", "/b").await {
        Err(Error::Server { message, .. }) => {
            assert_eq!(message, conclave_contract::errors::PERMISSION_NOT_GRANTED)
        }
        other => panic!("revoking twice: {other:?}"),
    }

    // A user without a password cannot log in; one with a changed password must use it.
    auth.user_add("svc", None).await.expect("user add --no-password");
    assert!(matches!(
        client_as(&cluster, &[1], "svc", "").await,
        Err(Error::AuthenticationFailed)
    ));
    auth.user_change_password("alice", "new-pw")
        .await
        .expect("passwd");
    // alice's client holds a token from before the change: it is refused, the client
    // logs in again with the old password, and that is refused.
    assert!(matches!(
        alice.get("/app/x").await,
        Err(Error::AuthenticationFailed)
    ));
    let renewed = client_as(&cluster, &[1], "alice", "new-pw")
        .await
        .expect("new password");
    renewed.put("/app/x", "2").await.expect("put with new password");

    auth.user_revoke_role("alice", "app").await.expect("revoke role");
    assert!(matches!(
        renewed.put("/app/x", "3").await,
        Err(Error::PermissionDenied)
    ));
    match auth.user_add("alice", Some("x")).await {
        Err(Error::Server { message, .. }) => {
            assert_eq!(message, conclave_contract::errors::USER_ALREADY_EXIST)
        }
        other => panic!("adding alice twice: {other:?}"),
    }
    auth.user_delete("svc").await.expect("user delete");
    auth.role_delete("app").await.expect("role delete");
    assert_eq!(auth.role_list().await.expect("roles"), vec!["root"]);
    assert_eq!(auth.user_list().await.expect("users"), vec!["alice", "root"]);

    auth.disable().await.expect("auth disable");
    assert!(!auth.status().await.expect("status").enabled);
    let anonymous = Client::connect_with(endpoints(&cluster, &[1]), fast_options())
        .await
        .expect("anonymous");
    anonymous
        .put("/other", "open")
        .await
        .expect("no auth, no token needed");
}

/// Waits until a token issued now has expired (so every token issued before it has too).
async fn wait_for_expiry(root: &Client, cluster: &Cluster) {
    let probe = root
        .auth()
        .authenticate("alice", ALICE_PW)
        .await
        .expect("probe token");
    let anonymous = Client::connect_with(endpoints(cluster, &all(cluster)), fast_options())
        .await
        .expect("probe client");
    let probe = anonymous.with_token(&probe.token).expect("probe client");
    wait_until("the probe token to expire", Duration::from_secs(15), || {
        let probe = probe.clone();
        async move { matches!(probe.get("/app/x").await, Err(Error::InvalidToken { .. })).then_some(()) }
    })
    .await
    .expect("token expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_token_is_renewed_and_the_call_sent_once_more() {
    let cluster = start(1, &["--auth-token-ttl", "2"]);
    leader(&cluster).await;
    let root = secure(&cluster).await;
    let alice = client_as(&cluster, &[1], "alice", ALICE_PW).await.expect("alice");
    alice.put("/app/x", "1").await.expect("first put");

    wait_for_expiry(&root, &cluster).await;
    // A write is re-sent too: a refused token is refused before anything is proposed.
    let put = alice.put("/app/x", "2").await.expect("put after expiry");
    let got = root.get("/app/x").await.expect("read back").expect("present");
    assert_eq!(
        (got.value.as_slice(), got.mod_revision),
        (&b"2"[..], put.revision)
    );
    // Exactly one write applied: version 2.
    assert_eq!(got.version, 2);

    wait_for_expiry(&root, &cluster).await;
    assert!(alice.auth().user_get("alice").await.expect("own user record") == vec!["app"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_and_a_lease_keep_alive_outlive_their_token_across_a_member_kill() {
    let cluster = start(3, &["--auth-token-ttl", "2"]);
    let old_leader = leader(&cluster).await;
    let root = secure(&cluster).await;
    // alice prefers a follower, which is killed once her token has expired: her watch
    // and keep-alive streams are re-opened elsewhere with an expired token.
    let follower = (1..=3).find(|&i| i != old_leader).expect("a follower");
    let others: Vec<usize> = (1..=3).filter(|&i| i != follower).collect();
    let preference = [follower, others[0], others[1]];
    let alice = Client::connect_with(
        endpoints(&cluster, &preference),
        ClientOptions {
            ..fast_options().credentials("alice", ALICE_PW)
        },
    )
    .await
    .expect("alice");

    let lease = alice.grant_lease(Duration::from_secs(4)).await.expect("lease");
    let mut events = alice.watch(Watch::prefix("/app/w/")).await.expect("watch");
    root.put("/app/w/0", "before").await.expect("put before");
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("first event in time")
        .expect("open")
        .expect("event");
    assert_eq!(first.kv.key, b"/app/w/0");

    wait_for_expiry(&root, &cluster).await;
    cluster.kill(follower).expect("kill the follower alice uses");
    let killed_at = tokio::time::Instant::now();

    let writer = client_as(&cluster, &others, "root", ROOT_PW)
        .await
        .expect("writer");
    let mut written = BTreeSet::new();
    for i in 1..=20 {
        let put = writer
            .put(format!("/app/w/{i}"), "after")
            .await
            .expect("put after the kill");
        written.insert(put.revision);
    }
    let mut seen = BTreeSet::new();
    while seen.len() < written.len() {
        let event = tokio::time::timeout(Duration::from_secs(15), events.next())
            .await
            .expect("events after the kill")
            .expect("stream open")
            .expect("the watch resumed after logging in again");
        assert!(seen.insert(event.kv.mod_revision), "event twice: {event:?}");
    }
    assert_eq!(seen, written);

    // The keep-alive renewed the lease after the kill (with a new token): its local
    // deadline moved past what the last pre-kill renewal allowed.
    wait_until("a keep-alive after the kill", Duration::from_secs(10), || {
        let deadline = lease.deadline();
        async move {
            deadline
                .filter(|d| *d > killed_at + Duration::from_millis(3500))
                .map(|_| ())
        }
    })
    .await
    .expect("keep-alive renewed");
    assert!(!lease.is_lost());
    let info = root.lease_time_to_live(lease.id(), false).await.expect("ttl");
    assert!(info.ttl > 0, "the lease is alive on the cluster: {info:?}");
}
