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
    /// The function is misconfigured (environment variables, a disabled key, a bad ARN).
    Config,
    /// An account or service quota is used up: raise it or free room; a retry in minutes
    /// would meet the same quota.
    LimitExceeded,
    /// A bug or an unclassified failure.
    Internal,
}

impl ErrorKind {
    pub const ALL: [Self; 7] = [
        Self::Transient,
        Self::InvalidInput,
        Self::NotFound,
        Self::AccessDenied,
        Self::Config,
        Self::LimitExceeded,
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
            Self::LimitExceeded => "LimitExceeded",
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

/// The AWS services the functions call. Each has its own table of error codes, read
/// before the codes every service shares ([`COMMON_CODES`]): the same code can mean
/// different things in two services, and a code only one service returns is kept there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    S3,
    Glue,
    StepFunctions,
    Sns,
    Ssm,
    /// A client outside the tables (tests, a new service): common codes and status only.
    Other,
}

impl Service {
    pub const ALL: [Self; 5] = [
        Self::S3,
        Self::Glue,
        Self::StepFunctions,
        Self::Sns,
        Self::Ssm,
    ];

    /// The service whose SDK crate defines `E` (an operation error such as
    /// `aws_sdk_glue::operation::create_table::CreateTableError`). `type_name` is not
    /// promised stable across compilers, so a test pins it for every service.
    pub fn of<E>() -> Self {
        let name = std::any::type_name::<E>();
        let crate_name = name.split("::").next().unwrap_or_default();
        match crate_name {
            "aws_sdk_s3" => Self::S3,
            "aws_sdk_glue" => Self::Glue,
            "aws_sdk_sfn" => Self::StepFunctions,
            "aws_sdk_sns" => Self::Sns,
            "aws_sdk_ssm" => Self::Ssm,
            _ => Self::Other,
        }
    }

    /// This service's own codes.
    pub fn codes(self) -> &'static [(&'static str, ErrorKind)] {
        match self {
            Self::S3 => S3_CODES,
            Self::Glue => GLUE_CODES,
            Self::StepFunctions => SFN_CODES,
            Self::Sns => SNS_CODES,
            Self::Ssm => SSM_CODES,
            Self::Other => &[],
        }
    }
}

use ErrorKind::{AccessDenied, Config, Internal, InvalidInput, LimitExceeded, NotFound, Transient};

/// Codes any service may return.
pub const COMMON_CODES: &[(&str, ErrorKind)] = &[
    ("Throttling", Transient),
    ("ThrottlingException", Transient),
    ("ThrottledException", Transient),
    ("RequestThrottled", Transient),
    ("RequestThrottledException", Transient),
    ("TooManyRequestsException", Transient),
    ("RequestLimitExceeded", Transient),
    ("BandwidthLimitExceeded", Transient),
    ("ProvisionedThroughputExceededException", Transient),
    ("PriorRequestNotComplete", Transient),
    ("TransactionInProgressException", Transient),
    ("ConcurrentModificationException", Transient),
    ("RequestTimeout", Transient),
    ("RequestTimeoutException", Transient),
    ("OperationTimeoutException", Transient),
    ("InternalError", Transient),
    ("InternalFailure", Transient),
    ("InternalServiceException", Transient),
    ("InternalServerError", Transient),
    ("InternalServerException", Transient),
    ("ServiceUnavailable", Transient),
    ("ServiceUnavailableException", Transient),
    // Credentials expire and are refreshed by the SDK: the next attempt signs anew.
    ("ExpiredToken", Transient),
    ("ExpiredTokenException", Transient),
    ("IDPCommunicationError", Transient),
    ("AccessDenied", AccessDenied),
    ("AccessDeniedException", AccessDenied),
    ("AuthorizationError", AccessDenied),
    ("UnauthorizedOperation", AccessDenied),
    ("UnrecognizedClientException", AccessDenied),
    ("InvalidClientTokenId", AccessDenied),
    ("MissingAuthenticationToken", AccessDenied),
    ("SignatureDoesNotMatch", AccessDenied),
    ("KMSAccessDeniedException", AccessDenied),
    ("NotFound", NotFound),
    ("NotFoundException", NotFound),
    ("ResourceNotFoundException", NotFound),
    // A quota: nothing changes until someone raises it or frees room.
    ("LimitExceededException", LimitExceeded),
    ("ServiceQuotaExceededException", LimitExceeded),
    ("ResourceNumberLimitExceededException", LimitExceeded),
    ("ValidationException", InvalidInput),
    ("ValidationError", InvalidInput),
    ("InvalidParameterException", InvalidInput),
    ("InvalidParameterValueException", InvalidInput),
    ("MissingParameter", InvalidInput),
    ("SerializationException", Internal),
];

