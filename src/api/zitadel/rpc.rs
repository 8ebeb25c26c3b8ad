//! Zitadel's own transports for the notification-policy methods of
//! `zitadel.management.v1.ManagementService` and `zitadel.admin.v1.AdminService`:
//! gRPC (HTTP/2, also cleartext), gRPC-web (tonic-web) and Connect unary
//! (JSON and binary), all at `/<service>/<method>` on the HTTP listener.
//!
//! One implementation of the generated tonic service traits ([`Zitadel`])
//! answers all three: gRPC and gRPC-web reach it through tonic's router,
//! Connect through [`connect`], which decodes the message, calls the same
//! trait method and encodes the answer. It only translates: who is calling
//! comes from the same extractors as REST (`authorization: Bearer`,
//! `x-zitadel-orgid`), what happens from the same `domain::policy` calls, and
//! errors carry the REST envelope's gRPC code and message. Methods the proto
//! files in `proto/zitadel/` do not list answer `UNIMPLEMENTED`.

use std::convert::Infallible;
use std::sync::LazyLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tower::{Layer, ServiceExt};

use super::error::status;
use crate::auth::{Admin, Caller, OrgScope};
use crate::clock::Millis;
use crate::domain::policy::{self, Details, Policy};
use crate::error::Error;
use crate::state::AppState;

/// The code `build.rs` generates from `proto/zitadel/*.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub mod pb {
    pub mod zitadel {
        pub mod v1 {
            tonic::include_proto!("zitadel.v1");
        }
        pub mod policy {
            pub mod v1 {
                tonic::include_proto!("zitadel.policy.v1");
            }
        }
        pub mod management {
            pub mod v1 {
                tonic::include_proto!("zitadel.management.v1");
            }
        }
        pub mod admin {
            pub mod v1 {
                tonic::include_proto!("zitadel.admin.v1");
            }
        }
    }
}

use pb::zitadel::admin::v1 as admin;
use pb::zitadel::management::v1 as mgmt;
use pb::zitadel::policy::v1::NotificationPolicy;
use pb::zitadel::v1::ObjectDetails;

pub const MANAGEMENT: &str = "zitadel.management.v1.ManagementService";
pub const ADMIN: &str = "zitadel.admin.v1.AdminService";

/// The services of `proto/zitadel/`, for gRPC, gRPC-web and Connect.
#[derive(Clone)]
pub struct Zitadel {
    app: AppState,
}

impl Zitadel {
    /// Runs a REST extractor (`Caller`, `Admin`, `OrgScope`) on gRPC metadata.
    async fn who<T: FromRequestParts<AppState, Rejection = Error>>(&self, metadata: &MetadataMap) -> Result<T, Status> {
        let (mut parts, ()) = axum::http::Request::new(()).into_parts();
        parts.headers = metadata.clone().into_headers();
        T::from_request_parts(&mut parts, &self.app).await.map_err(|e| status(&e))
    }
}

fn timestamp(at: Millis) -> prost_types::Timestamp {
    let nanos = i32::try_from(at.0.rem_euclid(1000) * 1_000_000).unwrap_or(0);
    prost_types::Timestamp { seconds: at.0.div_euclid(1000), nanos }
}

fn details(d: Details) -> Option<ObjectDetails> {
    let Details { sequence, created_at, changed_at, resource_owner } = d;
    Some(ObjectDetails {
        sequence: u64::try_from(sequence).unwrap_or(0),
        creation_date: Some(timestamp(created_at)),
        change_date: Some(timestamp(changed_at)),
        resource_owner,
    })
}

fn notification_policy(p: Policy) -> Option<NotificationPolicy> {
    let Policy { password_change, is_default, details: d } = p;
    Some(NotificationPolicy { details: details(d), is_default, password_change })
}

fn answer<T>(result: Result<T, Error>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(|e| status(&e))
}

#[tonic::async_trait]
impl mgmt::management_service_server::ManagementService for Zitadel {
    async fn get_notification_policy(
        &self,
        req: tonic::Request<mgmt::GetNotificationPolicyRequest>,
    ) -> Result<tonic::Response<mgmt::GetNotificationPolicyResponse>, Status> {
        let scope: OrgScope = self.who(req.metadata()).await?;
        let found = policy::effective(self.app.store(), &scope.org).await;
        answer(found.map(|p| mgmt::GetNotificationPolicyResponse { policy: notification_policy(p) }))
    }

