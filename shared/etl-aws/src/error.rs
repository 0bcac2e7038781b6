//! One error type for every function, carrying a stable [`ErrorKind`].
//!
//! lambda_runtime 1.x reports a handler error as `{errorType, errorMessage}` built from
//! `Into<Diagnostic>`; its blanket conversions use `std::any::type_name`, which would give
//! Step Functions names like `alloc::boxed::Box<dyn core::error::Error>`. Our
//! `From<EtlError> for Diagnostic` puts [`ErrorKind::as_str`] there instead, so a state
//! machine can match `"ErrorEquals": ["TransientError"]` in Retry and anything else in Catch.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lambda_runtime::Diagnostic;

use crate::config::ConfigError;

/// The class of a failure; its string form is the Lambda `errorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Worth retrying: throttling, 5xx, timeouts, connection failures, conflicts.
    Transient,
    /// The request cannot succeed as given: bad input, validation errors, other 4xx.
    InvalidInput,
    /// The named resource (object, job run, table, parameter) does not exist.
    NotFound,
    /// The function's role lacks a permission; fix IAM, do not retry.
    AccessDenied,
    /// The function is misconfigured (environment variables).
    Config,
    /// A bug or an unclassified failure.
    Internal,
}

impl ErrorKind {
    pub const ALL: [Self; 6] = [
        Self::Transient,
        Self::InvalidInput,
        Self::NotFound,
        Self::AccessDenied,
        Self::Config,
        Self::Internal,
    ];

    /// The kind an `errorType` string names, if any.
    pub fn from_error_type(error_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == error_type)
    }

    /// The stable `errorType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "TransientError",
            Self::InvalidInput => "InvalidInput",
            Self::NotFound => "NotFound",
            Self::AccessDenied => "AccessDenied",
            Self::Config => "ConfigError",
            Self::Internal => "InternalError",
        }
    }

    /// Whether a retry may succeed.
    pub fn is_retryable(self) -> bool {
        self == Self::Transient
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with a kind, an actionable message (naming the bucket, key, table, ...) and
/// optionally the underlying cause.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EtlError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
}

impl EtlError {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Classifies an SDK error (see [`classify_sdk_error`]); `context` says what was being
    /// done, e.g. "listing s3://bucket/prefix".
    pub fn from_sdk<E>(context: impl std::fmt::Display, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = classify_sdk_error(&err);
        let detail = match (err.code(), err.message()) {
            (Some(code), Some(msg)) => format!("{code}: {msg}"),
            (Some(code), None) => code.to_string(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self::new(kind, format!("{context}: {detail}")).with_source(err)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable `errorType` string.
    pub fn error_type(&self) -> &'static str {
        self.kind.as_str()
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<ConfigError> for EtlError {
    fn from(err: ConfigError) -> Self {
        Self::new(ErrorKind::Config, err.to_string()).with_source(err)
    }
}

impl From<EtlError> for Diagnostic {
    fn from(err: EtlError) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.message,
        }
    }
}

/// Error codes that mean "try again later", across services.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServiceException",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ConcurrentModificationException",
    "OperationTimeoutException",
    "ResourceNumberLimitExceededException",
];

const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchKey",
    "NoSuchBucket",
    "NoSuchUpload",
    "NotFound",
    "EntityNotFoundException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "ResourceNotFoundException",
    "StateMachineDoesNotExist",
    "ExecutionDoesNotExist",
    "NotFoundException",
];

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnauthorizedOperation",
    "KMSAccessDeniedException",
];

/// Classifies by service error code first (it is more specific), then by HTTP status.
pub fn classify_code_status(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    if let Some(code) = code {
        if TRANSIENT_CODES.contains(&code) {
            return ErrorKind::Transient;
        }
        if NOT_FOUND_CODES.contains(&code) {
            return ErrorKind::NotFound;
        }
        if ACCESS_DENIED_CODES.contains(&code) {
            return ErrorKind::AccessDenied;
        }
    }
    match status {
        Some(429) | Some(408) => ErrorKind::Transient,
        Some(s) if s >= 500 => ErrorKind::Transient,
        Some(404) => ErrorKind::NotFound,
        Some(403) => ErrorKind::AccessDenied,
        Some(s) if s >= 400 => ErrorKind::InvalidInput,
        // A service error with a code we do not know and no status: the service refused
        // the request, so retrying it unchanged would not help.
        _ if code.is_some() => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

/// Classifies an SDK error: timeouts and dispatch (connection) failures are transient;
/// service and response errors go by code and status ([`classify_code_status`]);
/// a construction failure is a bug in the request we built.
pub fn classify_sdk_error<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorKind {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => ErrorKind::Transient,
        SdkError::ConstructionFailure(_) => ErrorKind::Internal,
        SdkError::ResponseError(e) => {
            // An unparseable response: transient if the service was failing anyway.
            let status = e.raw().status().as_u16();
            if status >= 500 || status == 429 {
                ErrorKind::Transient
            } else {
                ErrorKind::Internal
            }
        }
        SdkError::ServiceError(e) => {
            classify_code_status(e.err().code(), Some(e.raw().status().as_u16()))
        }
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(status.try_into().expect("valid status"), SdkBody::empty())
    }

    fn service_error(code: &str, status: u16) -> SdkError<ErrorMetadata, HttpResponse> {
        SdkError::service_error(
            ErrorMetadata::builder().code(code).message("m").build(),
            response(status),
        )
    }

    #[test]
    fn codes_and_statuses() {
        use ErrorKind::*;
        let cases = [
            (Some("ThrottlingException"), Some(400), Transient),
            (Some("SlowDown"), Some(503), Transient),
            (
                Some("ConcurrentModificationException"),
                Some(400),
                Transient,
            ),
            (Some("NoSuchKey"), Some(404), NotFound),
            (Some("EntityNotFoundException"), Some(400), NotFound),
            (Some("AccessDenied"), Some(403), AccessDenied),
            (Some("ValidationException"), Some(400), InvalidInput),
            (Some("Whatever"), Some(500), Transient),
            (None, Some(502), Transient),
            (None, Some(429), Transient),
            (None, Some(404), NotFound),
            (None, Some(400), InvalidInput),
            (Some("Odd"), None, InvalidInput),
            (None, None, Internal),
        ];
        for (code, status, want) in cases {
            assert_eq!(
                classify_code_status(code, status),
                want,
                "{code:?} {status:?}"
            );
        }
    }

    #[test]
    fn sdk_error_variants() {
        let timeout: SdkError<ErrorMetadata, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify_sdk_error(&timeout), ErrorKind::Transient);
        let dispatch: SdkError<ErrorMetadata, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert_eq!(classify_sdk_error(&dispatch), ErrorKind::Transient);
        let build: SdkError<ErrorMetadata, HttpResponse> = SdkError::construction_failure("bad");
        assert_eq!(classify_sdk_error(&build), ErrorKind::Internal);
        assert_eq!(
            classify_sdk_error(&service_error("InternalError", 500)),
            ErrorKind::Transient
        );
        assert_eq!(
            classify_sdk_error(&service_error("InvalidParameterException", 400)),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn diagnostic_carries_the_stable_type() {
        let err = EtlError::from_sdk("reading s3://b/k", service_error("NoSuchKey", 404));
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.to_string(), "reading s3://b/k: NoSuchKey: m");
        let diag = Diagnostic::from(err);
        assert_eq!(diag.error_type, "NotFound");
        assert_eq!(diag.error_message, "reading s3://b/k: NoSuchKey: m");

        let diag = Diagnostic::from(EtlError::transient("later"));
        assert_eq!(diag.error_type, "TransientError");
    }
}
