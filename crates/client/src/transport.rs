//! Endpoints, channels and the retry rule: which failures may be retried on another
//! member, and which must surface as "outcome unknown".

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conclave_contract::errors;
pub(crate) use conclave_contract::retry::describe;
use conclave_contract::retry::{is_transport, never_sent};
use conclave_proto::etcdserverpb::auth_client::AuthClient;
use conclave_proto::etcdserverpb::AuthenticateRequest;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel as RawChannel, Endpoint};
use tonic::{Code, Status};

use crate::error::{Error, Result};
use crate::session::{is_token_refusal, Session, TokenInterceptor};
use crate::ClientOptions;

/// A channel to one member that carries the client's auth token (gRPC metadata `token`,
/// as etcd's clients send it) on every request, unary or streaming. Build any etcd or
/// Groups client on it (`KvClient::new(channel)`).
pub type Channel = InterceptedService<RawChannel, TokenInterceptor>;

/// Whether a request may be sent again after a failure that might have come after the
/// member received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, and writes whose repetition has the same effect (create-if-absent on a
    /// deterministic key): retried on any transient failure.
    Idempotent,
    /// Writes: retried only when the request certainly never reached a member or was
    /// refused before being proposed.
    NonIdempotent,
}

/// One member's client URL and its (lazily connected) channel.
#[derive(Clone)]
struct Target {
    url: String,
    channel: RawChannel,
}

/// The largest response the SDK accepts (tonic's default of 4 MiB is smaller than a
/// range, a delete with `prev_kv` or a watch response may legitimately be). Raw callers
/// should set it on their clients too (`max_decoding_message_size`).
pub const MAX_RESPONSE_BYTES: usize = 512 << 20;

/// How long an endpoint that just failed is skipped when choosing where to send a call.
const QUARANTINE: Duration = Duration::from_secs(3);

/// The endpoints a client talks to: unary calls are spread round-robin over those that
/// have not failed recently; streams stick to the preferred one.
pub(crate) struct Pool {
    targets: Vec<Target>,
    preferred: AtomicUsize,
    /// Round-robin position for unary calls.
    next: AtomicUsize,
    /// Per endpoint, when its quarantine after a failure ends.
    down_until: Mutex<Vec<Option<Instant>>>,
    /// Channels to endpoints outside the configured list (member URLs learnt from the
    /// member list, for per-endpoint status and health).
    extra: Mutex<Vec<Target>>,
    options: ClientOptions,
    /// The token sent on every call, and the credentials that renew it.
    session: Arc<Session>,
    /// Whether any endpoint answers; shared with pools made by [`Pool::with_token`].
    connectivity: Arc<watch::Sender<Connectivity>>,
}

/// Whether the client can reach the cluster, as [`crate::Client::connectivity`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connectivity {
    /// An endpoint answered since the last time every endpoint had failed (the state a
    /// client starts in).
    Connected,
    /// Every endpoint failed within the quarantine window (3 s), and none has answered
    /// since: `reason` is the last failure.
    Disconnected {
        /// The last failure seen.
        reason: String,
    },
}

/// Normalises `host:port`, `http://host:port` or `https://host:port` to a URL (a bare
/// `host:port` is `http://`; see `tls::with_default_scheme` for when it is `https://`).
pub(crate) fn normalize(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason: "empty".into(),
        });
    }
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        Ok(trimmed.to_string())
    } else {
        Ok(format!("http://{trimmed}"))
    }
}

fn channel(url: &str, options: &ClientOptions) -> Result<RawChannel> {
    // `https://`: the TLS is conclave-tls's connector's, tonic dials plain HTTP/2 over it.
    let (url, tls) = crate::tls::dial_plan(url, options)?;
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| Error::InvalidEndpoint {
        endpoint: url,
        reason: e.to_string(),
    })?;
    let endpoint = endpoint
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        // HTTP/2 pings find a member that stopped answering (paused, or cut off) even on
        // an idle watch or keep-alive stream, so the SDK fails over instead of waiting.
        .http2_keep_alive_interval(options.keep_alive_interval)
        .keep_alive_timeout(options.keep_alive_timeout)
        .keep_alive_while_idle(true);
    Ok(match tls {
        Some(connector) => endpoint.connect_with_connector_lazy(connector),
        None => endpoint.connect_lazy(),
    })
}

