//! `explain --user --document`: Okta, the snapshot and CheckDocumentAccess side by side.
//! Reads only.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{Exit, engine_settings, open_state};
use crate::config::Config;
use crate::report::Mode;
use crate::sink::QBusinessSink;
use crate::source::okta::{OktaSettings, OktaSource};

use super::Output;

/// Arguments of `explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The user: an Okta user id, an Okta login or an email.
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// The Q Business document id.
    #[arg(long, value_name = "ID")]
    pub document: String,
    /// The document's data source (default: qbusiness.data_source_id); `none` for a
    /// document added with BatchPutDocument (asked without a data source).
    #[arg(long, value_name = "ID")]
    pub data_source: Option<String>,
    /// Result format on stdout.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `explain`: reads Okta, the snapshot (read-only) and CheckDocumentAccess; writes nothing.
pub(super) async fn explain(
    config: &Config,
    args: &ExplainArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Exit> {
    let settings = engine_settings(config)?;
    let state = open_state(config, Mode::Plan, &shutdown).await?;
    let source =
        OktaSource::new(OktaSettings::from_config(config)?).context("starting the Okta client")?;
    let sink = QBusinessSink::from_config(&config.qbusiness).await;
    let question = crate::explain::Question {
        user: args.user.trim(),
        document: &args.document,
        data_source: args.data_source.as_deref(),
    };
    let settings = crate::explain::Settings {
        rules: &settings.rules,
        id_attribute: &config.users.id_attribute,
    };
    match crate::explain::explain(&source, &sink, &state.store, settings, &question).await {
        Ok(e) => {
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&e)?),
                Output::Text => print!("{}", crate::explain::render_text(&e)),
            }
            Ok(if e.consistent {
                Exit::Success
            } else {
                Exit::Failed
            })
        }
        Err(e) if e.is_caller_error() => {
            let message = crate::error::error_chain(&e);
            if args.output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({ "error": message, "kind": e.kind() })
                );
            }
            tracing::error!(error = %message, kind = e.kind(), "explain");
            eprintln!("error: {message}");
            // What was asked about does not exist (4), or the setup refused the question (2).
            Ok(match e.kind() {
                "unknown_user" | "ambiguous_user" | "unknown_document" => Exit::Unknown,
                _ => Exit::Setup,
            })
        }
        Err(e) => Err(e.into()),
    }
}