/// S3: GetObject (ranged, If-Match), HeadObject, PutObject, multipart uploads,
/// DeleteObject, ListObjectsV2.
pub const S3_CODES: &[(&str, ErrorKind)] = &[
    ("NoSuchKey", NotFound),
    ("NoSuchBucket", NotFound),
    ("NoSuchUpload", NotFound),
    ("NoSuchVersion", NotFound),
    ("SlowDown", Transient),
    ("RequestTimeTooSkewed", Transient),
    ("OperationAborted", Transient),
    // The object changed under an If-Match read: a rerun reads the new version.
    ("PreconditionFailed", Transient),
    ("ConditionalRequestConflict", Transient),
    ("TokenRefreshRequired", Transient),
    ("AllAccessDisabled", AccessDenied),
    ("AccountProblem", AccessDenied),
    ("InvalidAccessKeyId", AccessDenied),
    ("InvalidSecurity", AccessDenied),
    ("KMS.DisabledException", Config),
    ("KMS.KMSInvalidStateException", Config),
    ("KMS.NotFoundException", Config),
    // An archived object (Glacier): it must be restored before it can be read.
    ("InvalidObjectState", InvalidInput),
    ("KeyTooLongError", InvalidInput),
    ("EntityTooLarge", InvalidInput),
    ("EntityTooSmall", InvalidInput),
    ("InvalidRange", InvalidInput),
    ("InvalidArgument", InvalidInput),
    ("InvalidRequest", InvalidInput),
    ("InvalidPart", InvalidInput),
    ("InvalidPartOrder", InvalidInput),
    ("MalformedXML", InvalidInput),
    ("MetadataTooLarge", InvalidInput),
    ("InvalidBucketName", Config),
    ("TooManyBuckets", LimitExceeded),
];

/// Glue Data Catalog (databases, tables, partitions) and GetJobRun.
pub const GLUE_CODES: &[(&str, ErrorKind)] = &[
    ("EntityNotFoundException", NotFound),
    ("ResourceNotReadyException", Transient),
    ("FederationSourceRetryableException", Transient),
    // Job runs finish and free a slot.
    ("ConcurrentRunsExceededException", Transient),
    ("GlueEncryptionException", AccessDenied),
    ("PermissionTypeMismatchException", AccessDenied),
    ("InvalidInputException", InvalidInput),
    ("AlreadyExistsException", InvalidInput),
    ("IdempotentParameterMismatchException", InvalidInput),
    ("InvalidStateException", InvalidInput),
    ("FederationSourceException", InvalidInput),
];

/// Step Functions: StartExecution (kinesis-consumer's order workflow), DescribeExecution.
/// For kinesis-consumer the line that matters is `InvalidInput` (the record is at fault:
/// quarantined) against everything else (retried, then the batch's DLQ).
pub const SFN_CODES: &[(&str, ErrorKind)] = &[
    // Open executions at the account quota: they finish and make room.
    ("ExecutionLimitExceeded", Transient),
    // A stack update replacing the state machine: the function is pointed at the new one.
    ("StateMachineDeleting", Transient),
    ("KmsThrottlingException", Transient),
    ("StateMachineDoesNotExist", NotFound),
    ("ExecutionDoesNotExist", NotFound),
    ("ResourceNotFound", NotFound),
    ("KmsAccessDeniedException", AccessDenied),
    // The state machine's key is disabled or pending deletion: an operator's fix.
    ("KmsInvalidStateException", Config),
    // The configured state machine ARN, not the record.
    ("InvalidArn", Config),
    ("StateMachineTypeNotSupported", Config),
    // Built from the record: its input too large or not JSON, its name invalid.
    ("InvalidExecutionInput", InvalidInput),
    ("InvalidName", InvalidInput),
    ("ExecutionAlreadyExists", InvalidInput),
];

