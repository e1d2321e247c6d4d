//! The handlers without the listeners, for the fuzz targets (`fuzz/`).

use std::sync::Arc;

use super::{Application, router};
use crate::service::TokenService;
use crate::store::Store;

/// What answers requests, without the listeners and the background jobs: for driving the
/// handlers in-process from the fuzz targets (`fuzz/`), which feed them bytes no client
/// would send. Not a way to serve: use [`Application::run_until_stopped`].
#[doc(hidden)]
pub struct Handlers {
    pub service: Arc<TokenService>,
    pub admin: Arc<crate::grpc::admin::AdminApi>,
    pub account: Arc<crate::grpc::account::AccountApi>,
    /// The HTTP side port's router, as `run_until_stopped` serves it (without connect info).
    pub http: axum::Router,
    pub store: Arc<dyn Store>,
}

impl Application {
    /// Gives up the listeners and returns the handlers (see [`Handlers`]).
    #[doc(hidden)]
    pub fn into_handlers(self) -> Handlers {
        Handlers {
            service: self.service,
            admin: self.admin,
            account: self.account,
            http: router(self.http_state),
            store: self.store,
        }
    }
}
