//! Plain HTTP next to Socket.IO: health (the store's), metrics, the accounts API ([`crate::api`])
//! and the web client; the Admin UI ([`crate::admin_ui`]).
//!
//! With `--admin-listen`, the operators' surfaces (`/metrics`, `/admin/drain`, `/admin-ui/`)
//! are served only on that listener ([`crate::admin_listener`]), which serves nothing of the
//! public site; `/healthz` is on both, for load balancers and the rolling-restart script.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};

use crate::admin::AdminListener;
use crate::admin_ui::AdminUi;
use crate::app::App;

/// The web client, compiled in so the binary is self-contained.
const WEB: [(&str, &str, &str); 3] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    (
        "/app.js",
        "application/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
];

/// Serves everything that is not Socket.IO.
#[derive(Clone)]
pub struct Site {
    pub(crate) app: Arc<App>,
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// `POST /admin/drain`: stops the node as SIGTERM does (in a cluster, after moving its
/// clients to the other nodes). Only from this host, and not through a proxy.
fn drain_command(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let local = req
        .extensions()
        .get::<engineio::PeerAddr>()
        .is_some_and(|p| p.0.ip().is_loopback());
    if !local || req.headers().contains_key("x-forwarded-for") {
        return respond(
            StatusCode::FORBIDDEN,
            "application/json",
            r#"{"status":"forbidden","message":"only from this host"}"#,
        );
    }
    tracing::info!("drain requested");
    app.drain_requested.notify_one();
    respond(
        StatusCode::ACCEPTED,
        "application/json",
        r#"{"status":"draining"}"#,
    )
}

impl Service<Request<Incoming>> for Site {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let app = self.app.clone();
        Box::pin(async move {
            let path = req.uri().path();
            let on_admin_listener = req.extensions().get::<AdminListener>().is_some();
            let admin_here = on_admin_listener || app.settings.admin_listen.0.is_none();
            let admin_path =
                path == "/metrics" || path.starts_with("/admin/") || AdminUi::is_ui_path(path);
            // Each listener serves its own side only; health is on both.
            let elsewhere = if admin_path {
                !admin_here
            } else {
                on_admin_listener
            };
            if elsewhere && path != "/healthz" {
                return Ok(respond(StatusCode::NOT_FOUND, "text/plain", "not found"));
            }
            if req.method() == Method::POST && path == "/admin/drain" {
                return Ok(drain_command(&app, &req));
            }
            if path.starts_with("/api/") {
                return Ok(crate::api::handle(&app, req).await);
            }
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Ok(respond(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain",
                    "method not allowed",
                ));
            }
            if AdminUi::is_ui_path(path) {
                return Ok(match &app.admin_ui {
                    Some(ui) => ui.serve(&req),
                    None => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
                });
            }
            let res = match path {
                "/healthz" => {
                    let (healthy, body) = app.health().await;
                    let status = if healthy {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    respond(status, "application/json", body.to_string())
                }
                "/metrics" => respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    app.metrics_text().await,
                ),
                _ => match WEB.iter().find(|(p, _, _)| *p == path) {
                    Some((_, ct, body)) => {
                        let mut res = respond(StatusCode::OK, ct, *body);
                        res.headers_mut()
                            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                        res.headers_mut().insert(
                            header::CONTENT_SECURITY_POLICY,
                            // `'self'` covers ws:/wss: to this host (CSP level 3); no framing.
                            HeaderValue::from_static("default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
                        );
                        res.headers_mut()
                            .insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                        res
                    }
                    None => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
                },
            };
            Ok(res)
        })
    }
}
