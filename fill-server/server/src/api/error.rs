//! Every way an API call fails, and the one place each becomes an answer:
//! refusals keep their status and reason; the store's, the OS bundles' and
//! the planner's and the license service's errors are mapped here once (a failure of the server's
//! own storage is logged and answered without its detail). And the one
//! helper that runs blocking work (the store, files) off the async threads.

use std::sync::Arc;

use hyper::StatusCode;

use super::{error, Resp};
use crate::app::App;
use crate::fill::FillError;
use crate::os::OsError;
use crate::store::StoreError;
use nearcast_license::LicenseError;

#[derive(Debug)]
pub enum ApiError {
    /// Decided by the route: the status and the reason given.
    Refused(StatusCode, String),
    Store(StoreError),
    Os(OsError),
    Fill(FillError),
    License(LicenseError),
    /// A blocking task panicked or was cancelled.
    Task(String),
}

impl ApiError {
    pub fn new(status: StatusCode, msg: impl std::fmt::Display) -> Self {
        ApiError::Refused(status, msg.to_string())
    }

    pub fn into_response(self) -> Resp {
        match self {
            ApiError::Refused(status, msg) => error(status, msg),
            ApiError::Store(e) | ApiError::Fill(FillError::Store(e)) => match e {
                StoreError::Unknown { .. } | StoreError::Import { .. } => error(StatusCode::UNPROCESSABLE_ENTITY, e),
                StoreError::Exists { .. } | StoreError::Conflict(_) => error(StatusCode::CONFLICT, e),
                other => internal("store", other),
            },
            ApiError::Fill(e @ FillError::NotRegistered(_)) => error(StatusCode::CONFLICT, e),
            ApiError::Os(e @ (OsError::Unknown(_) | OsError::NoChunk(_))) => error(StatusCode::NOT_FOUND, e),
            ApiError::Os(e @ OsError::Io { .. }) => internal("OS bundle store", e),
            ApiError::Os(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
            ApiError::License(e) => {
                let status = match e {
                    LicenseError::NoEntitlement | LicenseError::Entitlement(_) | LicenseError::Session(_) => {
                        StatusCode::UNAUTHORIZED
                    }
                    LicenseError::NotEntitled { .. } => StatusCode::FORBIDDEN,
                    LicenseError::UnknownKey(_) => StatusCode::NOT_FOUND,
                    LicenseError::BadRequest(_) => StatusCode::BAD_REQUEST,
                    LicenseError::StreamLimit { .. } | LicenseError::DeviceLimit { .. } => {
                        StatusCode::TOO_MANY_REQUESTS
                    }
                    LicenseError::NoDevice => StatusCode::UNAUTHORIZED,
                    LicenseError::KeyStore(e) => return internal("key store", e),
                };
                error(status, e)
            }
            ApiError::Task(e) => internal("task", e),
        }
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> Resp {
    tracing::error!(error = %e, "{what} failure");
    error(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<OsError> for ApiError {
    fn from(e: OsError) -> Self {
        ApiError::Os(e)
    }
}

impl From<LicenseError> for ApiError {
    fn from(e: LicenseError) -> Self {
        ApiError::License(e)
    }
}

impl From<FillError> for ApiError {
    fn from(e: FillError) -> Self {
        ApiError::Fill(e)
    }
}

/// Runs `f` on a blocking thread (store calls and file reads block).
pub async fn blocking<T, E>(app: Arc<App>, f: impl FnOnce(&App) -> Result<T, E> + Send + 'static) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || f(&app)).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(ApiError::Task(e.to_string())),
    }
}
