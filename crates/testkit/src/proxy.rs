//! The peer proxy: the network between nodes, with switches to partition it.
//!
//! Each node's advertised peer URL points at its own proxy listener on `127.0.0.1`,
//! which forwards to the node's real peer listener. Every node binds its outgoing peer
//! connections to its own loopback IP, `127.0.0.{10+i}` ([`peer_ip`]), so the proxy
//! knows which node a connection comes from and can refuse or sever it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::error::{Error, Result};
use crate::ports::unique_port;

/// Largest node index with a loopback IP of its own (`127.0.0.254`).
pub const MAX_NODE_INDEX: usize = 244;
/// Attempts to bind a proxy listener when another process takes the chosen port first.
const BIND_ATTEMPTS: usize = 20;

/// The loopback IP node `node` (1-based) binds its peer listener and outgoing peer
/// connections to: `127.0.0.{10 + node}`.
///
/// # Panics
/// If `node` is 0 or greater than [`MAX_NODE_INDEX`].
pub fn peer_ip(node: usize) -> IpAddr {
    assert!(
        (1..=MAX_NODE_INDEX).contains(&node),
        "node index {node} has no peer IP: indices run from 1 to {MAX_NODE_INDEX}"
    );
    let last = u8::try_from(10 + node).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The node a connection from source address `ip` comes from, or `None` for any other
/// ("external") source, such as a test's client on `127.0.0.1`.
pub fn node_of_source(ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) => match v4.octets() {
            [127, 0, 0, last] if usize::from(last) > 10 => Some(usize::from(last) - 10),
            _ => None,
        },
        IpAddr::V6(v6) => v6.to_ipv4_mapped().and_then(|v4| node_of_source(IpAddr::V4(v4))),
    }
}

/// Forwards peer traffic to each node and partitions it on demand.
///
/// Blocks are symmetric and apply to new connections (refused when accepted) and to
/// existing ones (severed at once). Connections from external sources are never blocked.
/// Dropping the proxy closes its listeners and every forwarded connection.
#[derive(Debug)]
pub struct PeerProxy {
    shared: Arc<Shared>,
    runtime: Handle,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    isolated: HashSet<usize>,
    blocked_pairs: HashSet<(usize, usize)>,
    /// `(from, to)`: connections `from` opens to `to` are refused; `to`'s to `from` pass.
    blocked_directions: HashSet<(usize, usize)>,
    routes: BTreeMap<usize, Route>,
    connections: HashMap<u64, Connection>,
    next_connection: u64,
}

#[derive(Debug)]
struct Route {
    listen: SocketAddr,
    accept_task: AbortHandle,
}

/// A forwarded connection; dropping `_sever` makes its forwarding task close both sockets.
#[derive(Debug)]
struct Connection {
    from: Option<usize>,
    to: usize,
    _sever: oneshot::Sender<()>,
}

impl State {
    fn is_blocked(&self, a: usize, b: usize) -> bool {
        a != b
            && (self.isolated.contains(&a)
                || self.isolated.contains(&b)
                || self.blocked_pairs.contains(&pair(a, b))
                || self.blocked_directions.contains(&(a, b)))
    }

