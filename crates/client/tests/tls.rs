//! The SDK over TLS against a real 3-member cluster with mutual TLS on the client port
//! and peer TLS: `https://` and scheme-less endpoints, a CA and a client certificate, the
//! server-name override, refusals (no client certificate, another CA, a wrong name), and
//! credentials over mutual TLS.

mod common;

use std::time::Duration;

use common::{fast_options, set_up_auth, ALICE_PW};
use conclave_client::{Client, ClientOptions, Error, Tls, TlsSettings};
use conclave_testkit::{TlsCluster, TlsClusterOptions};

async fn cluster_with(options: TlsClusterOptions) -> TlsCluster {
    let bin = conclave_testkit::node_binary().expect("node binary");
    TlsCluster::start_healthy(&bin, options, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn cluster() -> TlsCluster {
    cluster_with(TlsClusterOptions::default()).await
}

fn trusting(cluster: &TlsCluster) -> TlsSettings {
    TlsSettings::new().ca_file(cluster.ca().ca_file())
}

fn with_identity(cluster: &TlsCluster) -> TlsSettings {
    let me = cluster.client_identity();
    trusting(cluster).identity_files(&me.cert, &me.key)
}

fn options(settings: TlsSettings) -> ClientOptions {
    ClientOptions {
        retry_budget: Duration::from_secs(3),
        ..fast_options()
    }
    .tls(Tls::new(settings).expect("TLS settings"))
}

/// A read that must fail (after the short retry budget); its error text.
async fn refused(endpoints: &[String], options: ClientOptions) -> String {
    let client = Client::connect_with(endpoints, options).await.expect("client");
    match client.get("/refused").await {
        Ok(r) => panic!("served: {r:?}"),
        Err(e @ Error::Unavailable { .. }) => e.to_string(),
        Err(other) => panic!("expected unavailable, got {other:?}"),
    }
}

/// A write refused because the client cannot verify the member: the handshake failed
/// before anything was sent, so the SDK says so (retryable) rather than "outcome unknown".
async fn write_never_sent(endpoints: &[String], options: ClientOptions) -> String {
    let client = Client::connect_with(endpoints, options).await.expect("client");
    match client.put("/refused", "x").await {
        Ok(r) => panic!("served: {r:?}"),
        Err(e @ Error::Unavailable { .. }) => e.to_string(),
        Err(other) => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sdk_works_over_mutual_tls_and_refuses_what_it_cannot_verify() {
    let cluster = cluster().await;
    let urls = cluster.client_urls();

    let client = Client::connect_with(&urls, options(with_identity(&cluster)))
        .await
        .expect("client");
    client.put("/sdk/tls", "yes").await.expect("put over TLS");
    let kv = client.get("/sdk/tls").await.expect("get").expect("present");
    assert_eq!(kv.value, b"yes");
    // Per-member calls go to the URLs the members advertise (https://), through the
    // same TLS settings.
    let members = client.member_list().await.expect("member list");
    assert_eq!(members.len(), 3);
    for member in &members {
        let url = &member.client_urls[0];
        assert!(url.starts_with("https://"), "{url}");
        client.endpoint_status(url).await.expect("status over TLS");
    }

    // Scheme-less endpoints use TLS once TLS options are given.
    let bare: Vec<String> = urls
        .iter()
        .map(|u| u.trim_start_matches("https://").to_string())
        .collect();
    let client = Client::connect_with(&bare, options(with_identity(&cluster)))
        .await
        .expect("client");
    assert!(client.get("/sdk/tls").await.expect("get").is_some());

    // The server-name override: the certificates name localhost and 127.0.0.1 only.
    let client = Client::connect_with(&urls, options(with_identity(&cluster).server_name("localhost")))
        .await
        .expect("client");
    assert!(client.get("/sdk/tls").await.expect("get").is_some());
    let wrong = refused(&urls, options(with_identity(&cluster).server_name("db.example"))).await;
    assert!(wrong.contains("not valid for name"), "{wrong}");
    let wrong = write_never_sent(&urls, options(with_identity(&cluster).server_name("db.example"))).await;
    assert!(wrong.contains("not valid for name"), "{wrong}");

    // Without a client certificate the member refuses the handshake. Under TLS 1.3 the
    // client learns it only on its first request (as a closed connection), so this is a
    // read: a write would report an unknown outcome (docs/security.md).
    let anonymous = refused(&urls, options(trusting(&cluster))).await;
    assert!(anonymous.contains("cluster unavailable"), "{anonymous}");
    let foreign = TlsSettings::new().ca_file(cluster.foreign_ca().ca_file());
    let me = cluster.client_identity();
    let unknown = refused(&urls, options(foreign.identity_files(&me.cert, &me.key))).await;
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    // Without TLS options an https:// endpoint checks the system CAs, which do not
    // include the test CA.
    let system = ClientOptions {
        retry_budget: Duration::from_secs(3),
        ..fast_options()
    };
    let untrusted = refused(&urls, system).await;
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");
}

#[test]
fn tls_settings_with_a_mismatched_key_fail_naming_both_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = conclave_testkit::TestCa::new(dir.path(), "main").expect("CA");
    let a = ca.issue("a", "a").expect("a");
    let b = ca.issue("b", "b").expect("b");
    let error = Tls::new(TlsSettings::new().identity_files(&a.cert, &b.key)).unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&a.cert.display().to_string()), "{text}");
    assert!(text.contains(&b.key.display().to_string()), "{text}");
    assert!(matches!(error, Error::Tls(_)), "{error:?}");
}

/// TLS and credentials together: the SDK logs in over mutual TLS, and the user's token,
/// not the client certificate's Common Name ("root"), decides what it may do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_over_mutual_tls_act_as_the_user_not_the_certificate() {
    let mut tls_options = TlsClusterOptions::default();
    tls_options
        .extra_args
        .extend(["--bcrypt-cost".into(), "4".into()]);
    let cluster = cluster_with(tls_options).await;
    let urls = cluster.client_urls();
    let admin = Client::connect_with(&urls, options(with_identity(&cluster)))
        .await
        .expect("admin client");
    set_up_auth(&admin).await;

    let alice = Client::connect_with(
        &urls,
        options(with_identity(&cluster)).credentials("alice", ALICE_PW),
    )
    .await
    .expect("alice over TLS");
    alice.put("/app/tls", "1").await.expect("put inside the grant");
    assert!(alice.get("/app/tls").await.expect("get").is_some());
    assert!(
        matches!(alice.put("/other", "1").await, Err(Error::PermissionDenied)),
        "the token names alice, whose role covers /app/ only"
    );
    let wrong = Client::connect_with(
        &urls,
        options(with_identity(&cluster)).credentials("alice", "not-her-password"),
    )
    .await;
    let refused = match wrong {
        Ok(client) => client.get("/app/tls").await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(matches!(refused, Err(Error::AuthenticationFailed)), "{refused:?}");
    // The certificate alone (CN root, under --client-cert-auth) is root.
    admin
        .put("/other", "by-certificate")
        .await
        .expect("root by certificate");
}
