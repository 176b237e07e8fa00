//! `conclave-gateway`: an HTTP/JSON front for a Conclave (or etcd v3) cluster.
//!
//! It serves a REST API under `/v1` (keys, listing with bounded pages, transactions,
//! watches as Server-Sent Events, leases, elections and locks with fencing epochs, the
//! cluster's state, partition groups and their map as Server-Sent Events), etcd's JSON
//! gateway paths under `/v3` with etcd's JSON mapping, `/livez` `/readyz` for load
//! balancers, `/metrics` and `/openapi.json`.
//!
//! The gateway holds no state: every request is served through the SDK
//! ([`conclave_client::Client`]), so reads fail over between members and a write that may
//! have applied is never re-sent (it is answered 504 `outcome_unknown`). Many copies run
//! behind HAProxy or NGINX (`deploy/`); on SIGTERM a gateway drains (see [`run`]).
//!
//! Auth: a request's `Authorization: Bearer <token>` (or etcd's gateway's bare
//! `Authorization: <token>`) is sent on to the members as the gRPC `token` metadata, so
//! each caller acts with its own user's rights ([`auth::Caller`]); tokens come from
//! `POST /v3/auth/authenticate`.
//!
//! Layout: [`auth`] (the caller's token, the `/v3/auth/*` paths), [`config`] (layered configuration), [`error`] (the one place failures become
//! HTTP answers), [`encoding`] and [`extract`] (request parsing), [`v1`] (the REST API),
//! [`etcd`] (the `/v3` paths), [`health`] (liveness, readiness, drain), [`metrics`],
//! [`openapi`] and [`routes`] (the route table both the router and the document use).

#![warn(missing_docs)]

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use conclave_client::{Client, ClientOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod auth;
pub mod config;
pub mod encoding;
pub mod error;
pub mod etcd;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod recipe;
pub mod routes;
pub mod tls;
pub mod v1;

pub use config::{Config, ConfigError, Flags};
pub use error::{ApiError, EtcdError};

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The SDK refused the endpoints or the TLS options towards them.
    #[error("cannot use the endpoints: {0}")]
    Client(#[from] conclave_client::Error),
    /// The listener's certificate or key is unusable (the message names file and flag).
    #[error(transparent)]
    Tls(#[from] conclave_tls::TlsError),
    /// The listener could not be bound or served.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The listen address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The drain state shared by the handlers: set on SIGTERM.
#[derive(Debug)]
pub struct Drain {
    draining: watch::Sender<bool>,
    closing: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: watch::channel(false).0,
            closing: watch::channel(false).0,
        }
    }
}

impl Drain {
    /// Whether SIGTERM was received: `/readyz` answers 404 and new streams are refused.
    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Starts draining (`/readyz` → 404, new streams refused).
    pub fn start_draining(&self) {
        self.draining.send_replace(true);
    }

    /// Closes: open streams end with a final `shutdown` event and the listener stops.
    pub fn close(&self) {
        self.draining.send_replace(true);
        self.closing.send_replace(true);
    }

    /// Resolves once [`Drain::close`] was called.
    pub async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        // An error means the sender is gone, which only happens when the state is
        // dropped: treat it as closed.
        let _ = closing.wait_for(|closing| *closing).await;
    }
}

/// What every handler shares.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The drain state.
    pub drain: Drain,
    /// The cached readiness result.
    pub ready: health::ReadyCache,
}

