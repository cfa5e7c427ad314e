//! Who may call what: optional API keys for ingestion, an admin token for
//! the admin endpoints. Keys are compared in constant time and never logged.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::HttpRequest;
use arus_config::{IpRange, Secret, SecuritySettings};

use crate::error::ApiError;

/// The credential a request presents in `name`, or as `Authorization: Bearer`.
fn presented<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    let direct = req.headers().get(name).and_then(|v| v.to_str().ok());
    direct.or_else(|| {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
    })
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110, 11.1), so `bearer` and `BEARER` are too.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
        .filter(|t| !t.is_empty())
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

/// Queries: open unless read keys are configured.
pub fn query(req: &HttpRequest, keys: &[Secret]) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    check(req, "x-api-key", keys, "queries")
}

/// The dashboard and its stream: a read key as for queries, or, since a
/// browser's `EventSource` and a bookmarked page cannot send a header, in
/// the URL's `key` parameter (which then shows in access logs and browser
/// history: use a read-only key).
pub fn query_in_url(req: &HttpRequest, keys: &[Secret]) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Ok(());
    }
    let in_url = actix_web::web::Query::<std::collections::HashMap<String, String>>::from_query(
        req.query_string(),
    )
    .ok()
    .and_then(|q| q.into_inner().remove("key"));
    match in_url {
        Some(given)
            if keys
                .iter()
                .any(|k| equal(k.expose().as_bytes(), given.as_bytes())) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::Forbidden(
            "the credential is not valid for queries".into(),
        )),
        None => query(req, keys),
    }
}

/// The middleware of the query routes: a GET or HEAD needs a read key when
/// `security.query_api_keys` is set (in `/events`, the POSTs are ingest,
/// with their own keys).
pub async fn read_key_for_queries(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let reading = matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    );
    if reading {
        if let Some(state) = req.app_data::<actix_web::web::Data<super::AppState>>() {
            query(req.request(), &state.settings.security.query_api_keys)?;
        }
    }
    next.call(req).await
}

/// Who a request is, for the rate limit: its API key (as a hash: the
/// key itself is kept nowhere new) when keys are configured, else the
/// address it came from: the socket's, or, when the socket is a trusted
/// proxy's, the address that proxy names (see [`client_address`]).
pub fn client(req: &HttpRequest, security: &SecuritySettings, proxies: &[IpRange]) -> String {
    if !security.ingest_api_keys.is_empty() {
        if let Some(key) = presented(req, "x-api-key") {
            return format!("key:{:016x}", arus_actors::key_hash(key));
        }
    }
    match req.peer_addr() {
        Some(addr) => format!("addr:{}", client_address(req, addr.ip(), proxies)),
        None => "addr:unknown".into(),
    }
}

/// The client's address. A forwarded-for header is believed only from a
/// trusted proxy (anyone else can set it to anything): walking the chain
/// from the nearest hop back, the first address that is not a trusted
/// proxy is the client. `X-Forwarded-For` first, else `Forwarded`'s `for=`.
/// A chain of trusted proxies only, or a header that names no address,
/// leaves the last proxy as the client.
pub fn client_address(req: &HttpRequest, peer: IpAddr, proxies: &[IpRange]) -> IpAddr {
    let trusted = |ip: IpAddr| proxies.iter().any(|p| p.contains(ip));
    if !trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = forwarded_chain(req);
    let mut client = peer;
    for hop in forwarded.into_iter().rev() {
        client = hop;
        if !trusted(hop) {
            break;
        }
    }
    client
}

/// The addresses a request passed through, client first, as its
/// `X-Forwarded-For` (or else `Forwarded`) headers list them. An entry that
/// is not an address (`unknown`, an obfuscated name) ends the chain there:
/// nothing before it can be traced.
fn forwarded_chain(req: &HttpRequest) -> Vec<IpAddr> {
    let values = |name| {
        req.headers()
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let xff = values("x-forwarded-for");
    let entries: Vec<String> = if !xff.is_empty() {
        xff.into_iter().map(str::to_string).collect()
    } else {
        values("forwarded")
            .into_iter()
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for")
                        .then(|| value.trim_matches('"').to_string())
                })
            })
            .collect()
    };
    let mut chain = Vec::new();
    for entry in entries.iter().rev() {
        match parse_node(entry) {
            Some(ip) => chain.push(ip),
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// `203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    node.rsplit_once(':')?.0.parse().ok()
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

    use actix_web::test::TestRequest;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter()
            .map(|r| IpRange::parse(r).expect("a range"))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let proxies = ranges(&["10.0.0.0/8"]);
        let req = TestRequest::default()
            .insert_header(("x-forwarded-for", "198.51.100.4, 10.1.1.1"))
            .to_http_request();
        // From the proxy: the first untrusted hop from the nearest back.
        assert_eq!(
            client_address(&req, ip("10.0.0.2"), &proxies),
            ip("198.51.100.4")
        );
        // From anyone else: the header is theirs to invent.
        assert_eq!(
            client_address(&req, ip("203.0.113.9"), &proxies),
            ip("203.0.113.9")
        );
        // No proxies configured: never believed.
        assert_eq!(client_address(&req, ip("10.0.0.2"), &[]), ip("10.0.0.2"));
        // A spoofed first entry behind a real client stays unbelieved.
        let spoofed = TestRequest::default()
            .insert_header(("x-forwarded-for", "1.2.3.4, 198.51.100.4"))
            .to_http_request();
        assert_eq!(
            client_address(&spoofed, ip("10.0.0.2"), &proxies),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn the_forwarded_header_is_read_when_there_is_no_x_forwarded_for() {
        let proxies = ranges(&["127.0.0.1"]);
        let req = TestRequest::default()
            .insert_header((
                "forwarded",
                r#"for="[2001:db8::7]:4711";proto=https, for=127.0.0.1"#,
            ))
            .to_http_request();
        assert_eq!(
            client_address(&req, ip("127.0.0.1"), &proxies),
            ip("2001:db8::7")
        );
        let unknown = TestRequest::default()
            .insert_header(("forwarded", "for=unknown"))
            .to_http_request();
        assert_eq!(
            client_address(&unknown, ip("127.0.0.1"), &proxies),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn equality_is_exact() {
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"abcd"));
        assert!(equal(b"", b""));
    }
}
