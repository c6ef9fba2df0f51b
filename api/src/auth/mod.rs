//! Users, passwords, JWT access tokens and rotating refresh tokens.

pub mod cache;
pub mod extractor;
pub mod password;
pub mod routes;
pub mod tokens;

pub use extractor::{AdminUser, AuthUser};
pub use tokens::JwtKeys;
