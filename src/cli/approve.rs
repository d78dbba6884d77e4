//! `approve <plan-id>`: a pass that applies a plan the circuit breaker held, if Okta still
//! agrees with it.

use tokio_util::sync::CancellationToken;

use crate::app::Exit;
use crate::config::Config;
use crate::report::{PassRequest, Trigger};

use super::Output;
use super::sync::run_request;

/// Arguments of `approve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApproveArgs {
    /// The held plan's id (printed by `sync` and `plan`, shown in GET /status).
    pub plan_id: String,
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

pub(super) async fn approve(
    config: &Config,
    args: &ApproveArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    run_request(
        config,
        &PassRequest::approve(args.plan_id.trim(), Trigger::Cli),
        args.output,
        shutdown,
    )
    .await
}
