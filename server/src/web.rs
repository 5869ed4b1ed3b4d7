//! `--web`: the reference Client info panel, a static page built from `web/src` into
//! `web/dist` (see `web/README.md`) and embedded in the binary at compile time, so serving it
//! needs no Node.js and no files on disk.
//!
//! It is served over plain HTTP GET either next to the gRPC routes on the same port
//! ([`WebLayer`]: GET and HEAD requests are answered here, everything else goes on to gRPC and
//! gRPC-Web, which only use POST), or on an address of its own ([`serve`], `--web-listen`).
//! The page calls the API through gRPC-Web: on the same origin in the first case; in the
//! second it reads `/config.json` for the API's port and scheme, and the server allows the
//! page's origin through CORS.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::{Layer, Service};

/// Where the agent panel is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebPanel {
    /// Not served (the default).
    #[default]
    Off,
    /// On the gRPC port, next to the gRPC routes (`--web`).
    SamePort,
    /// On an address of its own (`--web-listen`), plain HTTP.
    Listen(SocketAddr),
}

/// One embedded file of `web/dist`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The built page, embedded. `web/build.sh` writes these files; `web/build.sh --check` (run by
/// the browser test when Node.js is present) checks they match the sources.
const ASSETS: [Asset; 3] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/dist/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/dist/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/dist/app.css"),
    },
];

/// What the page is told about the API, and the answers to GET requests.
#[derive(Debug)]
struct Site {
    /// `/config.json`: `{}` on the same origin, else the API's port and scheme.
    config: String,
    /// The Content-Security-Policy of every answer.
    policy: HeaderValue,
}

impl Site {
    fn new(api: Option<(u16, bool)>) -> Self {
        let (config, connect) = match api {
            None => ("{}".to_owned(), "'self'"),
            // The API is on another port of the same host, which CSP cannot name without
            // knowing the host the browser used.
            Some((port, tls)) => (
                format!(r#"{{"api_port":{port},"api_tls":{tls}}}"#),
                "'self' http: https:",
            ),
        };
        let policy = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        Self {
            config,
            policy: HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
        }
    }

    /// The answer to a request that is not gRPC.
    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let path = if path == "/index.html" { "/" } else { path };
        let (status, content_type, body): (_, &str, Bytes) =
            if method != Method::GET && method != Method::HEAD {
                (
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"the agent panel is read with GET\n"),
                )
            } else if path == "/config.json" {
                (
                    StatusCode::OK,
                    "application/json",
                    Bytes::from(self.config.clone()),
                )
            } else if let Some(asset) = ASSETS.iter().find(|a| a.path == path) {
                (
                    StatusCode::OK,
                    asset.content_type,
                    Bytes::from_static(asset.body),
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    Bytes::from_static(b"not found: the agent panel is at /\n"),
                )
            };
        let length = body.len();
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            body
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        // The files change with the binary: revalidate rather than cache stale code.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::CONTENT_SECURITY_POLICY, self.policy.clone());
        response
    }
}

/// True for the requests the page answers on the gRPC port: gRPC and gRPC-Web only POST (and
/// CORS preflights are OPTIONS), so every GET and HEAD is the page's.
fn is_page_request<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET || req.method() == Method::HEAD
}

/// Serves the page on the gRPC port when enabled, and passes every other request through.
/// Disabled, it only passes requests through (it is always in the stack, so that the stack's
/// type does not depend on the flag).
#[derive(Debug, Clone, Default)]
pub struct WebLayer {
    site: Option<Arc<Site>>,
}

impl WebLayer {
    /// The layer for `panel`: it serves the page only for [`WebPanel::SamePort`].
    pub fn new(panel: WebPanel) -> Self {
        Self {
            site: (panel == WebPanel::SamePort).then(|| Arc::new(Site::new(None))),
        }
    }
}

impl<S> Layer<S> for WebLayer {
    type Service = WebService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WebService {
            inner,
            site: self.site.clone(),
        }
    }
}

/// The service of [`WebLayer`].
#[derive(Debug, Clone)]
pub struct WebService<S> {
    inner: S,
    site: Option<Arc<Site>>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ResBody> Service<Request<tonic::body::Body>> for WebService<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        if let Some(site) = &self.site
            && is_page_request(&req)
        {
            let response = site
                .respond(req.method(), req.uri().path())
                .map(tonic::body::Body::new);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let call = self.inner.call(req);
        Box::pin(async move { Ok(call.await?.map(tonic::body::Body::new)) })
    }
}

/// Binds the page's own listener (`--web-listen`).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--web-listen {addr}: cannot listen: {e}"))
}

/// Serves the page on `listener` (plain HTTP/1.1) until `shutdown`, telling it the API is on
/// `api_port` of the same host (`api_tls`: over https).
pub fn serve(
    listener: tokio::net::TcpListener,
    api_port: u16,
    api_tls: bool,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let site = Arc::new(Site::new(Some((api_port, api_tls))));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "web listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let site = site.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let response = site.respond(req.method(), req.uri().path());
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_page_its_assets_and_nothing_else() {
        let site = Site::new(None);
        let page = site.respond(&Method::GET, "/");
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .is_ok_and(|p| p.contains("connect-src 'self';"))
        );
        assert_eq!(
            site.respond(&Method::GET, "/index.html").status(),
            StatusCode::OK
        );
        assert_eq!(
            site.respond(&Method::HEAD, "/app.js").status(),
            StatusCode::OK
        );
        assert_eq!(
            site.respond(&Method::GET, "/../Cargo.toml").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            site.respond(&Method::POST, "/").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let elsewhere = Site::new(Some((50051, true)));
        assert_eq!(elsewhere.config, r#"{"api_port":50051,"api_tls":true}"#);
    }
}