/// SNS Publish. The wire codes (query protocol) drop the `Exception` suffix of the
/// SDK's type names; both spellings are listed.
pub const SNS_CODES: &[(&str, ErrorKind)] = &[
    ("Throttled", Transient),
    ("KMSThrottling", Transient),
    ("KMSThrottlingException", Transient),
    ("InternalErrorException", Transient),
    ("AuthorizationErrorException", AccessDenied),
    ("KMSAccessDenied", AccessDenied),
    ("KMSOptInRequired", AccessDenied),
    ("InvalidSecurity", AccessDenied),
    ("InvalidSecurityException", AccessDenied),
    ("KMSDisabled", Config),
    ("KMSDisabledException", Config),
    ("KMSInvalidState", Config),
    ("KMSInvalidStateException", Config),
    ("KMSNotFound", Config),
    ("KMSNotFoundException", Config),
    ("EndpointDisabled", Config),
    ("InvalidParameter", InvalidInput),
    ("ParameterValueInvalid", InvalidInput),
];

/// SSM GetParameter.
pub const SSM_CODES: &[(&str, ErrorKind)] = &[
    ("ParameterNotFound", NotFound),
    ("ParameterVersionNotFound", NotFound),
    ("TooManyUpdates", Transient),
    ("InvalidKeyId", Config),
    ("InvalidParameters", InvalidInput),
];

fn lookup(table: &[(&str, ErrorKind)], code: &str) -> Option<ErrorKind> {
    table.iter().find(|(c, _)| *c == code).map(|(_, k)| *k)
}

