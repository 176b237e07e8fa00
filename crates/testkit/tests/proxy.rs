//! The peer proxy against plain TCP echo servers standing in for nodes' peer listeners.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use conclave_testkit::{peer_ip, wait_until, PeerProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const EXTERNAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// An echo server on `ip`, like a node's real peer listener on 127.0.0.{10+i}.
async fn echo_server(ip: IpAddr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// Connects to `to` from source IP `from`, as a node's outgoing peer connection does.
async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

async fn echo(stream: &mut TcpStream, payload: &[u8]) -> io::Result<Vec<u8>> {
    let exchange = async {
        stream.write_all(payload).await?;
        let mut back = vec![0; payload.len()];
        stream.read_exact(&mut back).await?;
        Ok(back)
    };
    tokio::time::timeout(IO_TIMEOUT, exchange).await?
}

/// Asserts the proxy closed `stream`: a read ends with EOF or a reset, not a timeout.
async fn assert_closed(stream: &mut TcpStream, what: &str) {
    // Writing first makes a refused connection show up as a reset as well as an EOF.
    let _ = stream.write_all(b"anyone there?").await;
    let mut buf = [0; 64];
    match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("{what}: still forwarding, read {n} bytes"),
        Err(_) => panic!("{what}: still open after {IO_TIMEOUT:?}"),
    }
}

/// Two "nodes" behind a proxy: returns the proxy and each node's proxy address.
async fn two_nodes() -> (PeerProxy, SocketAddr, SocketAddr) {
    let proxy = PeerProxy::new().unwrap();
    let n1 = proxy.add_route(1, echo_server(peer_ip(1)).await).unwrap();
    let n2 = proxy.add_route(2, echo_server(peer_ip(2)).await).unwrap();
    assert_eq!(proxy.listen_addr(1), Some(n1));
    (proxy, n1, n2)
}

#[tokio::test(flavor = "multi_thread")]
async fn forwards_bytes_both_ways() {
    let (proxy, n1, n2) = two_nodes().await;
    let mut from_2_to_1 = connect_from(peer_ip(2), n1).await;
    let mut from_1_to_2 = connect_from(peer_ip(1), n2).await;
    assert_eq!(
        echo(&mut from_2_to_1, b"append entries").await.unwrap(),
        b"append entries"
    );
    assert_eq!(echo(&mut from_1_to_2, b"vote").await.unwrap(), b"vote");

    // A payload far larger than socket buffers, written while the echo is read back.
    let big: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = from_2_to_1.split();
    let writer = async {
        write.write_all(&big).await.unwrap();
    };
    let reader = async {
        let mut back = vec![0; big.len()];
        read.read_exact(&mut back).await.unwrap();
        back
    };
    let ((), back) = tokio::time::timeout(IO_TIMEOUT, async { tokio::join!(writer, reader) })
        .await
        .unwrap();
    assert!(back == big, "payload corrupted in transit");
    assert_eq!(proxy.active_connections(), 2);

    drop(from_2_to_1);
    drop(from_1_to_2);
    wait_until("forwarded connections to end", IO_TIMEOUT, || async {
        (proxy.active_connections() == 0).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn isolate_severs_and_refuses_peer_connections_but_not_external_ones() {
    let (proxy, n1, n2) = two_nodes().await;
    let mut into_1 = connect_from(peer_ip(2), n1).await;
    let mut out_of_1 = connect_from(peer_ip(1), n2).await;
    let mut external = connect_from(EXTERNAL, n1).await;
    for stream in [&mut into_1, &mut out_of_1, &mut external] {
        echo(stream, b"ping").await.unwrap();
    }

    proxy.isolate(1);
    assert!(proxy.is_blocked(1, 2) && proxy.is_blocked(2, 1));
    assert_closed(&mut into_1, "existing connection into the isolated node").await;
    assert_closed(&mut out_of_1, "existing connection out of the isolated node").await;
    assert_closed(&mut connect_from(peer_ip(2), n1).await, "new connection into n1").await;
    assert_closed(
        &mut connect_from(peer_ip(1), n2).await,
        "new connection out of n1",
    )
    .await;
    // External clients (tests, tools) are never partitioned.
    assert_eq!(echo(&mut external, b"still here").await.unwrap(), b"still here");
    let mut new_external = connect_from(EXTERNAL, n1).await;
    assert_eq!(echo(&mut new_external, b"hello").await.unwrap(), b"hello");

    proxy.heal();
    assert!(!proxy.is_blocked(1, 2));
    let mut healed = connect_from(peer_ip(2), n1).await;
    assert_eq!(echo(&mut healed, b"welcome back").await.unwrap(), b"welcome back");
    let mut healed_out = connect_from(peer_ip(1), n2).await;
    assert_eq!(echo(&mut healed_out, b"me too").await.unwrap(), b"me too");
}

#[tokio::test(flavor = "multi_thread")]
async fn block_cuts_one_link_only() {
    let proxy = PeerProxy::new().unwrap();
    let n1 = proxy.add_route(1, echo_server(peer_ip(1)).await).unwrap();
    let n2 = proxy.add_route(2, echo_server(peer_ip(2)).await).unwrap();
    let mut from_3_to_1 = connect_from(peer_ip(3), n1).await;
    let mut from_2_to_1 = connect_from(peer_ip(2), n1).await;
    echo(&mut from_2_to_1, b"x").await.unwrap();

    proxy.block(2, 1);
    assert_closed(&mut from_2_to_1, "connection over the blocked link").await;
    assert_closed(&mut connect_from(peer_ip(1), n2).await, "new connection n1 -> n2").await;
    assert_eq!(
        echo(&mut from_3_to_1, b"unaffected").await.unwrap(),
        b"unaffected"
    );
    let mut from_3_to_2 = connect_from(peer_ip(3), n2).await;
    assert_eq!(echo(&mut from_3_to_2, b"also fine").await.unwrap(), b"also fine");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_target_just_ends_the_forwarded_connection() {
    let proxy = PeerProxy::new().unwrap();
    // Nothing listens on the target: like a node that was killed.
    let vacant = std::net::TcpListener::bind((peer_ip(1), 0)).unwrap();
    let target = vacant.local_addr().unwrap();
    drop(vacant);
    let n1 = proxy.add_route(1, target).unwrap();
    let mut stream = connect_from(peer_ip(2), n1).await;
    assert_closed(&mut stream, "connection to a dead node").await;
    wait_until("the failed forward to be forgotten", IO_TIMEOUT, || async {
        (proxy.active_connections() == 0).then_some(())
    })
    .await
    .unwrap();
}

#[test]
fn a_proxy_needs_a_runtime() {
    let error = PeerProxy::new().unwrap_err();
    assert!(error.to_string().contains("tokio"), "{error}");
}
