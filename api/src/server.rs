use crate::error::ApiError;
use crate::state::AppState;
use crate::{accounts, auth, health, logs, metrics, openapi, ratelimit, sandbox, users};
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::routing::{get, patch, post};
use axum::Router;
use std::future::Future;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
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
            get(accounts::get).delete(accounts::delete),
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
        .route("/api/v1/telegram/logs", get(logs::list))
        .route("/api/v1/telegram/stats/errors", get(logs::error_stats));
    if state.sandbox.is_some() {
        router = router
            .route("/api/v1/sandbox/codes/{phone}", get(sandbox::code))
            .route("/api/v1/sandbox/faults", post(sandbox::fault));
    }
    if state.settings.debug {
        // The UI reads the document the API already serves; it must not register a second
        // `/openapi.json` route (axum refuses overlapping routes at start-up).
        router = router.merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        );
    }
    let cors = cors_layer(&state.settings.api.cors_origins);
    let body_limit = state.settings.api.body_limit_bytes;
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
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            metrics::track,
        ))
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
    let stop = CancellationToken::new();
    let api = axum::serve(
        listeners.api,
        api_router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    let metrics = axum::serve(listeners.metrics, metrics_router(state.registry.clone()))
        .with_graceful_shutdown(stop.clone().cancelled_owned());

    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new requests, finishing the ones in flight");
        trigger.cancel();
    });

    let maintenance = tokio::spawn(maintenance(state.clone(), stop.clone()));
    let (api_result, metrics_result) = tokio::join!(async { api.await }, async { metrics.await });
    stop.cancel();
    let _ = maintenance.await;
    // HTTP is closed, so nothing new reaches the actors; now let them persist and stop.
    if let Some(fleet) = &state.fleet {
        fleet.shutdown().await;
    }
    if let Some(dc) = state.sandbox.clone() {
        dc.shutdown().await;
    }
    api_result.context("serving the API")?;
    metrics_result.context("serving metrics")?;
    tracing::info!("stopped");
    Ok(())
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
        state.limits.prune();
        if let Err(e) = state.store.purge_expired_tokens(chrono::Utc::now()).await {
            tracing::warn!(error = %e, "purging expired tokens");
        }
        let days = state.settings.log.retention_days;
        if days > 0 {
            let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
            if let Err(e) = state.store.purge_logs_before(before).await {
                tracing::warn!(error = %e, "purging old integration log rows");
            }
        }
        if let Err(e) = state.cipher.check().await {
            tracing::warn!(error = %e, "refreshing the session cipher's key version");
        }
    }
}