    async fn get_default_notification_policy(
        &self,
        req: tonic::Request<mgmt::GetDefaultNotificationPolicyRequest>,
    ) -> Result<tonic::Response<mgmt::GetDefaultNotificationPolicyResponse>, Status> {
        let _: Caller = self.who(req.metadata()).await?;
        let found = policy::instance_default(self.app.store()).await;
        answer(found.map(|p| mgmt::GetDefaultNotificationPolicyResponse { policy: notification_policy(p) }))
    }

    async fn add_custom_notification_policy(
        &self,
        req: tonic::Request<mgmt::AddCustomNotificationPolicyRequest>,
    ) -> Result<tonic::Response<mgmt::AddCustomNotificationPolicyResponse>, Status> {
        let scope: OrgScope = self.who(req.metadata()).await?;
        let mgmt::AddCustomNotificationPolicyRequest { password_change } = req.into_inner();
        let done = policy::create(self.app.store(), &scope.actor, &scope.org, password_change, self.app.clock().now());
        answer(done.await.map(|d| mgmt::AddCustomNotificationPolicyResponse { details: details(d) }))
    }

    async fn update_custom_notification_policy(
        &self,
        req: tonic::Request<mgmt::UpdateCustomNotificationPolicyRequest>,
    ) -> Result<tonic::Response<mgmt::UpdateCustomNotificationPolicyResponse>, Status> {
        let scope: OrgScope = self.who(req.metadata()).await?;
        let mgmt::UpdateCustomNotificationPolicyRequest { password_change } = req.into_inner();
        let done = policy::update(self.app.store(), &scope.actor, &scope.org, password_change, self.app.clock().now());
        answer(done.await.map(|d| mgmt::UpdateCustomNotificationPolicyResponse { details: details(d) }))
    }

    async fn reset_notification_policy_to_default(
        &self,
        req: tonic::Request<mgmt::ResetNotificationPolicyToDefaultRequest>,
    ) -> Result<tonic::Response<mgmt::ResetNotificationPolicyToDefaultResponse>, Status> {
        let scope: OrgScope = self.who(req.metadata()).await?;
        let done = policy::reset(self.app.store(), &scope.actor, &scope.org, self.app.clock().now()).await;
        answer(done.map(|d| mgmt::ResetNotificationPolicyToDefaultResponse { details: details(d) }))
    }
}

#[tonic::async_trait]
impl admin::admin_service_server::AdminService for Zitadel {
    async fn get_notification_policy(
        &self,
        req: tonic::Request<admin::GetNotificationPolicyRequest>,
    ) -> Result<tonic::Response<admin::GetNotificationPolicyResponse>, Status> {
        let _: Admin = self.who(req.metadata()).await?;
        let found = policy::instance_default(self.app.store()).await;
        answer(found.map(|p| admin::GetNotificationPolicyResponse { policy: notification_policy(p) }))
    }

    async fn add_notification_policy(
        &self,
        req: tonic::Request<admin::AddNotificationPolicyRequest>,
    ) -> Result<tonic::Response<admin::AddNotificationPolicyResponse>, Status> {
        let Admin(caller) = self.who(req.metadata()).await?;
        let admin::AddNotificationPolicyRequest { password_change } = req.into_inner();
        let done = policy::create_default(self.app.store(), &caller.actor, password_change, self.app.clock().now());
        answer(done.await.map(|d| admin::AddNotificationPolicyResponse { details: details(d) }))
    }

    async fn update_notification_policy(
        &self,
        req: tonic::Request<admin::UpdateNotificationPolicyRequest>,
    ) -> Result<tonic::Response<admin::UpdateNotificationPolicyResponse>, Status> {
        let Admin(caller) = self.who(req.metadata()).await?;
        let admin::UpdateNotificationPolicyRequest { password_change } = req.into_inner();
        let done = policy::update_default(self.app.store(), &caller.actor, password_change, self.app.clock().now());
        answer(done.await.map(|d| admin::UpdateNotificationPolicyResponse { details: details(d) }))
    }
}