impl Pool {
    pub(crate) fn new(endpoints: &[String], options: ClientOptions) -> Result<Pool> {
        if endpoints.is_empty() {
            return Err(Error::InvalidEndpoint {
                endpoint: String::new(),
                reason: "no endpoints given".into(),
            });
        }
        let mut targets = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let url = normalize(&crate::tls::with_default_scheme(endpoint, &options))?;
            let channel = channel(&url, &options)?;
            targets.push(Target { url, channel });
        }
        Ok(Pool {
            down_until: Mutex::new(vec![None; targets.len()]),
            targets,
            preferred: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            extra: Mutex::new(Vec::new()),
            session: Arc::new(Session::new(options.credentials.clone())),
            options,
            connectivity: Arc::new(watch::Sender::new(Connectivity::Connected)),
        })
    }

    /// A pool over the same connections (and the same view of which endpoints are down)
    /// that sends `token` instead of this pool's own, and never logs in.
    pub(crate) fn with_token(&self, token: &str) -> Result<Pool> {
        let mut options = self.options.clone();
        options.credentials = None;
        Ok(Pool {
            targets: self.targets.clone(),
            preferred: AtomicUsize::new(self.preferred.load(Ordering::Relaxed)),
            next: AtomicUsize::new(self.next.load(Ordering::Relaxed)),
            down_until: Mutex::new(self.down_until.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            extra: Mutex::new(self.extra.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            session: Arc::new(Session::with_token(token)?),
            options,
            connectivity: Arc::clone(&self.connectivity),
        })
    }

    /// `channel` with this pool's token attached to every request.
    fn authorized(&self, channel: RawChannel) -> Channel {
        InterceptedService::new(channel, self.session.interceptor())
    }

    /// Logs in (etcd's `Authenticate`, on any member, without a token) unless the client
    /// has no credentials or another caller logged in since generation `seen`. A cluster
    /// with auth disabled answers "authentication is not enabled": the client then sends
    /// no token until a refusal says one is needed.
    pub(crate) async fn login(&self, seen: Option<u64>) -> Result<()> {
        let session = Arc::clone(&self.session);
        session
            .relogin(seen, |credentials| async move {
                let request = AuthenticateRequest {
                    name: credentials.user().to_string(),
                    password: credentials.password().to_string(),
                };
                let outcome = self
                    .attempts(
                        Idempotency::Idempotent,
                        self.options.request_timeout,
                        &mut |channel| {
                            let request = request.clone();
                            async move { AuthClient::new(channel).authenticate(request).await }
                        },
                    )
                    .await;
                match outcome {
                    Ok(response) => Ok(Some(response.into_inner().token)),
                    Err(Stop::Final(status))
                        if status.code() == Code::FailedPrecondition
                            && status.message() == errors::AUTH_NOT_ENABLED =>
                    {
                        Ok(None)
                    }
                    Err(Stop::Final(status)) => Err(Error::from_status(&status)),
                    Err(Stop::Error(error)) => Err(error),
                }
            })
            .await
    }

    /// Renews the token after a stream was refused with `status`, if the refusal is about
    /// the token and the client has credentials; `seen` is the generation read before the
    /// stream was opened. Returns whether re-opening the stream may now succeed.
    pub(crate) async fn renew_after(&self, status: &Status, seen: u64) -> Result<bool> {
        if !is_token_refusal(status) || !self.session.can_login() {
            return Ok(false);
        }
        self.login(Some(seen)).await?;
        Ok(true)
    }

    /// Renews the token whatever the refusal (a watch refused as "permission denied",
    /// which etcd also answers for a token that expired). Returns whether the client has
    /// credentials to do so.
    pub(crate) async fn renew(&self, seen: u64) -> Result<bool> {
        if !self.session.can_login() {
            return Ok(false);
        }
        self.login(Some(seen)).await?;
        Ok(true)
    }

    /// The token generation, to read before opening a stream (see [`Pool::renew_after`]).
    pub(crate) fn token_generation(&self) -> u64 {
        self.session.generation()
    }

    /// Makes the first login now if it is still due (streams call this before opening).
    pub(crate) async fn ensure_login(&self) -> Result<()> {
        if self.session.needs_first_login() {
            self.login(None).await?;
        }
        Ok(())
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The configured endpoint URLs.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.url.clone()).collect()
    }

    /// The endpoint currently preferred, and its channel.
    pub(crate) fn current(&self) -> (usize, Channel) {
        let index = self.preferred.load(Ordering::Relaxed) % self.targets.len();
        (index, self.authorized(self.targets[index].channel.clone()))
    }

    /// The next endpoint in round-robin order that is not quarantined (any, if all are).
    fn balanced(&self) -> (usize, RawChannel) {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        let index = (0..n)
            .map(|offset| (start + offset) % n)
            .find(|&i| down[i].is_none_or(|until| until <= now))
            .unwrap_or(start % n);
        (index, self.targets[index].channel.clone())
    }

    /// Records that `failed` did not answer (`reason`): it is skipped for a while, and
    /// streams move away from it (if it is still the preferred endpoint). When every
    /// endpoint is then in quarantine, the client counts as disconnected.
    pub(crate) fn fail_over(&self, failed: usize, reason: &dyn std::fmt::Display) {
        let all_down = {
            let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if let Some(slot) = down.get_mut(failed) {
                *slot = Some(now + QUARANTINE);
            }
            down.iter().all(|until| until.is_some_and(|until| until > now))
        };
        if all_down {
            let reason = format!(
                "every endpoint failed; last: {} ({reason})",
                self.targets[failed].url
            );
            self.connectivity.send_if_modified(|state| match state {
                Connectivity::Connected => {
                    tracing::info!(%reason, "disconnected from the cluster");
                    *state = Connectivity::Disconnected { reason };
                    true
                }
                Connectivity::Disconnected { .. } => false,
            });
        }
        let next = (failed + 1) % self.targets.len();
        let _ = self
            .preferred
            .compare_exchange(failed, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Records that endpoint `index` answered: the client is connected again if it was not.
    /// On every successful call, so the common case is one shared read of the state.
    pub(crate) fn answered(&self, index: usize) {
        if matches!(*self.connectivity.borrow(), Connectivity::Connected) {
            return;
        }
        self.connectivity.send_if_modified(|state| match state {
            Connectivity::Disconnected { .. } => {
                tracing::info!(endpoint = %self.targets[index].url, "connected to the cluster again");
                *state = Connectivity::Connected;
                true
            }
            Connectivity::Connected => false,
        });
    }

    /// Follows the client's [`Connectivity`].
    pub(crate) fn connectivity(&self) -> watch::Receiver<Connectivity> {
        self.connectivity.subscribe()
    }

    /// A channel to one specific endpoint (configured or not), for per-member calls.
    pub(crate) fn channel_for(&self, endpoint: &str) -> Result<Channel> {
        let url = normalize(&crate::tls::with_default_scheme(endpoint, &self.options))?;
        if let Some(target) = self.targets.iter().find(|t| t.url == url) {
            return Ok(self.authorized(target.channel.clone()));
        }
        let mut extra = self.extra.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(target) = extra.iter().find(|t| t.url == url) {
            return Ok(self.authorized(target.channel.clone()));
        }
        let channel = channel(&url, &self.options)?;
        extra.push(Target {
            url,
            channel: channel.clone(),
        });
        Ok(self.authorized(channel))
    }

    /// Runs `call` against the next healthy endpoint (round-robin), failing over to the others on
    /// transient errors under the retry rule of `idempotency`, with exponential backoff,
    /// until the retry budget is spent.
    pub(crate) async fn call<T, F, Fut>(&self, idempotency: Idempotency, call: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        self.call_within(idempotency, self.options.request_timeout, call)
            .await
    }

    /// [`Pool::call`] with `attempt_timeout` for each attempt instead of the configured
    /// request timeout (for calls that wait on the server by design).
    pub(crate) async fn call_within<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        attempt_timeout: Duration,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        self.ensure_login().await?;
        let seen = self.session.generation();
        let mut renewed = false;
        loop {
            let outcome = self
                .attempts(idempotency, attempt_timeout, &mut |channel| {
                    call(self.authorized(channel))
                })
                .await;
            match outcome {
                Ok(value) => return Ok(value),
                // A refused token is refused before the request is proposed, so even a
                // write is re-sent, once, after logging in again.
                Err(Stop::Final(status))
                    if !renewed && is_token_refusal(&status) && self.session.can_login() =>
                {
                    tracing::debug!(error = %describe(&status), "token refused, logging in again");
                    renewed = true;
                    self.login(Some(seen)).await?;
                }
                Err(Stop::Final(status)) => return Err(Error::from_status(&status)),
                Err(Stop::Error(error)) => return Err(error),
            }
        }
    }

    /// The retry loop of [`Pool::call_within`] on bare channels (no token): stops at the
    /// first success, at a final answer, or when the rule or the budget forbids another
    /// attempt.
    async fn attempts<T, F, Fut>(
        &self,
        idempotency: Idempotency,
        attempt_timeout: Duration,
        call: &mut F,
    ) -> std::result::Result<T, Stop>
    where
        F: FnMut(RawChannel) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let (index, channel) = self.balanced();
            let outcome = tokio::time::timeout(attempt_timeout, call(channel)).await;
            let status = match outcome {
                Ok(Ok(value)) => {
                    self.answered(index);
                    return Ok(value);
                }
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!("no answer within {attempt_timeout:?}")),
            };
            let retry = match classify(&status) {
                Failure::Final => {
                    // A definite answer: the member is reachable.
                    self.answered(index);
                    return Err(Stop::Final(status));
                }
                Failure::NeverApplied => true,
                Failure::MaybeApplied => idempotency == Idempotency::Idempotent,
            };
            if !retry {
                return Err(Stop::Error(Error::OutcomeUnknown {
                    message: describe(&status),
                }));
            }
            tracing::debug!(endpoint = %self.targets[index].url, error = %describe(&status), "failing over");
            self.fail_over(index, &describe(&status));
            let delay = backoff(&self.options, attempts);
            if started.elapsed() + delay > self.options.retry_budget {
                return Err(Stop::Error(Error::Unavailable {
                    message: describe(&status),
                    attempts,
                }));
            }
            tokio::time::sleep(delay).await;
        }
    }
}

