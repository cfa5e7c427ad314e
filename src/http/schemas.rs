//! The event schemas, served so clients can check events before sending:
//! `GET /v1/schemas` lists them, `GET /v1/schemas/{kind}/{version}` answers
//! one document, as in its file under `config/schemas/`.

use actix_web::{web, HttpResponse};
use arus_actors::model::schema::{self, Kind};
use serde_json::json;

use crate::error::ApiError;

#[utoipa::path(get, path = "/v1/schemas", tag = "health", operation_id = "list_schemas",
    responses((status = 200, description = "The event schemas", body = super::openapi::SchemaList)))]
pub async fn list() -> HttpResponse {
    let schemas: Vec<_> = schema::built_in()
        .versions()
        .map(|(kind, version)| {
            json!({
                "kind": kind.as_str(),
                "version": version,
                "current": version == kind.current_version(),
                "path": format!("/v1/schemas/{}/{version}", kind.as_str()),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "header": arus_actors::model::source::SCHEMA_VERSION_HEADER,
        "currentVersions": Kind::ALL
            .into_iter()
            .map(|k| (k.as_str(), k.current_version()))
            .collect::<std::collections::BTreeMap<_, _>>(),
        "schemas": schemas,
    }))
}

#[utoipa::path(get, path = "/v1/schemas/{kind}/{version}", tag = "health",
    params(("kind" = String, Path, example = "user-event"), ("version" = String, Path, example = "1")),
    responses((status = 200, description = "A JSON Schema", content_type = "application/schema+json", body = Object), (status = 404, description = "Not found", body = super::openapi::ErrorBody)))]
pub async fn document(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (kind_name, version) = path.into_inner();
    let kind = Kind::parse(&kind_name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no schema kind {kind_name:?}; the kinds are user-event and page-view"
        ))
    })?;
    let schema = schema::built_in().get(kind, &version).ok_or_else(|| {
        ApiError::NotFound(format!("no {kind_name} schema at version {version:?}"))
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/schema+json")
        .json(schema.document()))
}
