//! `check-config` against AWS: whether the default credential chain finds credentials.

use aws_sdk_qbusiness::config::{BehaviorVersion, ProvideCredentials, Region};

/// Where the default AWS credential chain looks, in its order, and what to set.
pub const CREDENTIAL_CHAIN: &str = "no AWS credentials found by the default chain \
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws/config+credentials, web identity \
AWS_ROLE_ARN+AWS_WEB_IDENTITY_TOKEN_FILE as EKS IRSA sets them, EKS Pod Identity or the ECS task \
role, the EC2 instance profile); give the pod or task an IAM role, or set AWS_PROFILE or \
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";

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
