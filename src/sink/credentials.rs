//! `check-config` against AWS: whether the default credential chain finds credentials.

use aws_sdk_qbusiness::config::{BehaviorVersion, ProvideCredentials, Region};

/// Where the default AWS credential chain looks, in its order, and what to set.
pub const CREDENTIAL_CHAIN: &str = "no AWS credentials found by the default chain \
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/config+credentials, web identity \
AWS_ROLE_ARN+AWS_WEB_IDENTITY_TOKEN_FILE as EKS IRSA sets them, EKS Pod Identity or the ECS task \
role, the EC2 instance profile); give the pod or task an IAM role, or set AWS_PROFILE or \
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";

/// What to do when a call finds no AWS credentials.
pub const CREDENTIAL_FIX: &str = "give the pod or task an IAM role, or set AWS_PROFILE or \
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (`check-config` names every place the default chain looks)";

/// Whether a failed call's cause is the credential chain finding no credentials, or finding
/// its own configuration invalid (rather than an endpoint that did not answer).
pub fn no_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return matches!(
                c,
                CredentialsError::CredentialsNotLoaded(_)
                    | CredentialsError::InvalidConfiguration(_)
            );
        }
        next = e.source();
    }
    false
}

/// Whether the default AWS credential chain yields credentials (without calling any AWS
/// service). The error is one line: [`CREDENTIAL_CHAIN`].
pub async fn find_credentials(region: &str) -> Result<(), &'static str> {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .load()
        .await;
    let Some(provider) = shared.credentials_provider() else {
        return Err(CREDENTIAL_CHAIN);
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(_) => Err(CREDENTIAL_CHAIN),
    }
}
