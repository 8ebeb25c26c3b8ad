//! The one HTTP client for requests Herald makes on a tenant's behalf
//! (OAuth2 token endpoints, provider APIs, webhooks): reqwest over rustls,
//! with the outbound host policy ([`super::outbound`]) applied to every
//! address it connects to.
//!
//! - Names are resolved by [`PolicyResolver`], which refuses internal
//!   addresses and hands reqwest only the addresses that passed (no DNS
//!   rebinding between check and connect).
//! - reqwest does not resolve IP literals, so [`OutboundHttp::send`] checks a
//!   literal host itself before the request leaves.
//! - Redirects are not followed (a redirect could point anywhere, and would
//!   carry a signed body or a secret there) and proxies from the
//!   environment are ignored (they would bypass the policy).
//! - Every request has an overall timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Host;

use super::outbound::{HostPolicy, Refusal};

/// How a request ended when no response came back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HttpFailure {
    /// `policy`, `network`, `timeout`, `tls` or `config` (as SMTP's classes).
    pub class: &'static str,
    /// True when retrying cannot help (a policy refusal, a malformed URL).
    pub permanent: bool,
    /// For the tenant: names the host, never an internal address.
    pub message: String,
}

/// The client. Cheap to clone; one per process.
#[derive(Clone)]
pub struct OutboundHttp {
    client: reqwest::Client,
    policy: Arc<HostPolicy>,
}

/// Settings of [`OutboundHttp`].
#[derive(Debug, Clone)]
pub struct OutboundHttpConfig {
    /// Hosts allowed to resolve to internal addresses (`HERALD_SMTP_ALLOW_HOSTS`).
    pub allow_hosts: Vec<String>,
    /// The whole request, from connect to the last byte of the response.
    pub timeout: Duration,
    /// Extra trusted roots (PEM), besides the system's: for tests and for
    /// operators with a private CA.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for OutboundHttpConfig {
    fn default() -> Self {
        OutboundHttpConfig { allow_hosts: Vec::new(), timeout: Duration::from_secs(30), extra_roots_pem: Vec::new() }
    }
}

/// reqwest's resolver hook: resolve once, apply the policy, return what passed.
struct PolicyResolver {
    policy: Arc<HostPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            // The port is set by reqwest afterwards; 0 is a placeholder.
            let addrs: Vec<SocketAddr> = policy.resolve("host", name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

impl OutboundHttp {
    pub fn new(config: &OutboundHttpConfig) -> anyhow::Result<OutboundHttp> {
        // reqwest is built without a bundled crypto provider; Herald's TLS is
        // rustls with ring everywhere (lettre, sqlx). Installing fails only
        // when one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = Arc::new(HostPolicy::new(&config.allow_hosts));
        let mut builder = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver { policy: policy.clone() }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")));
        for pem in &config.extra_roots_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
        }
        Ok(OutboundHttp { client: builder.build()?, policy })
    }

    /// A request builder on the client; send it with [`OutboundHttp::send`].
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, HttpFailure> {
        let parsed = url::Url::parse(url).map_err(|e| config_failure(format!("invalid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(config_failure("the URL must start with https:// or http://".into()));
        }
        Ok(self.client.request(method, parsed))
    }

    /// Sends the request: checks an IP-literal host against the policy
    /// (names are checked by the resolver) and classifies failures.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, HttpFailure> {
        let request = request.build().map_err(|e| config_failure(format!("invalid request: {e}")))?;
        let url = request.url();
        let host = match url.host() {
            Some(Host::Ipv4(ip)) => Some(ip.to_string()),
            Some(Host::Ipv6(ip)) => Some(ip.to_string()),
            Some(Host::Domain(_)) => None,
            None => return Err(config_failure("the URL has no host".into())),
        };
        if let Some(literal) = host {
            let port = url.port_or_known_default().unwrap_or(0);
            self.policy.resolve("host", &literal, port).await.map_err(refused)?;
        }
        let shown = url.host_str().unwrap_or_default().to_owned();
        self.client.execute(request).await.map_err(|e| classify(&shown, &e))
    }
}

fn config_failure(message: String) -> HttpFailure {
    HttpFailure { class: "config", permanent: true, message }
}

fn refused(refusal: Refusal) -> HttpFailure {
    HttpFailure { class: refusal.class(), permanent: refusal.is_permanent(), message: refusal.to_string() }
}

/// Classifies a reqwest error; a policy refusal from the resolver keeps its
/// own text. Other texts name the host only (reqwest's own text may carry
/// the URL with its query).
fn classify(host: &str, e: &reqwest::Error) -> HttpFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refusal) = err.downcast_ref::<Refusal>() {
            return refused(refusal.clone());
        }
        source = err.source();
    }
    let chain = error_chain(e);
    let (class, what) = if e.is_timeout() {
        ("timeout", "timed out")
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("TLS") {
        ("tls", "TLS handshake failed")
    } else if e.is_connect() {
        ("network", "could not connect")
    } else {
        ("network", "the connection failed")
    };
    tracing::debug!(host, error = %chain, "outbound HTTP request failed");
    HttpFailure { class, permanent: false, message: format!("{what}: {host}") }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback answering 204.
    async fn server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
            }
        });
        port
    }

    fn client(allow: &[&str]) -> OutboundHttp {
        let config = OutboundHttpConfig {
            allow_hosts: allow.iter().map(|h| (*h).to_owned()).collect(),
            ..OutboundHttpConfig::default()
        };
        OutboundHttp::new(&config).unwrap()
    }

    #[tokio::test]
    async fn internal_hosts_are_refused_by_name_and_by_literal() {
        let port = server().await;
        let http = client(&[]);
        for url in
            [format!("http://localhost:{port}/"), format!("http://127.0.0.1:{port}/"), format!("http://[::1]:{port}/")]
        {
            let failure = http.send(http.request(reqwest::Method::POST, &url).unwrap()).await.unwrap_err();
            assert_eq!((failure.class, failure.permanent), ("policy", true), "{url}: {failure}");
            assert!(!failure.message.contains(&port.to_string()), "{failure}");
        }
        // Listed, the same server answers.
        let http = client(&["localhost", "127.0.0.1"]);
        for url in [format!("http://localhost:{port}/"), format!("http://127.0.0.1:{port}/")] {
            let response = http.send(http.request(reqwest::Method::POST, &url).unwrap()).await.unwrap();
            assert_eq!(response.status(), 204);
        }
    }

    #[tokio::test]
    async fn malformed_urls_and_other_schemes_are_config_errors() {
        let http = client(&[]);
        for url in ["not a url", "ftp://example.com/", "file:///etc/passwd"] {
            let failure = http.request(reqwest::Method::GET, url).unwrap_err();
            assert_eq!((failure.class, failure.permanent), ("config", true), "{url}");
        }
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let http = client(&["127.0.0.1"]);
        let url = format!("http://127.0.0.1:{port}/");
        let response = http.send(http.request(reqwest::Method::POST, &url).unwrap()).await.unwrap();
        assert_eq!(response.status(), 307);
    }
}