    /// Drops (and so severs) every connection that the current blocks forbid.
    fn sever_blocked(&mut self) {
        let blocked: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, c)| c.from.is_some_and(|from| self.is_blocked(from, c.to)))
            .map(|(id, _)| *id)
            .collect();
        for id in blocked {
            self.connections.remove(&id);
        }
    }
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl PeerProxy {
    /// A proxy with no routes whose tasks run on the current tokio runtime.
    pub fn new() -> Result<PeerProxy> {
        let runtime = Handle::try_current().map_err(|_| Error::NoRuntime)?;
        Ok(PeerProxy::with_runtime(runtime))
    }

    /// A proxy with no routes whose tasks run on `runtime`.
    pub fn with_runtime(runtime: Handle) -> PeerProxy {
        PeerProxy {
            shared: Arc::new(Shared::default()),
            runtime,
        }
    }

    /// Starts forwarding a new listener on `127.0.0.1:{free port}` to `target`, the real
    /// peer listener of node `node`; returns the listener's address, which is what
    /// the node should advertise. Works before the target is listening: connections
    /// made meanwhile are closed.
    pub fn add_route(&self, node: usize, target: SocketAddr) -> Result<SocketAddr> {
        let listener = bind_listener()?;
        let listen = listener
            .local_addr()
            .map_err(|e| Error::io("reading the proxy listener's address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(format!("configuring proxy listener {listen}"), e))?;
        let listener = {
            let _entered = self.runtime.enter();
            TcpListener::from_std(listener)
                .map_err(|e| Error::io(format!("registering proxy listener {listen}"), e))?
        };
        let accept = accept_loop(listener, node, target, Arc::downgrade(&self.shared));
        let accept_task = self.runtime.spawn(accept).abort_handle();
        let replaced = self.lock().routes.insert(node, Route { listen, accept_task });
        if let Some(old) = replaced {
            old.accept_task.abort();
        }
        tracing::debug!(node, %listen, %target, "testkit: peer proxy route added");
        Ok(listen)
    }

    /// The proxy listener address for node `node`, if it has a route.
    pub fn listen_addr(&self, node: usize) -> Option<SocketAddr> {
        self.lock().routes.get(&node).map(|route| route.listen)
    }

    /// Cuts node `node` off from every other node, including nodes added later: their
    /// connections in either direction are severed now and refused from now on, until
    /// [`PeerProxy::heal`]. External clients still reach it.
    pub fn isolate(&self, node: usize) {
        let mut state = self.lock();
        state.isolated.insert(node);
        state.sever_blocked();
        tracing::info!(node, "testkit: peer proxy isolated node");
    }

    /// Cuts the link between nodes `a` and `b` in both directions (severs existing
    /// connections, refuses new ones) until [`PeerProxy::heal`].
    pub fn block(&self, a: usize, b: usize) {
        let mut state = self.lock();
        state.blocked_pairs.insert(pair(a, b));
        state.sever_blocked();
        tracing::info!(a, b, "testkit: peer proxy blocked link");
    }

    /// Refuses (and severs) the connections node `from` opens to node `to`, while `to`'s
    /// connections to `from` keep working, until [`PeerProxy::heal`]. Each side's requests
    /// travel on the connections it opens: blocking leader → follower stops the appends
    /// and heartbeats the follower receives, yet the follower still reaches the leader
    /// (forwarded writes, read-index requests) — a member that lags but still serves.
    pub fn block_direction(&self, from: usize, to: usize) {
        let mut state = self.lock();
        state.blocked_directions.insert((from, to));
        state.sever_blocked();
        tracing::info!(from, to, "testkit: peer proxy blocked one direction");
    }

    /// Removes every isolation and block; nodes reconnect on their own.
    pub fn heal(&self) {
        let mut state = self.lock();
        state.isolated.clear();
        state.blocked_pairs.clear();
        state.blocked_directions.clear();
        tracing::info!("testkit: peer proxy healed");
    }

    /// Whether traffic between nodes `a` and `b` is currently blocked.
    pub fn is_blocked(&self, a: usize, b: usize) -> bool {
        self.lock().is_blocked(a, b)
    }

    /// How many connections are being forwarded right now.
    pub fn active_connections(&self) -> usize {
        self.lock().connections.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        let mut state = self.lock();
        for route in state.routes.values() {
            route.accept_task.abort();
        }
        // Dropping the sever handles closes every forwarded connection.
        state.connections.clear();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every field stays consistent across a panic, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a connection from `from` to node `to` unless the pair is blocked.
    /// Checking and registering under one lock means a concurrent `isolate` either
    /// refuses the connection or sees it and severs it.
    fn admit(&self, from: Option<usize>, to: usize) -> Option<(u64, oneshot::Receiver<()>)> {
        let mut state = self.lock();
        if from.is_some_and(|from| state.is_blocked(from, to)) {
            return None;
        }
        let id = state.next_connection;
        state.next_connection += 1;
        let (sever, severed) = oneshot::channel();
        state.connections.insert(
            id,
            Connection {
                from,
                to,
                _sever: sever,
            },
        );
        Some((id, severed))
    }
}

/// Binds a listener on a fresh `127.0.0.1` port, retrying if another process takes it first.
fn bind_listener() -> Result<std::net::TcpListener> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let port = unique_port(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .map_err(|e| Error::io("choosing a port for the peer proxy", e))?;
        match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::io(
        "binding a peer proxy listener on 127.0.0.1",
        last_error.unwrap_or_else(|| std::io::Error::other("no attempt made")),
    ))
}

/// Accepts connections for node `to` and forwards the admitted ones to `target`.
async fn accept_loop(listener: TcpListener, to: usize, target: SocketAddr, shared: Weak<Shared>) {
    loop {
        let (inbound, source) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically EMFILE or a connection reset before accept; try again soon.
                tracing::warn!(node = to, "testkit: peer proxy accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let from = node_of_source(source.ip());
        match shared.admit(from, to) {
            Some((id, severed)) => {
                let guard = ConnectionGuard {
                    shared: Arc::downgrade(&shared),
                    id,
                };
                tokio::spawn(forward(inbound, target, severed, guard));
            }
            None => {
                tracing::debug!(?from, to, "testkit: peer proxy refused blocked connection");
                drop(inbound);
            }
        }
    }
}

/// Unregisters a connection when its forwarding task ends, however it ends.
struct ConnectionGuard {
    shared: Weak<Shared>,
    id: u64,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.lock().connections.remove(&self.id);
        }
    }
}

/// Copies bytes both ways between `inbound` and `target` until both sides are done,
/// either side fails (e.g. its node was killed) or the connection is severed.
async fn forward(
    mut inbound: TcpStream,
    target: SocketAddr,
    severed: oneshot::Receiver<()>,
    _guard: ConnectionGuard,
) {
    let copy = async {
        let mut outbound = TcpStream::connect(target).await?;
        // Raft heartbeats are small writes; Nagle plus delayed ACKs would add ~40 ms each.
        inbound.set_nodelay(true)?;
        outbound.set_nodelay(true)?;
        tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
    };
    tokio::select! {
        // Checked first on every wake-up, so once `isolate`/`block` has returned, not one
        // more byte crosses a severed connection.
        biased;
        // Fires when the sever handle is dropped: the pair was blocked or the proxy dropped.
        _ = severed => tracing::debug!(%target, "testkit: peer proxy severed connection"),
        result = copy => {
            if let Err(e) = result {
                tracing::trace!(%target, "testkit: peer proxy connection ended: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_of_source_recognises_node_ips_only() {
        assert_eq!(node_of_source(peer_ip(1)), Some(1));
        assert_eq!(node_of_source(peer_ip(7)), Some(7));
        assert_eq!(node_of_source(IpAddr::V4(Ipv4Addr::LOCALHOST)), None);
        assert_eq!(node_of_source(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10))), None);
        assert_eq!(node_of_source(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11))), None);
    }

    #[test]
    fn isolation_and_pair_blocks_are_symmetric() {
        let mut state = State::default();
        state.blocked_pairs.insert(pair(3, 1));
        assert!(state.is_blocked(1, 3) && state.is_blocked(3, 1));
        assert!(!state.is_blocked(1, 2));
        state.isolated.insert(2);
        assert!(state.is_blocked(1, 2) && state.is_blocked(2, 5) && state.is_blocked(4, 2));
        assert!(!state.is_blocked(2, 2));
    }

    #[test]
    fn a_direction_block_stops_one_side_only() {
        let mut state = State::default();
        state.blocked_directions.insert((1, 3));
        assert!(state.is_blocked(1, 3));
        assert!(!state.is_blocked(3, 1));
    }
}
