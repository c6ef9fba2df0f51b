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

/// Documentation twins of the persistence enums (which stay free of OpenAPI concerns), so the
/// document lists their exact values.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RoleDoc {
    Admin,
    User,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AccountKindDoc {
    User,
    Bot,
}

/// `SessionFormat` lives with session import in `tgfleet-actors`, which knows nothing of OpenAPI.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SessionFormatDoc {
    Telethon,
    Pyrogram,
    Tgfleet,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AccountStateDoc {
    New,
    AwaitingCode,
    AwaitingPassword,
    AwaitingQr,
    Active,
    Reconnecting,
    FloodWait,
    Unauthorized,
    Banned,
    Quarantined,
    Hibernated,
    LoggedOut,
    Stopped,
}

/// Answers every operation can give besides its own: a malformed path or query (400), a body that
/// is not JSON, too large or of the wrong shape (400/413/415/422), a missing token (401), the
/// per-user or per-IP rate limit (429). Added here once instead of on each handler.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{content::ContentBuilder, path::HttpMethod, RefOr, ResponseBuilder};
        let error = || -> RefOr<utoipa::openapi::Response> {
            RefOr::T(
                ResponseBuilder::new()
                    .description("an error; see `error.code`")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            for method in [
                HttpMethod::Get,
                HttpMethod::Post,
                HttpMethod::Patch,
                HttpMethod::Delete,
            ] {
                let op = match method {
                    HttpMethod::Get => item.get.as_mut(),
                    HttpMethod::Post => item.post.as_mut(),
                    HttpMethod::Patch => item.patch.as_mut(),
                    HttpMethod::Delete => item.delete.as_mut(),
                    _ => None,
                };
                let Some(op) = op else { continue };
                let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let has_body = op.request_body.is_some();
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut codes: Vec<&str> = vec!["429"];
                if has_params || has_body {
                    codes.push("400");
                }
                if has_body {
                    codes.extend(["413", "415", "422"]);
                }
                if secured {
                    codes.push("401");
                }
                for code in codes {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(error);
                }
            }
        }
    }
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
    modifiers(&BearerAuth, &CommonErrors),
    paths(
        crate::health::health,
        crate::health::detailed,
        crate::accounts::create,
        crate::accounts::list,
        crate::accounts::get,
        crate::accounts::edit,
        crate::accounts::delete,
        crate::accounts::restart,
        crate::accounts::logout,
        crate::accounts::login::send_code,
        crate::accounts::login::sign_in,
        crate::accounts::login::password,
        crate::accounts::login::qr_login,
        crate::accounts::login::qr_png,
        crate::accounts::messages::send,
        crate::formatting::preview,
        crate::posts::create,
        crate::posts::list,
        crate::posts::get,
        crate::posts::edit,
        crate::posts::delete,
        crate::accounts::message_media::download,
        crate::media::upload,
        crate::media::list,
        crate::media::get,
        crate::media::delete,
        crate::accounts::chats::list,
        crate::accounts::chats::create,
        crate::accounts::chats::get,
        crate::accounts::chats::edit,
        crate::accounts::chats::leave,
        crate::accounts::chats::join,
        crate::accounts::chats::invite_link,
        crate::accounts::chats::promote,
        crate::accounts::chats::demote,
        crate::accounts::chat_messages::history,
        crate::accounts::chat_messages::edit,
        crate::accounts::chat_messages::delete,
        crate::accounts::chat_messages::pin,
        crate::accounts::chat_messages::unpin,
        crate::accounts::transfer::import,
        crate::accounts::transfer::export,
        crate::auth::routes::register,
        crate::auth::routes::login,
        crate::auth::routes::refresh,
        crate::auth::routes::logout,
        crate::auth::routes::me,
        crate::users::list,
        crate::users::patch,
        crate::logs::list,
        crate::logs::error_stats,
        crate::events::stream,
        crate::events::log,
        crate::webhooks::create,
        crate::webhooks::list,
        crate::webhooks::get,
        crate::webhooks::edit,
        crate::webhooks::delete,
        crate::webhooks::rotate_secret,
        crate::webhooks::deliveries,
        crate::webhooks::replay,
        crate::webhooks::test,
        crate::proxies::create,
        crate::proxies::list,
        crate::proxies::get,
        crate::proxies::edit,
        crate::proxies::delete,
        crate::proxies::assign,
    ),
    components(schemas(ErrorBody, ErrorDetail, FieldErrorDoc, RoleDoc, AccountKindDoc, AccountStateDoc, SessionFormatDoc))
)]
pub struct ApiDoc;

/// The whole document: the sandbox routes are in it when this build has them, with the answers
/// every operation can give (the derive's modifiers ran before the merge).
pub fn full() -> utoipa::openapi::OpenApi {
    #[allow(unused_mut)]
    let mut doc = ApiDoc::openapi();
    #[cfg(feature = "sandbox")]
    {
        doc.merge(crate::sandbox::SandboxDoc::openapi());
        CommonErrors.modify(&mut doc);
    }
    doc
}

pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(full())
}
