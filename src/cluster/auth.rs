//! The scheduler's front door: with a token, it runs jobs only for clients that present it
//! (`authorization: Bearer TOKEN` on every job request); and a job sent while no executor is
//! registered fails after a bounded wait instead of waiting forever.
//!
//! Ballista 55 lets a client add metadata to the requests that submit a job and follow it
//! (`ExecuteQuery`, `GetJobStatus`), which is what the token guards: without it no one can
//! make the executors read a file or run a query. It gives no such hook to its executors (their
//! scheduler client and their Arrow Flight data service carry no metadata), so the executors'
//! requests to the scheduler and the shuffle fetches between processes are not authenticated:
//! docs/cluster.md says what that leaves open and why executors bind to loopback unless told
//! `--insecure`.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::ready;
use tonic::server::NamedService;

/// The environment variable every process of a cluster reads the token from.
pub const TOKEN_ENV: &str = "MARKETING_ANALYTICS_CLUSTER_TOKEN";

/// The scheduler requests that run or follow a job: those a client makes with its metadata.
const GUARDED: [&str; 4] = [
    "ExecuteQuery",
    "ExecuteQueryPush",
    "GetJobStatus",
    "GetJobMetrics",
];

/// The header value a client sends.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token from the environment, if set and not blank.
pub fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// How the scheduler's gRPC service is guarded: the token its job requests must carry, and
/// whether an executor is there to run a job.
pub trait Readiness: Clone + Send + Sync + 'static {
    /// Whether at least one executor is registered.
    fn ready(&self) -> bool;
}

/// The scheduler's gRPC service behind its checks: guarded requests without the token are
/// refused, and a job submitted while no executor is registered waits for one at most
/// `wait`, then fails saying so (Ballista would queue it forever).
#[derive(Clone)]
pub struct Guard<S, R> {
    inner: S,
    expected: Option<Arc<[u8]>>,
    readiness: R,
    wait: std::time::Duration,
}

impl<S, R> Guard<S, R> {
    pub fn new(inner: S, token: Option<&str>, readiness: R, wait: std::time::Duration) -> Self {
        Guard {
            inner,
            expected: token.map(|t| bearer(t).into_bytes().into()),
            readiness,
            wait,
        }
    }

    fn presented(&self, headers: &http::HeaderMap) -> bool {
        let Some(expected) = &self.expected else {
            return true;
        };
        let Some(given) = headers.get(http::header::AUTHORIZATION) else {
            return false;
        };
        let given = given.as_bytes();
        // Constant time, so the comparison tells nothing about how much of a guess was right.
        given.len() == expected.len()
            && given
                .iter()
                .zip(expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

type Answer<E> = Result<http::Response<tonic::body::Body>, E>;

impl<S, R, B> tower_service::Service<http::Request<B>> for Guard<S, R>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Send,
    R: Readiness,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Answer<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        if GUARDED.contains(&method) && !self.presented(request.headers()) {
            let refused = tonic::Status::unauthenticated(format!(
                "this scheduler requires its token: set {TOKEN_ENV} to it in the client's \
                 environment"
            ));
            return Box::pin(ready(Ok(refused.into_http())));
        }
        let submits = matches!(method, "ExecuteQuery" | "ExecuteQueryPush");
        // The service that was polled ready serves this request; a fresh clone takes its place.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let (readiness, wait) = (self.readiness.clone(), self.wait);
        Box::pin(async move {
            if submits {
                let since = std::time::Instant::now();
                while !readiness.ready() {
                    if since.elapsed() >= wait {
                        let none = tonic::Status::unavailable(format!(
                            "no executor registered with the scheduler within {} s: start \
                             `marketing-analytics cluster executor --scheduler HOST:PORT`",
                            wait.as_secs()
                        ));
                        return Ok(none.into_http());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
            inner.call(request).await
        })
    }
}

impl<S: NamedService, R> NamedService for Guard<S, R> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        #[derive(Clone)]
        struct Always;
        impl Readiness for Always {
            fn ready(&self) -> bool {
                true
            }
        }
        let guard = Guard::new((), Some("s3cret"), Always, std::time::Duration::ZERO);
        let mut headers = http::HeaderMap::new();
        assert!(!guard.presented(&headers));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "s3cret", "Bearer S3CRET"] {
            headers.insert(http::header::AUTHORIZATION, wrong.parse().unwrap());
            assert!(!guard.presented(&headers), "{wrong}");
        }
        headers.insert(
            http::header::AUTHORIZATION,
            "Bearer s3cret".parse().unwrap(),
        );
        assert!(guard.presented(&headers));
    }
}
