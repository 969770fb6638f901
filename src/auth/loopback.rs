//! The loopback redirect listener of `wxcc auth login` (RFC 8252 §7.3): binds the redirect
//! URI's port on 127.0.0.1 (or ::1), waits for the one redirect on its path, answers the browser
//! with a short page, and stops.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use url::Url;

use super::flow::code_from_query;
use super::{AuthError, Result};

/// True when the redirect URI can be served by this process: `http` on a loopback host.
pub fn is_loopback_redirect(uri: &Url) -> bool {
    uri.scheme() == "http" && crate::config::is_loopback(uri)
}

/// A bound listener; its [`redirect_uri`](Self::redirect_uri) has the real port.
pub struct LoopbackListener {
    listener: TcpListener,
    redirect_uri: Url,
}

impl LoopbackListener {
    /// Binds the port of `redirect`, or `port` when given (0 picks a free one; the printed
    /// redirect URI then carries the chosen port, which Webex accepts only if registered).
    pub async fn bind(redirect: &Url, port: Option<u16>) -> Result<LoopbackListener> {
        let ip: IpAddr = match redirect.host() {
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST), // "localhost"
        };
        if !ip.is_loopback() {
            return Err(AuthError::Login(format!(
                "{redirect} is not a loopback address; paste the redirect instead"
            )));
        }
        let wanted = port.or(redirect.port()).unwrap_or(80);
        let listener = TcpListener::bind(SocketAddr::new(ip, wanted))
            .await
            .map_err(|e| {
                AuthError::Login(format!(
                    "cannot listen on {ip}:{wanted} for the redirect ({e}); free the port, pick \
                     another with --port (and register that redirect URI), or use a \
                     non-loopback WXCC_REDIRECT_URI and paste the redirect"
                ))
            })?;
        let actual = listener
            .local_addr()
            .map_err(|e| AuthError::Login(format!("cannot read the listening address: {e}")))?
            .port();
        let mut redirect_uri = redirect.clone();
        redirect_uri
            .set_port(Some(actual))
            .map_err(|()| AuthError::Login("redirect URI cannot carry a port".into()))?;
        Ok(LoopbackListener {
            listener,
            redirect_uri,
        })
    }

    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Serves until the redirect with the expected state arrives on the redirect path (other
    /// paths, e.g. a browser's favicon request, get 404; wrong states get 400 and are ignored)
    /// or `timeout` passes; returns the checked code.
    pub async fn wait(
        self,
        expected_state: &SecretString,
        timeout: Duration,
    ) -> Result<SecretString> {
        let (tx, rx) = oneshot::channel::<Result<SecretString>>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let path = self.redirect_uri.path().to_owned();
        let state = expected_state.clone();
        let app = Router::new().fallback(move |OriginalUri(uri): OriginalUri| {
            let tx = tx.clone();
            let path = path.clone();
            let state = state.clone();
            async move {
                if uri.path() != path {
                    return (StatusCode::NOT_FOUND, "not found").into_response();
                }
                let result = code_from_query(uri.query().unwrap_or_default(), &state);
                let page = page(&result);
                // Anyone on this host can reach the port: a wrong state is answered and
                // ignored, so a forged request cannot end (or decide) the login.
                if matches!(result, Err(AuthError::StateMismatch)) {
                    tracing::warn!("ignored a redirect with a wrong state");
                    return page;
                }
                if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = tx.send(result);
                }
                page
            }
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .into_future(),
        );
        let outcome = tokio::time::timeout(timeout, rx).await;
        let _ = stop_tx.send(());
        // The browser has its answer; give the server a moment to flush it, no more.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AuthError::Login("the redirect listener stopped".into())),
            Err(_) => Err(AuthError::Login(format!(
                "no redirect arrived within {} s; run `wxcc auth login` again (or \
                 --timeout longer)",
                timeout.as_secs()
            ))),
        }
    }
}

fn page(result: &Result<SecretString>) -> Response {
    let (status, title, text) = match result {
        Ok(_) => (
            StatusCode::OK,
            "wxcc: authorized",
            "wxcc received the authorization. You can close this tab and return to the terminal.",
        ),
        Err(AuthError::StateMismatch) => (
            StatusCode::BAD_REQUEST,
            "wxcc: rejected",
            "This redirect does not belong to the running login (state mismatch). Nothing was stored.",
        ),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "wxcc: not authorized",
            "The authorization did not succeed; see the terminal for details.",
        ),
    };
    (
        status,
        [("cache-control", "no-store")],
        Html(format!(
            "<!DOCTYPE html><html><head><title>{title}</title></head><body><p>{text}</p></body></html>"
        )),
    )
        .into_response()
}
