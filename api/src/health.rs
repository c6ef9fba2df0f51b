use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: String,
    pub version: String,
    /// `serve --sandbox`: Telegram is the in-process testdc and the `/api/v1/sandbox/…` routes
    /// exist (the console offers its helpers then).
    #[serde(default)]
    pub sandbox: bool,
}

/// Liveness only: answers while the process serves HTTP, touching nothing else.
#[utoipa::path(get, path = "/api/v1/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn health(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        sandbox: state.sandbox.is_some(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComponentHealth {
    /// `ok`, `down` or `not_configured`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupervisorHealth {
    pub supervisors: usize,
    pub supervisors_unreachable: usize,
    pub actors: usize,
    pub starting: usize,
    pub backing_off: usize,
    pub quarantined: usize,
    /// Accounts whose start waits for the database to answer again (retried, not quarantined).
    pub waiting_for_database: usize,
    /// Accounts whose start waits for Vault to answer again (retried, not quarantined).
    pub waiting_for_vault: usize,
    pub restarts: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DetailedHealth {
    /// `ok` when every configured component is; `degraded` otherwise.
    pub status: String,
    pub version: String,
    pub uptime_s: u64,
    pub database: ComponentHealth,
    pub vault: ComponentHealth,
    pub telegram: ComponentHealth,
    /// Account count per state.
    pub accounts: std::collections::BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisors: Option<SupervisorHealth>,
}

fn component(result: Result<(), String>) -> ComponentHealth {
    match result {
        Ok(()) => ComponentHealth {
            status: "ok".into(),
            detail: None,
        },
        Err(detail) => ComponentHealth {
            status: "down".into(),
            detail: Some(detail),
        },
    }
}

#[utoipa::path(get, path = "/api/v1/health/detailed", tag = "health", security(("bearer" = [])),
    responses((status = 200, body = DetailedHealth), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody)))]
pub async fn detailed(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    _admin: crate::auth::AdminUser,
) -> Json<DetailedHealth> {
    let database = component(state.store.ping().await.map_err(|e| e.to_string()));
    let vault = if state.cipher.describe() == "vault" {
        component(state.cipher.check().await.map_err(|e| e.to_string()))
    } else {
        ComponentHealth {
            status: "not_configured".into(),
            detail: Some("sessions are sealed with the local key".into()),
        }
    };
    let telegram = match (&state.fleet, &state.sandbox) {
        (Some(_), Some(_)) => ComponentHealth {
            status: "ok".into(),
            detail: Some("sandbox: in-process testdc".into()),
        },
        (Some(_), None) => ComponentHealth {
            status: "ok".into(),
            detail: None,
        },
        (None, _) => ComponentHealth {
            status: "not_configured".into(),
            detail: Some("telegram.api_id / api_hash missing".into()),
        },
    };
    let accounts = state
        .store
        .count_accounts_by_state()
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|(s, n)| (s.as_str().to_owned(), n))
                .collect()
        })
        .unwrap_or_default();
    let supervisors = match &state.fleet {
        Some(fleet) => {
            let s = fleet.supervisor_stats().await;
            Some(SupervisorHealth {
                supervisors: s.supervisors,
                supervisors_unreachable: s.supervisors_unreachable,
                actors: s.children,
                starting: s.starting,
                backing_off: s.backing_off,
                quarantined: s.quarantined,
                waiting_for_database: s.waiting_for_store,
                waiting_for_vault: s.waiting_for_vault,
                restarts: s.restarts,
            })
        }
        None => None,
    };
    let degraded = database.status == "down"
        || vault.status == "down"
        || supervisors.as_ref().is_some_and(|s| {
            s.supervisors_unreachable > 0 || s.waiting_for_database > 0 || s.waiting_for_vault > 0
        });
    Json(DetailedHealth {
        status: if degraded { "degraded" } else { "ok" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: state.started_at.elapsed().as_secs(),
        database,
        vault,
        telegram,
        accounts,
        supervisors,
    })
}
