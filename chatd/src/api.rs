//! The accounts HTTP API under `/api/` (docs/protocol.md, "Accounts"): JSON in, JSON out,
//! errors as `{"ok":false,"error":{"code","message"}}` like the Socket.IO acks.
//!
//! A request is signed in by `Authorization: Bearer <token>` or the session cookie. Requests
//! that change anything are POSTs with a JSON body (which a cross-site form cannot send), from
//! no `Origin` or an allowed one (the handshake's rule), and the cookie is `SameSite=Lax`.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::accounts::{self, Authed, LoggedIn, Refused};
use crate::app::App;
use crate::origin::{self, Origin};
use crate::protocol::{ChatError, Code};

/// Largest request body.
pub const MAX_BODY: usize = 8 * 1024;
/// How long a client has to send the body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

type Res = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: &Value) -> Res {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn status_of(code: Code) -> StatusCode {
    match code {
        Code::InvalidCredentials | Code::AuthRequired | Code::InvalidSession => {
            StatusCode::UNAUTHORIZED
        }
        Code::Forbidden | Code::RegistrationClosed => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::NameTaken => StatusCode::CONFLICT,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable | Code::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The error response of a refusal (`Retry-After` on `rate_limited`).
fn error((err, retry_after): Refused) -> Res {
    let mut res = json_response(status_of(err.code), &err.to_ack());
    if err.code == Code::RateLimited {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    }
    res
}

fn fail(code: Code, message: &str) -> Res {
    error((ChatError::new(code, message), 0))
}

fn refused(e: ChatError) -> Refused {
    (e, 0)
}

/// What the handlers need of the request, its body read.
struct Ask<'a> {
    app: &'a App,
    parts: Parts,
    body: Bytes,
}

impl Ask<'_> {
    fn via_trusted_proxy(&self) -> bool {
        self.parts
            .extensions
            .get::<engineio::PeerAddr>()
            .is_some_and(|p| {
                self.app
                    .trusted_proxies
                    .iter()
                    .any(|net| net.contains(&p.0.ip()))
            })
    }

    fn client_ip(&self) -> Option<IpAddr> {
        let peer = self
            .parts
            .extensions
            .get::<engineio::PeerAddr>()
            .map(|p| p.0.ip());
        let forwarded = self
            .parts
            .headers
            .get_all("x-forwarded-for")
            .into_iter()
            .map(|v| v.as_bytes());
        engineio::client_ip(peer, forwarded, &self.app.trusted_proxies)
    }

    /// The cookie is `Secure` with `--cookie-secure`, or when a trusted proxy says https.
    fn secure(&self) -> bool {
        self.app.settings.cookie_secure
            || (self.via_trusted_proxy()
                && self
                    .parts
                    .headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
    }

    fn user_agent(&self) -> &str {
        self.parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The presented token: `Authorization: Bearer`, else the session cookie.
    fn token(&self) -> Option<String> {
        let bearer = self
            .parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        bearer.or_else(|| {
            accounts::cookie_token(
                self.parts
                    .headers
                    .get_all(header::COOKIE)
                    .into_iter()
                    .map(|v| v.as_bytes()),
            )
        })
    }

    async fn authed(&self) -> Result<Authed, Refused> {
        let Some(token) = self.token() else {
            return Err(refused(ChatError::new(Code::AuthRequired, "log in first")));
        };
        self.app
            .accounts
            .authenticate(&token)
            .await
            .map_err(refused)?
            .ok_or_else(|| {
                refused(ChatError::new(
                    Code::InvalidSession,
                    "the session is unknown, expired or revoked: log in again",
                ))
            })
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, Refused> {
        serde_json::from_slice(&self.body).map_err(|e| {
            refused(ChatError::new(
                Code::BadRequest,
                format!("invalid payload: {e}"),
            ))
        })
    }

    fn cookie_max_age(&self) -> u64 {
        self.app.settings.session_hours.max(1) * 3600
    }

    /// The answer to a login or registration: the cookie, and the token when asked for.
    fn logged_in(&self, status: StatusCode, done: &LoggedIn, with_token: bool) -> Res {
        let mut body = signed_in(&done.authed);
        if with_token {
            body["token"] = json!(done.token);
        }
        let mut res = json_response(status, &body);
        let cookie = accounts::set_cookie(Some(&done.token), self.cookie_max_age(), self.secure());
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        res
    }

    fn clear_cookie(&self, mut res: Res) -> Res {
        let cookie = accounts::set_cookie(None, 0, self.secure());
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        res
    }
}

/// Ends this node's `/chat` connections of the sessions `ids`, telling them why first. (Other
/// nodes' connections of a session end at their next handshake, which refuses it.)
fn end_connections(app: &App, ids: &[String], reason: &str) {
    let chat = app.io.of("/chat");
    for id in ids {
        let group = accounts::session_group(id);
        let _ = chat
            .to(group.clone())
            .emit("session_ended", json!({"reason": reason}));
        chat.to(group).disconnect_sockets(false);
    }
}

fn signed_in(authed: &Authed) -> Value {
    json!({
        "ok": true,
        "user": {"name": authed.account.name, "admin": authed.account.admin},
        "session": {"id": authed.session.id, "expires_at": authed.session.expires_at},
    })
}

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
    invite: Option<String>,
    #[serde(default)]
    token: bool,
}

#[derive(Deserialize)]
struct PasswordReq {
    current: String,
    new: String,
}

#[derive(Deserialize)]
struct RevokeReq {
    id: String,
}

#[derive(Deserialize)]
struct InviteReq {
    hours: Option<u64>,
}

/// Reads the body: at most [`MAX_BODY`] bytes within [`BODY_TIMEOUT`].
async fn read_body(body: Incoming) -> Result<Bytes, Res> {
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let mut res = fail(Code::BadRequest, "the request body is too large");
            *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            Err(res)
        }
        Ok(Err(_)) => Err(fail(Code::BadRequest, "the request body could not be read")),
        Err(_) => Err(fail(Code::BadRequest, "the request body took too long")),
    }
}

/// Handles a request under `/api/`.
pub async fn handle(app: &App, req: Request<Incoming>) -> Res {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let post = parts.method == Method::POST;
    let known_get = matches!(path.as_str(), "/api/config" | "/api/me" | "/api/sessions");
    let known_post = matches!(
        path.as_str(),
        "/api/register"
            | "/api/login"
            | "/api/logout"
            | "/api/password"
            | "/api/sessions/revoke"
            | "/api/invites"
    );
    if !known_get && !known_post {
        return fail(Code::NotFound, "no such API endpoint");
    }
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    if (known_get && !get) || (known_post && !post) {
        let mut res = fail(Code::BadRequest, "method not allowed");
        *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        let allow = if known_get { "GET, HEAD" } else { "POST" };
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return res;
    }
    let ask = if post {
        let json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json {
            let mut res = fail(
                Code::BadRequest,
                "send JSON (Content-Type: application/json)",
            );
            *res.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return res;
        }
        let allowed: Vec<Origin> = app
            .settings
            .origins()
            .iter()
            .filter_map(|o| Origin::parse(o).ok())
            .collect();
        let ask = Ask {
            app,
            parts,
            body: Bytes::new(),
        };
        if !origin::allowed(&ask.parts, &allowed, ask.via_trusted_proxy()) {
            return fail(Code::Forbidden, "origin not allowed");
        }
        match read_body(body).await {
            Ok(bytes) => Ask { body: bytes, ..ask },
            Err(res) => return res,
        }
    } else {
        Ask {
            app,
            parts,
            body: Bytes::new(),
        }
    };
    let result = match path.as_str() {
        "/api/config" => Ok(json_response(
            StatusCode::OK,
            &json!({
                "ok": true,
                "registration": app.accounts.registration.as_str(),
                "guests": app.settings.guests,
            }),
        )),
        "/api/register" => register(&ask).await,
        "/api/login" => login(&ask).await,
        "/api/logout" => logout(&ask).await,
        "/api/password" => password(&ask).await,
        "/api/me" => ask
            .authed()
            .await
            .map(|authed| json_response(StatusCode::OK, &signed_in(&authed))),
        "/api/sessions" => sessions(&ask).await,
        "/api/sessions/revoke" => revoke(&ask).await,
        _ => invite(&ask).await,
    };
    result.unwrap_or_else(error)
}

async fn register(ask: &Ask<'_>) -> Result<Res, Refused> {
    let req: Credentials = ask.json()?;
    let identities = ask.app.identities.clone();
    let name = req.name.clone();
    let online = async move { identities.is_online(&name).await };
    let done = ask
        .app
        .accounts
        .register(
            ask.client_ip(),
            &req.name,
            &req.password,
            req.invite.as_deref(),
            ask.user_agent(),
            online,
        )
        .await?;
    Ok(ask.logged_in(StatusCode::CREATED, &done, req.token))
}

async fn login(ask: &Ask<'_>) -> Result<Res, Refused> {
    let req: Credentials = ask.json()?;
    let done = ask
        .app
        .accounts
        .login(ask.client_ip(), &req.name, &req.password, ask.user_agent())
        .await?;
    Ok(ask.logged_in(StatusCode::OK, &done, req.token))
}

/// Ends the presented session, if valid; always clears the cookie.
async fn logout(ask: &Ask<'_>) -> Result<Res, Refused> {
    if let Ok(authed) = ask.authed().await {
        ask.app.accounts.logout(&authed).await.map_err(refused)?;
        end_connections(ask.app, &[authed.session.id], "logged out");
    }
    Ok(ask.clear_cookie(json_response(StatusCode::OK, &json!({"ok": true}))))
}

async fn password(ask: &Ask<'_>) -> Result<Res, Refused> {
    let authed = ask.authed().await?;
    let req: PasswordReq = ask.json()?;
    let ended = ask
        .app
        .accounts
        .change_password(ask.client_ip(), &authed, &req.current, &req.new)
        .await?;
    end_connections(ask.app, &ended, "password changed");
    Ok(json_response(StatusCode::OK, &json!({"ok": true})))
}

async fn sessions(ask: &Ask<'_>) -> Result<Res, Refused> {
    let authed = ask.authed().await?;
    let list = ask.app.accounts.sessions(&authed).await.map_err(refused)?;
    let list: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut v = json!(s);
            v["current"] = json!(s.id == authed.session.id);
            v
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"ok": true, "sessions": list}),
    ))
}

async fn revoke(ask: &Ask<'_>) -> Result<Res, Refused> {
    let authed = ask.authed().await?;
    let req: RevokeReq = ask.json()?;
    if !ask
        .app
        .accounts
        .revoke(&authed, &req.id)
        .await
        .map_err(refused)?
    {
        return Err(refused(ChatError::new(Code::NotFound, "no such session")));
    }
    end_connections(ask.app, std::slice::from_ref(&req.id), "session revoked");
    let res = json_response(StatusCode::OK, &json!({"ok": true}));
    Ok(if req.id == authed.session.id {
        ask.clear_cookie(res)
    } else {
        res
    })
}

async fn invite(ask: &Ask<'_>) -> Result<Res, Refused> {
    let authed = ask.authed().await?;
    if !authed.account.admin {
        return Err(refused(ChatError::new(
            Code::Forbidden,
            "only administrators make invites",
        )));
    }
    let req: InviteReq = ask.json()?;
    let (code, expires_at) = ask
        .app
        .accounts
        .invite(
            &authed.account.name,
            req.hours.unwrap_or(accounts::INVITE_HOURS),
        )
        .await
        .map_err(refused)?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"ok": true, "code": code, "expires_at": expires_at}),
    ))
}
