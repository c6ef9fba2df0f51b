use crate::error::ApiError;
use crate::state::AppState;
use crate::{
    accounts, auth, events, health, logs, media, metrics, openapi, posts, ratelimit, users,
    webhooks,
};
use anyhow::Context;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method};
use axum::routing::{get, patch, post, put};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::Service;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Both listeners, bound by the caller so tests can use `127.0.0.1:0` and read the ports back.
pub struct Listeners {
    pub api: TcpListener,
    pub metrics: TcpListener,
}

impl Listeners {
    pub async fn bind(settings: &tgfleet_config::Settings) -> anyhow::Result<Self> {
        let api = TcpListener::bind(settings.api.listen)
            .await
            .with_context(|| format!("binding api.listen {}", settings.api.listen))?;
        let metrics = TcpListener::bind(settings.metrics.listen)
            .await
            .with_context(|| format!("binding metrics.listen {}", settings.metrics.listen))?;
        Ok(Self { api, metrics })
    }
}

/// The REST API.
pub fn api_router(state: AppState) -> Router {
    let http_metrics = state.http_metrics.clone();
    // Unauthenticated routes that check credentials get the per-IP limit against guessing.
    let auth_public = Router::new()
        .route("/api/v1/auth/register", post(auth::routes::register))
        .route("/api/v1/auth/login", post(auth::routes::login))
        .route("/api/v1/auth/refresh", post(auth::routes::refresh))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::per_ip,
        ));
    let mut router = Router::new()
        .route("/api/v1/health", get(health::health))
        .route("/openapi.json", get(openapi::document))
        .merge(auth_public)
        .route("/api/v1/auth/logout", post(auth::routes::logout))
        .route("/api/v1/auth/me", get(auth::routes::me))
        .route("/api/v1/users", get(users::list))
        .route("/api/v1/users/{id}", patch(users::patch))
        .route("/api/v1/health/detailed", get(health::detailed))
        .route(
            "/api/v1/telegram/accounts",
            post(accounts::create).get(accounts::list),
        )
        .route(
            "/api/v1/telegram/accounts/import",
            post(accounts::transfer::import),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/export",
            get(accounts::transfer::export),
        )
        .route(
            "/api/v1/telegram/accounts/{id}",
            get(accounts::get)
                .patch(accounts::edit)
                .delete(accounts::delete),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/login/code",
            post(accounts::login::send_code),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/login/sign-in",
            post(accounts::login::sign_in),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/login/password",
            post(accounts::login::password),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/login/qr",
            post(accounts::login::qr_login),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/login/qr.png",
            get(accounts::login::qr_png),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/restart",
            post(accounts::restart),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/logout",
            post(accounts::logout),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/messages",
            post(accounts::messages::send),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats",
            get(accounts::chats::list).post(accounts::chats::create),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/join",
            post(accounts::chats::join),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}",
            get(accounts::chats::get)
                .patch(accounts::chats::edit)
                .delete(accounts::chats::leave),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}/messages",
            get(accounts::chat_messages::history),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}",
            patch(accounts::chat_messages::edit).delete(accounts::chat_messages::delete),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/pin",
            post(accounts::chat_messages::pin).delete(accounts::chat_messages::unpin),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/media",
            get(accounts::message_media::download),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}/invite-link",
            post(accounts::chats::invite_link),
        )
        .route(
            "/api/v1/telegram/accounts/{id}/chats/{chat}/admins/{user}",
            put(accounts::chats::promote).delete(accounts::chats::demote),
        )
        .route(
            media::UPLOAD_ROUTE,
            post(media::upload)
                .get(media::list)
                // The upload streams its body and bounds it itself (media.max_size_bytes).
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/api/v1/media/{id}", get(media::get).delete(media::delete))
        .route("/api/v1/posts", post(posts::create).get(posts::list))
        .route(
            "/api/v1/posts/{id}",
            get(posts::get).patch(posts::edit).delete(posts::delete),
        )
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/events/log", get(events::log))
        .route(
            "/api/v1/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::edit)
                .delete(webhooks::delete),
        )
        .route(
            "/api/v1/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/api/v1/webhooks/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route("/api/v1/webhooks/{id}/replay", post(webhooks::replay))
        .route("/api/v1/webhooks/{id}/test", post(webhooks::test))
        .route(
            "/api/v1/proxies",
            post(crate::proxies::create).get(crate::proxies::list),
        )
        .route("/api/v1/proxies/assign", post(crate::proxies::assign))
        .route(
            "/api/v1/proxies/{id}",
            get(crate::proxies::get)
                .patch(crate::proxies::edit)
                .delete(crate::proxies::delete),
        )
        .route(
            "/api/v1/formatting/preview",
            post(crate::formatting::preview),
        )
        .route("/api/v1/telegram/logs", get(logs::list))
        .route("/api/v1/telegram/stats/errors", get(logs::error_stats));
    #[cfg(feature = "sandbox")]
    if state.sandbox.is_some() {
        use crate::sandbox;
        router = router
            .route("/api/v1/sandbox/codes/{phone}", get(sandbox::code))
            .route("/api/v1/sandbox/faults", post(sandbox::fault))
            .route("/api/v1/sandbox/messages", post(sandbox::message))
            .route("/api/v1/sandbox/qr/scan", post(sandbox::scan_qr));
    }
    if state.settings.debug {
        // The UI reads the document the API already serves; it must not register a second
        // `/openapi.json` route (axum refuses overlapping routes at start-up).
        router = router.merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        );
    }
    if state.settings.console.enabled {
        router = router.merge(crate::console::router());
    }
    let cors = cors_layer(&state.settings.api.cors_origins);
    let body_limit = state.settings.api.body_limit_bytes;
    let request_timeout_limit = Duration::from_secs(state.settings.api.request_timeout_s);
    router
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(cors)
        // A bug in a handler must cost one request, not the connection or the process; the client
        // still gets the error format.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        // Inside the metrics layer, so a request cut off shows up as its 503.
        .layer(axum::middleware::from_fn_with_state(
            request_timeout_limit,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            metrics::track,
        ))
        // One span per request, named by its route template (never the path itself, which can
        // hold a phone number), so every line a request logs can be found together.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    let route = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map_or("unmatched", axum::extract::MatchedPath::as_str);
                    tracing::info_span!("http", method = %req.method(), route)
                })
                // A 503 while an account reconnects is an answer, not an error of this process;
                // the handlers log what is one.
                .on_failure(
                    tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
                ),
        )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
}

