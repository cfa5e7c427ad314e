//! Who may call what: optional API keys for ingestion, an admin token for
//! the admin endpoints. Keys are compared in constant time and never logged.

use actix_web::http::header;
use actix_web::HttpRequest;
use arus_config::{Secret, SecuritySettings};

use crate::error::ApiError;

/// The credential a request presents in `name`, or as `Authorization: Bearer`.
fn presented<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    let direct = req.headers().get(name).and_then(|v| v.to_str().ok());
    direct.or_else(|| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
    })
}

/// Equal bytes, in time that does not depend on where they differ.
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check(
    req: &HttpRequest,
    header_name: &str,
    accepted: &[Secret],
    what: &str,
) -> Result<(), ApiError> {
    let Some(given) = presented(req, header_name) else {
        return Err(ApiError::Unauthorized(format!(
            "{what} needs a credential: header {header_name} or Authorization: Bearer"
        )));
    };
    if accepted
        .iter()
        .any(|k| equal(k.expose().as_bytes(), given.as_bytes()))
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "the credential is not valid for {what}"
        )))
    }
}

/// Ingestion: open when no keys are configured.
pub fn ingest(req: &HttpRequest, keys: &[Secret]) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    check(req, "x-api-key", keys, "ingestion")
}

/// Who a request is, for the rate limit: its API key (as a hash: the
/// key itself is kept nowhere new) when keys are configured, else the
/// address it connected from (not a forwarded-for header, which anyone can set).
pub fn client(req: &HttpRequest, security: &SecuritySettings) -> String {
    if !security.ingest_api_keys.is_empty() {
        if let Some(key) = presented(req, "x-api-key") {
            return format!("key:{:016x}", arus_actors::key_hash(key));
        }
    }
    match req.peer_addr() {
        Some(addr) => format!("addr:{}", addr.ip()),
        None => "addr:unknown".into(),
    }
}

/// Admin endpoints: closed when no token is configured.
pub fn admin(req: &HttpRequest, token: &Secret) -> Result<(), ApiError> {
    if token.is_empty() {
        return Err(ApiError::Forbidden(
            "admin endpoints are disabled: set security.admin_token (ARUS__SECURITY__ADMIN_TOKEN)"
                .into(),
        ));
    }
    check(
        req,
        "x-admin-token",
        std::slice::from_ref(token),
        "admin endpoints",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_is_exact() {
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"abcd"));
        assert!(equal(b"", b""));
    }
}