/// The routes `/<service>/{method}` of both services. gRPC and gRPC-web
/// content types go to tonic, everything else is Connect.
pub fn router(app: AppState) -> Router<AppState> {
    let zitadel = Zitadel { app };
    let grpc = tonic_web::GrpcWebLayer::new().layer(
        tonic::service::Routes::new(mgmt::management_service_server::ManagementServiceServer::new(zitadel.clone()))
            .add_service(admin::admin_service_server::AdminServiceServer::new(zitadel.clone()))
            .prepare(),
    );
    let service = tower::service_fn(move |req: Request| {
        let (grpc, zitadel) = (grpc.clone(), zitadel.clone());
        async move {
            let res = if is_grpc(req.headers()) {
                match grpc.oneshot(req).await {
                    Ok(res) => res.map(Body::new),
                    Err(never) => match never {},
                }
            } else {
                connect(&zitadel, req).await
            };
            Ok::<_, Infallible>(res)
        }
    });
    Router::new()
        .route_service(&format!("/{MANAGEMENT}/{{method}}"), service.clone())
        .route_service(&format!("/{ADMIN}/{{method}}"), service)
}

/// `application/grpc…` and `application/grpc-web…`: tonic's.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/grpc"))
}

/// The descriptors of `proto/zitadel/`, for the protobuf JSON mapping.
static DESCRIPTORS: LazyLock<Result<DescriptorPool, prost_reflect::DescriptorError>> =
    LazyLock::new(|| DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/zitadel_descriptor.bin"))[..]));

/// Connect's two unary codecs.
#[derive(Clone, Copy)]
enum Codec {
    Json,
    Proto,
}

impl Codec {
    fn of(headers: &HeaderMap) -> Option<Codec> {
        let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())?;
        match ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "application/json" => Some(Codec::Json),
            "application/proto" => Some(Codec::Proto),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Codec::Json => "application/json",
            Codec::Proto => "application/proto",
        }
    }

    fn decode<T: Message + Default>(self, name: &str, body: &[u8]) -> Result<T, Status> {
        let invalid = |what: &str| Status::invalid_argument(format!("the request is not a valid {name}: {what}"));
        match self {
            Codec::Proto => T::decode(body).map_err(|_| invalid("undecodable protobuf")),
            Codec::Json => {
                let pool = DESCRIPTORS.as_ref().map_err(|_| Status::internal("internal server error"))?;
                let desc = pool.get_message_by_name(name).ok_or_else(|| Status::internal("internal server error"))?;
                // serde's messages may quote the value sent; only its position is told.
                let at = |e: serde_json::Error| invalid(&format!("line {} column {}", e.line(), e.column()));
                let mut de = serde_json::Deserializer::from_slice(body);
                let msg = DynamicMessage::deserialize(desc, &mut de).map_err(at)?;
                de.end().map_err(at)?;
                msg.transcode_to::<T>().map_err(|_| invalid("wrong field types"))
            }
        }
    }

    fn encode<T: Message>(self, name: &str, msg: &T) -> Result<Vec<u8>, Status> {
        match self {
            Codec::Proto => Ok(msg.encode_to_vec()),
            Codec::Json => {
                let internal = || Status::internal("internal server error");
                let pool = DESCRIPTORS.as_ref().map_err(|_| internal())?;
                let desc = pool.get_message_by_name(name).ok_or_else(internal)?;
                let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice()).map_err(|_| internal())?;
                serde_json::to_vec(&dynamic).map_err(|_| internal())
            }
        }
    }
}

/// Connect's name and HTTP status for a gRPC code (connectrpc.com/docs/protocol).
fn connect_code(code: Code) -> (&'static str, StatusCode) {
    match code {
        Code::Ok => ("ok", StatusCode::OK),
        Code::Cancelled => ("canceled", StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)),
        Code::Unknown => ("unknown", StatusCode::INTERNAL_SERVER_ERROR),
        Code::InvalidArgument => ("invalid_argument", StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        Code::NotFound => ("not_found", StatusCode::NOT_FOUND),
        Code::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        Code::PermissionDenied => ("permission_denied", StatusCode::FORBIDDEN),
        Code::ResourceExhausted => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        Code::FailedPrecondition => ("failed_precondition", StatusCode::BAD_REQUEST),
        Code::Aborted => ("aborted", StatusCode::CONFLICT),
        Code::OutOfRange => ("out_of_range", StatusCode::BAD_REQUEST),
        Code::Unimplemented => ("unimplemented", StatusCode::NOT_IMPLEMENTED),
        Code::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        Code::DataLoss => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
    }
}

