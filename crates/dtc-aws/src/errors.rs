//! AWS SDK errors, summed up: why a request failed (whose move it is), in one short line, with
//! the SDK's whole report kept aside for a verbose log.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use dtc_io::ServiceCause;

/// A failed request, summed up.
pub(crate) struct Summary {
    pub cause: ServiceCause,
    /// The error code and message, or the innermost cause: e.g. `NoSuchBucket: The specified
    /// bucket does not exist`, `Connection refused (os error 111)`.
    pub short: String,
    /// The SDK's whole report (several kilobytes at times).
    pub detail: String,
}

const MISSING: &[&str] = &[
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "NotFound",
    "ResourceNotFoundException",
];

const CREDENTIALS: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "ExpiredToken",
    "ExpiredTokenException",
    "AccessDenied",
    "AccessDeniedException",
    "MissingAuthenticationToken",
    "Forbidden",
];

const THROTTLED: &[&str] = &[
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
];

pub(crate) fn summarize<E>(err: &SdkError<E, HttpResponse>) -> Summary
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(err).to_string();
    let mentions_credentials = detail.to_lowercase().contains("credential");
    let innermost = innermost_cause(err);
    let (cause, short) = match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_string);
            let status = Some(service.raw().status().as_u16());
            let cause = match code.as_deref() {
                Some(c) if MISSING.contains(&c) => ServiceCause::Missing,
                Some(c) if CREDENTIALS.contains(&c) => ServiceCause::Credentials,
                Some(c) if THROTTLED.contains(&c) => ServiceCause::Throttled,
                _ if status == Some(404) => ServiceCause::Missing,
                _ if status == Some(403) => ServiceCause::Credentials,
                _ if status.is_some_and(|s| s >= 500) => ServiceCause::Throttled,
                _ => ServiceCause::Refused,
            };
            let short = match (code.as_deref(), service.err().message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                (None, _) => match status {
                    Some(status) => format!("HTTP {status}"),
                    None => innermost,
                },
            };
            (cause, short)
        }
        _ if mentions_credentials => (ServiceCause::Credentials, innermost),
        SdkError::ConstructionFailure(_) => (ServiceCause::Setup, innermost),
        _ => (ServiceCause::Unreachable, innermost),
    };
    Summary {
        cause,
        short,
        detail,
    }
}

/// The last error in the source chain: the one that says what happened (`Connection refused`)
/// under the layers that say where.
fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// `message` for a failed request on `resource` of `service`, with the fix the cause asks for.
pub(crate) fn one_line(
    service: &str,
    operation: &str,
    resource: &str,
    summary: &Summary,
) -> String {
    let endpoint_variable = match service {
        "S3" => "AWS_ENDPOINT_URL_S3",
        _ => "AWS_ENDPOINT_URL_DYNAMODB",
    };
    match summary.cause {
        ServiceCause::Missing => format!("{resource} does not exist ({})", summary.short),
        ServiceCause::Credentials => format!(
            "{service} refused the credentials for {resource} ({}): check AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or AWS_PROFILE",
            summary.short
        ),
        ServiceCause::Setup => format!(
            "{service} {operation} on {resource} could not be sent ({}): check AWS_REGION and \
             the AWS configuration",
            summary.short
        ),
        ServiceCause::Unreachable => format!(
            "cannot reach {service} for {resource} ({}): check the endpoint ({endpoint_variable} \
             or AWS_ENDPOINT_URL) and the network",
            summary.short
        ),
        ServiceCause::Throttled => format!(
            "{service} is busy or failing ({operation} on {resource}: {}); try again later",
            summary.short
        ),
        ServiceCause::Refused => format!(
            "{service} refused {operation} on {resource}: {}",
            summary.short
        ),
    }
}

/// An [`dtc_io::IoError::Service`] for a failed S3 request.
pub(crate) fn s3_error<E>(
    operation: &str,
    resource: &str,
    err: &SdkError<E, HttpResponse>,
) -> dtc_io::IoError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let summary = summarize(err);
    dtc_io::IoError::Service {
        message: one_line("S3", operation, resource, &summary),
        detail: summary.detail,
        cause: summary.cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_messages_name_the_resource_and_the_fix() {
        let summary = |cause| Summary {
            cause,
            short: "why".into(),
            detail: "a long report".into(),
        };
        let missing = one_line(
            "S3",
            "ListObjectsV2",
            "S3 bucket `b`",
            &summary(ServiceCause::Missing),
        );
        assert_eq!(missing, "S3 bucket `b` does not exist (why)");
        let unreachable = one_line(
            "DynamoDB",
            "DescribeTable",
            "DynamoDB table `t`",
            &summary(ServiceCause::Unreachable),
        );
        assert!(
            unreachable.contains("AWS_ENDPOINT_URL_DYNAMODB"),
            "{unreachable}"
        );
        let credentials = one_line("S3", "GetObject", "x", &summary(ServiceCause::Credentials));
        assert!(credentials.contains("AWS_ACCESS_KEY_ID"), "{credentials}");
        for cause in [
            ServiceCause::Missing,
            ServiceCause::Credentials,
            ServiceCause::Setup,
            ServiceCause::Unreachable,
            ServiceCause::Throttled,
            ServiceCause::Refused,
        ] {
            let line = one_line("S3", "PutObject", "S3 object `k`", &summary(cause));
            assert!(
                !line.contains('\n') && !line.contains("a long report"),
                "{line}"
            );
        }
    }
}