/// The handlers' state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
    /// The SDK client requests go through: the gateway's own (no token) in the router's
    /// state; in the state a handler gets through [`auth::Caller`], one over the same
    /// connections that sends the caller's token.
    pub client: Client,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl AppState {
    /// State for `config`, with a client to `config.endpoints` whose timeouts fit inside
    /// the gateway's request timeout (so the SDK reports `unavailable` or
    /// `outcome_unknown` before the gateway gives up).
    pub async fn connect(config: Config) -> Result<AppState, GatewayError> {
        let timeout = config.request_timeout();
        let options = ClientOptions {
            request_timeout: (timeout / 2).min(Duration::from_secs(5)),
            retry_budget: timeout * 3 / 4,
            connect_timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        let options = match tls::member_tls(&config)? {
            Some(tls) => options.tls(tls),
            None => options,
        };
        let client = Client::connect_with(config.endpoint_list(), options).await?;
        Ok(AppState::new(config, client))
    }

    /// This state with `client` instead of the gateway's own (the same configuration,
    /// drain and readiness).
    pub fn with_client(&self, client: Client) -> AppState {
        AppState {
            shared: Arc::clone(&self.shared),
            client,
        }
    }

    /// State for `config` with a given client.
    pub fn new(config: Config, client: Client) -> AppState {
        AppState {
            shared: Arc::new(Shared {
                drain: Drain::default(),
                ready: health::ReadyCache::default(),
                config,
            }),
            client,
        }
    }
}

/// Routes that bound themselves (long polls take a client timeout up to
/// `--max-poll-timeout`), exempt from the request timeout.
const LONG_POLLS: &[(Method, &str)] = &[
    (Method::POST, "/v1/elections/{name}/campaign"),
    (Method::POST, "/v1/locks/{name}"),
    (Method::DELETE, "/v1/groups/{name}/members/{member}"),
    (Method::POST, "/v3/election/campaign"),
    (Method::POST, "/v3/lock/lock"),
];

/// Middleware: answers 504 `timeout` when a request takes longer than
/// `--request-timeout` (long polls excepted).
async fn request_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let long_poll = request.extensions().get::<MatchedPath>().is_some_and(|p| {
        LONG_POLLS
            .iter()
            .any(|(method, path)| method == request.method() && *path == p.as_str())
    });
    if long_poll {
        return next.run(request).await;
    }
    let limit = state.config.request_timeout();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::upstream_error("timeout");
            ApiError::timeout(limit).into_response()
        }
    }
}

/// The gateway's router: every route of [`routes::table`] with the request timeout,
/// the body limit and metrics.
pub fn router(state: AppState) -> axum::Router {
    let limit = state.config.max_body_bytes;
    routes::build()
        .router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// Serves `config` until `signal` resolves, then drains: `/readyz` answers 404 at once,
/// new streams are refused; after `--drain-delay` the listener closes, open streams end
/// with an SSE `shutdown` event and in-flight requests finish; the function returns
/// when all are done or `--drain-timeout` (counted from the signal) has passed.
pub async fn run(config: Config, signal: impl Future<Output = ()> + Send) -> Result<(), GatewayError> {
    let addr = config.listen_addr()?;
    // Certificates first: a bad file is a start error naming it, before the port is taken.
    let listener_tls = tls::listener_tls(&config)?;
    let listener = TcpListener::bind(addr).await.map_err(|source| GatewayError::Io {
        addr: addr.to_string(),
        source,
    })?;
    let state = AppState::connect(config).await?;
    match listener_tls {
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls).map_err(|source| GatewayError::Io {
                addr: addr.to_string(),
                source,
            })?;
            serve(listener, state, signal).await
        }
        None => serve(listener, state, signal).await,
    }
}

/// [`run`] on a bound listener (plain TCP or [`tls::TlsListener`]) with prepared state.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    signal: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let addr =
        axum::serve::Listener::local_addr(&listener).map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(%addr, endpoints = ?state.client.endpoints(), "gateway serving");
    let app = router(state.clone());
    let closing = {
        let state = state.clone();
        async move { state.drain.closed().await }
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(closing)
        .into_future();
    let mut server = tokio::spawn(server);
    tokio::select! {
        served = &mut server => {
            return match served {
                Ok(Ok(())) => Ok(()),
                Ok(Err(source)) => Err(GatewayError::Io { addr, source }),
                Err(join) => Err(GatewayError::Io { addr, source: std::io::Error::other(join.to_string()) }),
            };
        }
        () = signal => {}
    }
    let config = &state.config;
    let deadline = tokio::time::Instant::now() + config.drain_timeout();
    tracing::info!(delay = ?config.drain_delay(), timeout = ?config.drain_timeout(), "draining: /readyz answers 404");
    state.drain.start_draining();
    tokio::time::sleep(config.drain_delay().min(config.drain_timeout())).await;
    tracing::info!("closing the listener and open streams");
    state.drain.close();
    match tokio::time::timeout_at(deadline, &mut server).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => {
            tracing::warn!("drain timeout: dropping the connections still open");
            server.abort();
        }
    }
    Ok(())
}