/// A Connect error: `{"code":"not_found","message":"…"}` with its HTTP status.
fn connect_error(status: &Status) -> Response {
    let (code, http) = connect_code(status.code());
    let body = serde_json::json!({ "code": code, "message": status.message() });
    let mut res = (http, axum::Json(body)).into_response();
    if let Some(retry) = status.metadata().get("retry-after").and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
        res.headers_mut().insert(header::RETRY_AFTER, retry);
    }
    res
}

/// Decodes a Connect request, calls the service method, encodes the answer.
async fn unary<Req, Res, F>(codec: Codec, names: (&str, &str), headers: HeaderMap, body: &[u8], call: F) -> Response
where
    Req: Message + Default,
    Res: Message,
    F: AsyncFnOnce(tonic::Request<Req>) -> Result<tonic::Response<Res>, Status>,
{
    let msg = match codec.decode::<Req>(names.0, body) {
        Ok(msg) => msg,
        Err(status) => return connect_error(&status),
    };
    let req = tonic::Request::from_parts(MetadataMap::from_headers(headers), Default::default(), msg);
    match call(req).await.and_then(|res| codec.encode(names.1, res.get_ref())) {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static(codec.content_type()))], Bytes::from(bytes))
            .into_response(),
        Err(status) => connect_error(&status),
    }
}

/// A Connect unary call (POST, `application/json` or `application/proto`).
async fn connect(svc: &Zitadel, req: Request) -> Response {
    use admin::admin_service_server::AdminService;
    use mgmt::management_service_server::ManagementService;

    let path = req.uri().path().to_owned();
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return connect_error(&Status::unimplemented("no such method"));
    };
    if req.method() != Method::POST {
        let mut res = connect_error(&Status::unimplemented("Connect unary calls are POST requests"));
        *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        res.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return res;
    }
    let Some(codec) = Codec::of(req.headers()) else {
        let mut res = connect_error(&Status::invalid_argument(
            "Content-Type must be application/json or application/proto (Connect), or a gRPC type",
        ));
        *res.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return res;
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, crate::api::BODY_LIMIT).await else {
        return connect_error(&Status::invalid_argument("the request body could not be read"));
    };
    let h = parts.headers;
    let m = |name: &str| format!("zitadel.management.v1.{name}");
    let a = |name: &str| format!("zitadel.admin.v1.{name}");
    match (service, method) {
        (MANAGEMENT, "GetNotificationPolicy") => {
            let names = (&*m("GetNotificationPolicyRequest"), &*m("GetNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| ManagementService::get_notification_policy(svc, r).await).await
        }
        (MANAGEMENT, "GetDefaultNotificationPolicy") => {
            let names = (&*m("GetDefaultNotificationPolicyRequest"), &*m("GetDefaultNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| svc.get_default_notification_policy(r).await).await
        }
        (MANAGEMENT, "AddCustomNotificationPolicy") => {
            let names = (&*m("AddCustomNotificationPolicyRequest"), &*m("AddCustomNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| svc.add_custom_notification_policy(r).await).await
        }
        (MANAGEMENT, "UpdateCustomNotificationPolicy") => {
            let names = (&*m("UpdateCustomNotificationPolicyRequest"), &*m("UpdateCustomNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| svc.update_custom_notification_policy(r).await).await
        }
        (MANAGEMENT, "ResetNotificationPolicyToDefault") => {
            let names =
                (&*m("ResetNotificationPolicyToDefaultRequest"), &*m("ResetNotificationPolicyToDefaultResponse"));
            unary(codec, names, h, &body, async |r| svc.reset_notification_policy_to_default(r).await).await
        }
        (ADMIN, "GetNotificationPolicy") => {
            let names = (&*a("GetNotificationPolicyRequest"), &*a("GetNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| AdminService::get_notification_policy(svc, r).await).await
        }
        (ADMIN, "AddNotificationPolicy") => {
            let names = (&*a("AddNotificationPolicyRequest"), &*a("AddNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| svc.add_notification_policy(r).await).await
        }
        (ADMIN, "UpdateNotificationPolicy") => {
            let names = (&*a("UpdateNotificationPolicyRequest"), &*a("UpdateNotificationPolicyResponse"));
            unary(codec, names, h, &body, async |r| svc.update_notification_policy(r).await).await
        }
        _ => connect_error(&Status::unimplemented(format!("{service}/{method} is not implemented"))),
    }
}
