//! The OpenAPI 3 document, generated from the handlers' annotations so it cannot drift from them.

use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error":{"code":"SNAKE_CASE_CODE","message":"…"}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, SCREAMING_SNAKE_CASE.
    pub code: String,
    pub message: String,
    /// Present on VALIDATION_FAILED: each bad field and what is wrong with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldErrorDoc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldErrorDoc {
    pub field: String,
    pub message: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tgfleet", description = "Many Telegram accounts behind one REST API"),
    modifiers(&BearerAuth),
    paths(
        crate::health::health,
        crate::health::detailed,
        crate::accounts::create,
        crate::accounts::list,
        crate::accounts::get,
        crate::accounts::delete,
        crate::accounts::restart,
        crate::accounts::logout,
        crate::accounts::login::send_code,
        crate::accounts::login::sign_in,
        crate::accounts::login::password,
        crate::accounts::login::qr_login,
        crate::accounts::login::qr_png,
        crate::accounts::messages::send,
        crate::accounts::transfer::import,
        crate::accounts::transfer::export,
        crate::sandbox::code,
        crate::sandbox::fault,
        crate::auth::routes::register,
        crate::auth::routes::login,
        crate::auth::routes::refresh,
        crate::auth::routes::logout,
        crate::auth::routes::me,
        crate::users::list,
        crate::users::patch,
        crate::logs::list,
        crate::logs::error_stats,
    ),
    components(schemas(ErrorBody, ErrorDetail, FieldErrorDoc))
)]
pub struct ApiDoc;

pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