/// No origin is allowed unless configured: tokens travel in the Authorization header only, so
/// there is no cookie a cross-site request could ride on, and no page elsewhere can read answers.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
        .expose_headers([axum::http::header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}

/// Prometheus scrapes this listener only, so metrics never share the API's exposure or limits.
pub fn metrics_router(registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(registry)
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish and
/// returns once both listeners are closed.
pub async fn launch(
    state: AppState,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let api_settings = &state.settings.api;
    fd_budget(api_settings.max_connections);
    let api_limits = ConnLimits::from_settings(api_settings);
    // The same protections on the metrics listener, with a cap that fits its clients.
    let metrics_limits = ConnLimits {
        max_connections: METRICS_MAX_CONNECTIONS,
        ..api_limits
    };
    let stop = CancellationToken::new();
    let api = serve(
        listeners.api,
        api_router(state.clone()),
        api_limits,
        stop.clone(),
    );
    let metrics = serve(
        listeners.metrics,
        metrics_router(state.metrics_registry.clone()),
        metrics_limits,
        stop.clone(),
    );

    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests, finishing the ones in flight");
        trigger.cancel();
    });

    let maintenance = tokio::spawn(maintenance(state.clone(), stop.clone()));
    let posts = tokio::spawn(crate::posts::scheduler::run(state.clone(), stop.clone()));
    let hooks = tokio::spawn(crate::webhooks::dispatch::run(state.clone(), stop.clone()));
    let event_metrics = tokio::spawn(crate::events::metrics::run(state.clone(), stop.clone()));
    let proxy_checks = tokio::spawn(crate::proxies::run_checks(state.clone(), stop.clone()));
    let broker = state
        .settings
        .events
        .amqp_url
        .is_some()
        .then(|| tokio::spawn(crate::events::amqp::run(state.clone(), stop.clone())));
    tokio::join!(api, metrics);
    stop.cancel();
    let _ = maintenance.await;
    let _ = posts.await;
    let _ = hooks.await;
    let _ = event_metrics.await;
    let _ = proxy_checks.await;
    if let Some(broker) = broker {
        let _ = broker.await;
    }
    // HTTP is closed, so nothing new reaches the actors; now let them persist and stop.
    if let Some(fleet) = &state.fleet {
        fleet.shutdown().await;
    }
    #[cfg(feature = "sandbox")]
    if let Some(dc) = state.sandbox.clone() {
        dc.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connections of the metrics listener at once: Prometheus holds one or two, which leaves room
/// for an operator's curl, and a client that should not be there cannot take more descriptors.
const METRICS_MAX_CONNECTIONS: usize = 16;

/// What one listener allows its clients.
#[derive(Clone, Copy)]
struct ConnLimits {
    max_connections: usize,
    /// To send a request's headers, from connect or from the end of the previous response.
    header_read_timeout: Duration,
    /// How long shutdown waits for a connection whose request is still running.
    drain: Duration,
}

impl ConnLimits {
    fn from_settings(api: &tgfleet_config::ApiSettings) -> Self {
        let header_read_timeout = Duration::from_secs(api.header_read_timeout_s);
        let request_timeout = Duration::from_secs(api.request_timeout_s);
        Self {
            max_connections: api.max_connections,
            header_read_timeout,
            // A request ends by its timeout; the margin lets its response reach the client.
            drain: request_timeout + header_read_timeout,
        }
    }
}

/// How often a draining connection is checked for a request still running; a connection with
/// none is dropped then (idle, or half a header that will never become a request), so the last
/// response bytes get at least this long to reach the client.
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// The accept loop of one listener (instead of `axum::serve`, which has no connection cap and
/// no header timeout, and whose shutdown waits for every connection however idle).
async fn serve(listener: TcpListener, app: Router, limits: ConnLimits, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // The slot before the accept: past the cap, connections wait in the kernel's backlog and
        // hold no descriptor of this process.
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (io, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(
            io,
            peer,
            app.clone(),
            limits,
            stop.clone(),
            slot,
        ));
    }
    drop(listener);
    // Each connection holds its slot until it ends: once all are back, every connection is done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        // The client gave up while queued; nothing is wrong here.
        return;
    }
    // Out of descriptors or memory: retrying at once would spin; the next try may find some.
    tracing::error!(error = %e, "accepting an HTTP connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Requests of one connection whose handler is running.
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(count))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn connection(
    io: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let busy = Arc::new(AtomicUsize::new(0));
    let service = {
        let busy = Arc::clone(&busy);
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let running = Busy::enter(&busy);
            // What `into_make_service_with_connect_info` provided: the per-IP limit reads it.
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                let response = app.call(req).await;
                drop(running);
                response
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper starts this timer whenever it waits for a request head, so it bounds both a
    // slowloris header and an idle keep-alive connection.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
            }
            return;
        }
        () = stop.cancelled() => {}
    }
    // Shutting down: no further request on this connection; a running one may finish.
    conn.as_mut().graceful_shutdown();
    let deadline = tokio::time::Instant::now() + limits.drain;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep(DRAIN_CHECK) => {
                if busy.load(Ordering::Acquire) == 0 || tokio::time::Instant::now() >= deadline {
                    return;
                }
            }
        }
    }
}

