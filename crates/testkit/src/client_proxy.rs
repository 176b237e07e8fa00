//! A client-side proxy with a switch: forwards connections from clients to one member's
//! client port until [`ClientProxy::cut`] severs them all and refuses new ones, until
//! [`ClientProxy::restore`]. For tests of what a client does when it loses every
//! endpoint (the peer proxy never blocks clients).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::error::{Error, Result};

/// Forwards `127.0.0.1:{port}` to a target, with a cut switch. Dropping it closes the
/// listener and every forwarded connection.
#[derive(Debug)]
pub struct ClientProxy {
    listen: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
    accept: AbortHandle,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl ClientProxy {
    /// Starts forwarding a new listener on `127.0.0.1:{free port}` to `target` (on the
    /// current tokio runtime).
    pub async fn start(target: SocketAddr) -> Result<ClientProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::io("binding a client proxy", e))?;
        let listen = listener
            .local_addr()
            .map_err(|e| Error::io("reading the client proxy's address", e))?;
        let cut = Arc::new(watch::Sender::new(false));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let cut = Arc::clone(&cut);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if *cut.borrow() {
                        drop(client);
                        continue;
                    }
                    let mut severed = cut.subscribe();
                    let task = tokio::spawn(async move {
                        let Ok(mut member) = TcpStream::connect(target).await else {
                            return;
                        };
                        let mut client = client;
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut member) => {}
                            _ = severed.wait_for(|cut| *cut) => {}
                        }
                    });
                    let mut connections = connections.lock().unwrap_or_else(|p| p.into_inner());
                    connections.retain(|c| !c.is_finished());
                    connections.push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Ok(ClientProxy {
            listen,
            cut,
            accept,
            connections,
        })
    }

    /// The address clients should use.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Severs every forwarded connection and refuses new ones (accepted, then closed).
    pub fn cut(&self) {
        self.cut.send_replace(true);
        tracing::info!(listen = %self.listen, "testkit: client proxy cut");
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
        tracing::info!(listen = %self.listen, "testkit: client proxy restored");
    }
}

impl Drop for ClientProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for connection in self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            connection.abort();
        }
    }
}
