//! The cluster's shared secret: a scheduler started with a token runs jobs only for clients
//! that present it (`authorization: Bearer TOKEN` on every job request).
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

use futures::future::{ready, Either, Ready};
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

/// A gRPC service that refuses guarded requests without the token.
#[derive(Clone)]
pub struct RequireToken<S> {
    inner: S,
    expected: Arc<[u8]>,
}

impl<S> RequireToken<S> {
    pub fn new(inner: S, token: &str) -> Self {
        RequireToken {
            inner,
            expected: bearer(token).into_bytes().into(),
        }
    }

    fn presented(&self, headers: &http::HeaderMap) -> bool {
        let Some(given) = headers.get(http::header::AUTHORIZATION) else {
            return false;
        };
        let given = given.as_bytes();
        // Constant time, so the comparison tells nothing about how much of a guess was right.
        given.len() == self.expected.len()
            && given
                .iter()
                .zip(self.expected.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl<S, B> tower_service::Service<http::Request<B>> for RequireToken<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, S::Future>;

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
            return Either::Left(ready(Ok(refused.into_http())));
        }
        Either::Right(self.inner.call(request))
    }
}

impl<S: NamedService> NamedService for RequireToken<S> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let guard = RequireToken::new((), "s3cret");
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