/// Raises the soft descriptor limit to the hard one (systemd and most shells start services at
/// a soft 1024 for select()'s sake; a fleet needs one descriptor per connected account) and
/// warns when the HTTP cap would take more than half of what is there.
fn fd_budget(max_connections: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed to them.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        lim.rlim_cur
    };
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    if max_connections > soft / 2 {
        tracing::warn!(
            max_connections,
            fd_limit = soft,
            "api.max_connections can take more than half of the file descriptors, which the \
             Telegram connections share: lower it or raise the limit (ulimit -n, LimitNOFILE)"
        );
    }
}

async fn request_timeout(
    State(limit): State<Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // An upload lasts as long as its bytes take; it bounds a stalled body itself.
    let upload = req.method() == Method::POST
        && req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .is_some_and(|p| p.as_str() == media::UPLOAD_ROUTE);
    if upload {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable {
            code: "REQUEST_TIMEOUT",
            message: format!(
                "the request took longer than api.request_timeout_s ({} s)",
                limit.as_secs()
            ),
            retry_after_s: None,
        }
        .into_response(),
    }
}

/// Housekeeping that keeps memory and tables bounded and picks up a Vault key rotation.
async fn maintenance(state: AppState, stop: CancellationToken) {
    // Every 5 minutes: rate-limiter keys of idle clients go, expired revocations and refresh
    // tokens go, and a rotated transit key is noticed well before the cipher's own refresh.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        housekeeping(&state).await;
    }
}

/// One round of the housekeeping above; failures are logged and retried next round.
pub async fn housekeeping(state: &AppState) {
    state.limits.prune();
    let now = chrono::Utc::now();
    if let Err(e) = state.store.purge_expired_tokens(now).await {
        tracing::warn!(error = %e, "purging expired tokens");
    }
    // A family's tokens were all issued before it was revoked (a rotation into a revoked family
    // is refused), so one refresh TTL later none of them can be presented any more.
    if let Err(e) = state
        .store
        .purge_revoked_families(now - state.jwt.refresh_ttl)
        .await
    {
        tracing::warn!(error = %e, "purging revoked refresh token families");
    }
    let kept = chrono::Duration::hours(state.settings.events.retention_h as i64);
    if let Err(e) = state.store.purge_events_before(now - kept).await {
        tracing::warn!(error = %e, "purging old events");
    }
    let days = state.settings.log.retention_days;
    if days > 0 {
        let before = now - chrono::Duration::days(i64::from(days));
        if let Err(e) = state.store.purge_logs_before(before).await {
            tracing::warn!(error = %e, "purging old integration log rows");
        }
    }
    if let Err(e) = state.cipher.check().await {
        tracing::warn!(error = %e, "refreshing the session cipher's key version");
    }
}
