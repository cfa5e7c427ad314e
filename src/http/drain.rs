//! While draining (after SIGTERM, before intake stops), every answer closes
//! its connection: a client holding a keep-alive connection to this
//! instance (through an L4 balancer such as kube-proxy, which pins a
//! connection to one pod) opens its next one to an instance that stays.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web;

use super::AppState;

pub async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let mut response = next.call(req).await?;
    if state.is_some_and(|s| s.health.shutting_down()) {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
