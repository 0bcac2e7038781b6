//! SDK clients, built once per cold start and shared by every invocation.
//!
//! `aws_config::defaults(BehaviorVersion::latest())` already honours `AWS_ENDPOINT_URL`
//! (into [`SdkConfig::endpoint_url`]) and, when each service client is built from the
//! `SdkConfig`, `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `AWS_ENDPOINT_URL_S3`, loaded by the
//! service's config from the env service config). Nothing to do here for that. What the
//! SDK does not do is switch S3 to path-style addressing: against a custom endpoint
//! (LocalStack) virtual-hosted names like `bucket.127.0.0.1` do not resolve.

use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::{EnvSource, ProcessEnv};

/// Loads the shared SDK configuration from the environment (region, credentials,
/// endpoint URLs).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// Whether S3 requests go to a custom endpoint (so need path-style addressing).
pub fn s3_custom_endpoint(conf: &SdkConfig, env: &impl EnvSource) -> bool {
    conf.endpoint_url().is_some() || crate::config::optional(env, "AWS_ENDPOINT_URL_S3").is_some()
}

/// An S3 client; path-style when an endpoint URL is configured.
pub fn s3(conf: &SdkConfig) -> aws_sdk_s3::Client {
    let builder = aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(s3_custom_endpoint(conf, &ProcessEnv));
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A Glue client.
pub fn glue(conf: &SdkConfig) -> aws_sdk_glue::Client {
    aws_sdk_glue::Client::new(conf)
}

/// An SSM client.
pub fn ssm(conf: &SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(conf)
}

/// An SNS client.
pub fn sns(conf: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(conf)
}

/// A Step Functions client.
pub fn sfn(conf: &SdkConfig) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_style_follows_endpoints() {
        let plain = SdkConfig::builder().build();
        assert!(!s3_custom_endpoint(&plain, &[("X", "y")]));
        assert!(s3_custom_endpoint(
            &plain,
            &[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4566")]
        ));
        let local = SdkConfig::builder()
            .endpoint_url("http://127.0.0.1:4566")
            .build();
        assert!(s3_custom_endpoint(&local, &[("X", "y")]));
    }
}
