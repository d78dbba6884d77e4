//! `serve`: the daemon ([`crate::serve`]) until SIGTERM or SIGINT.

use tokio_util::sync::CancellationToken;

use crate::app::Exit;
use crate::config::Config;

/// Runs the daemon until `shutdown`, then drains.
pub(super) async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<Exit> {
    Ok(crate::serve::serve(config, shutdown).await?)
}