/// Why [`Pool::attempts`] stopped without a value.
enum Stop {
    /// A definite answer from a member, not yet mapped (a refused token may be renewed).
    Final(Status),
    /// The retry rule or budget ended the call.
    Error(Error),
}

/// The delay before attempt `attempts + 1`: exponential from the base, capped, with
/// jitter so that many clients do not retry in lockstep.
pub(crate) fn backoff(options: &ClientOptions, attempts: u32) -> Duration {
    let exp = options
        .backoff_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(10));
    let capped = exp.min(options.backoff_max);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let nanos = clock ^ u64::from(attempts).wrapping_mul(0x9E37_79B9);
    let jitter_pct = 75 + (nanos % 51); // 75..=125 %
    capped * jitter_pct as u32 / 100
}

/// How a failed call may be treated.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A definite answer from the cluster (bad input, compacted, not found, ...).
    Final,
    /// Transient, and the request certainly did not apply.
    NeverApplied,
    /// Transient, but a write may have applied.
    MaybeApplied,
}

/// Classifies a status by etcd's codes and messages and by the transport error behind it.
pub(crate) fn classify(status: &Status) -> Failure {
    match status.code() {
        Code::Unavailable => {
            // "etcdserver: no leader" is answered before anything is proposed.
            if status.message() == errors::NO_LEADER || never_sent(status) {
                Failure::NeverApplied
            } else {
                Failure::MaybeApplied
            }
        }
        // The answer arrived but could not be decoded: the request was served.
        _ if status.message().contains("decoded message length too large") => Failure::MaybeApplied,
        // A timeout, a cancelled call, or any error caused by the transport (a stream
        // reset arrives as `Internal` or `Unknown` with an h2 error behind it) may come
        // after the member received the request.
        Code::DeadlineExceeded | Code::Cancelled => Failure::MaybeApplied,
        _ if is_transport(status) => Failure::MaybeApplied,
        // etcd's "not leader" refusal (e.g. a lessor call on a member that just lost
        // leadership) is answered before proposing.
        Code::FailedPrecondition if status.message() == errors::NOT_LEADER => Failure::NeverApplied,
        _ => Failure::Final,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(normalize("127.0.0.1:2379").unwrap(), "http://127.0.0.1:2379");
        assert_eq!(normalize("http://a:1/").unwrap(), "http://a:1");
        assert!(normalize("").is_err());
        assert_eq!(normalize("https://a:1/").unwrap(), "https://a:1");
    }

    #[test]
    fn writes_are_retried_only_when_never_applied() {
        assert_eq!(
            classify(&Status::unavailable(errors::NO_LEADER)),
            Failure::NeverApplied
        );
        assert_eq!(
            classify(&Status::failed_precondition(errors::NOT_LEADER)),
            Failure::NeverApplied
        );
        assert_eq!(
            classify(&Status::unavailable(
                "etcdserver: request timed out, possibly due to previous leader failure"
            )),
            Failure::MaybeApplied
        );
        assert_eq!(
            classify(&Status::unavailable("tcp connect error")),
            Failure::NeverApplied
        );
        assert_eq!(
            classify(&Status::deadline_exceeded("slow")),
            Failure::MaybeApplied
        );
        assert_eq!(
            classify(&Status::invalid_argument("etcdserver: key is not provided")),
            Failure::Final
        );
        assert_eq!(
            classify(&Status::out_of_range(
                "etcdserver: mvcc: required revision has been compacted"
            )),
            Failure::Final
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let options = ClientOptions::default();
        let first = backoff(&options, 1);
        assert!(first <= options.backoff_base * 5 / 4, "{first:?}");
        let late = backoff(&options, 30);
        assert!(late <= options.backoff_max * 5 / 4, "{late:?}");
        assert!(late >= options.backoff_max * 3 / 4, "{late:?}");
    }
}