/// Classifies by service error code first (the service's table, then the common one),
/// then by HTTP status.
pub fn classify_code_status(
    service: Service,
    code: Option<&str>,
    status: Option<u16>,
) -> ErrorKind {
    if let Some(kind) =
        code.and_then(|c| lookup(service.codes(), c).or_else(|| lookup(COMMON_CODES, c)))
    {
        return kind;
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
        SdkError::ServiceError(e) => classify_code_status(
            Service::of::<E>(),
            e.err().code(),
            Some(e.raw().status().as_u16()),
        ),
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
        let classify_code_status =
            |code, status| super::classify_code_status(Service::Other, code, status);
        let cases = [
            (Some("ThrottlingException"), Some(400), Transient),
            (Some("SlowDown"), Some(503), Transient),
            (
                Some("ConcurrentModificationException"),
                Some(400),
                Transient,
            ),
            (Some("NoSuchKey"), Some(404), NotFound),
            (Some("ResourceNotFoundException"), Some(400), NotFound),
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
    fn each_service_has_its_own_table() {
        use ErrorKind::*;
        let cases = [
            // The findings: a full Step Functions account or a state machine being
            // replaced is not the purchase's fault; a Glue quota does not pass by retrying.
            (
                Service::StepFunctions,
                "ExecutionLimitExceeded",
                400,
                Transient,
            ),
            (
                Service::StepFunctions,
                "StateMachineDeleting",
                400,
                Transient,
            ),
            (
                Service::StepFunctions,
                "KmsThrottlingException",
                400,
                Transient,
            ),
            (Service::StepFunctions, "InvalidArn", 400, Config),
            (
                Service::StepFunctions,
                "InvalidExecutionInput",
                400,
                InvalidInput,
            ),
            (
                Service::StepFunctions,
                "StateMachineDoesNotExist",
                400,
                NotFound,
            ),
            (
                Service::Glue,
                "ResourceNumberLimitExceededException",
                400,
                LimitExceeded,
            ),
            (
                Service::Glue,
                "ConcurrentModificationException",
                400,
                Transient,
            ),
            (Service::Glue, "EntityNotFoundException", 400, NotFound),
            (Service::Glue, "GlueEncryptionException", 400, AccessDenied),
            (Service::S3, "SlowDown", 503, Transient),
            (Service::S3, "PreconditionFailed", 412, Transient),
            (Service::S3, "InvalidObjectState", 403, InvalidInput),
            (Service::S3, "NoSuchKey", 404, NotFound),
            (Service::S3, "KeyTooLongError", 400, InvalidInput),
            (Service::Sns, "Throttled", 429, Transient),
            (Service::Sns, "KMSThrottling", 400, Transient),
            (Service::Sns, "KMSDisabled", 400, Config),
            (Service::Sns, "AuthorizationError", 403, AccessDenied),
            (Service::Ssm, "ParameterNotFound", 400, NotFound),
            (Service::Ssm, "InvalidKeyId", 400, Config),
            // Codes every service shares.
            (Service::Ssm, "ThrottlingException", 400, Transient),
            (Service::Glue, "AccessDeniedException", 400, AccessDenied),
        ];
        for (service, code, status, want) in cases {
            assert_eq!(
                classify_code_status(service, Some(code), Some(status)),
                want,
                "{service:?} {code}"
            );
        }
        // Without the service, the 400s above would all be "the request is wrong".
        assert_eq!(
            classify_code_status(Service::Other, Some("ExecutionLimitExceeded"), Some(400)),
            InvalidInput
        );
    }

    #[test]
    fn tables_are_consistent() {
        // A service's table overrides the common one; an entry equal to the common one
        // is dead weight, and a code listed twice in one table is a mistake.
        for service in Service::ALL {
            let table = service.codes();
            for (i, (code, kind)) in table.iter().enumerate() {
                assert!(
                    !table[..i].iter().any(|(c, _)| c == code),
                    "{service:?} lists {code} twice"
                );
                assert_ne!(
                    lookup(COMMON_CODES, code),
                    Some(*kind),
                    "{service:?} repeats the common entry for {code}"
                );
            }
        }
        for (i, (code, _)) in COMMON_CODES.iter().enumerate() {
            assert!(
                !COMMON_CODES[..i].iter().any(|(c, _)| c == code),
                "common codes list {code} twice"
            );
        }
    }

    #[test]
    fn the_service_comes_from_the_error_type() {
        // Pinned per service: `type_name`'s format is not promised across compilers.
        assert_eq!(
            Service::of::<aws_sdk_s3::operation::get_object::GetObjectError>(),
            Service::S3
        );
        assert_eq!(
            Service::of::<aws_sdk_glue::operation::create_table::CreateTableError>(),
            Service::Glue
        );
        assert_eq!(
            Service::of::<aws_sdk_sfn::operation::start_execution::StartExecutionError>(),
            Service::StepFunctions
        );
        assert_eq!(
            Service::of::<aws_sdk_sns::operation::publish::PublishError>(),
            Service::Sns
        );
        assert_eq!(
            Service::of::<aws_sdk_ssm::operation::get_parameter::GetParameterError>(),
            Service::Ssm
        );
        assert_eq!(Service::of::<ErrorMetadata>(), Service::Other);
    }

    #[test]
    fn sdk_errors_are_classified_by_their_service() {
        use aws_sdk_sfn::operation::start_execution::StartExecutionError;
        let limit = SdkError::service_error(
            StartExecutionError::generic(
                ErrorMetadata::builder()
                    .code("ExecutionLimitExceeded")
                    .message("too many")
                    .build(),
            ),
            response(400),
        );
        let err = EtlError::from_sdk("starting order-1", limit);
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert_eq!(
            err.to_string(),
            "starting order-1: ExecutionLimitExceeded: too many"
        );
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
