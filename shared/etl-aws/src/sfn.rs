//! Idempotent Step Functions starts.
//!
//! A caller derives the execution name from what it is reacting to (a Kinesis sequence
//! number, a date), so a retried invocation asks for the same name. StartExecution answers
//! `ExecutionAlreadyExists` when that name was used before (with another input, or once
//! the first run closed); for us that means "already started", which is success.

use aws_sdk_sfn::operation::start_execution::StartExecutionError;

use crate::error::EtlError;

/// Maximum execution name length.
pub const MAX_NAME_LEN: usize = 80;

/// Builds a valid execution name from `raw`. A raw name that is already valid (1-80
/// characters of `[A-Za-z0-9-_]`, the set CloudWatch Logs integration also accepts) is
/// kept as is. Otherwise other characters become `-`, the result is cut to 63 characters
/// and `-` plus a 16-hex-digit hash of the whole raw name is appended, so distinct raw
/// names stay distinct and the same raw name always maps to the same execution name.
pub fn execution_name(raw: &str) -> String {
    if is_valid_name(raw) {
        return raw.to_string();
    }
    let cleaned: String = raw
        .chars()
        .map(|c| if is_name_char(c) { c } else { '-' })
        .collect();
    let hash = format!("{:016x}", crate::stable_hash(raw.as_bytes()));
    // All ASCII by now, so byte offsets are char offsets.
    let keep = cleaned.len().min(MAX_NAME_LEN - hash.len() - 1);
    if keep == 0 {
        return format!("x-{hash}");
    }
    format!("{}-{hash}", &cleaned[..keep])
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `name` is a valid execution name as [`execution_name`] produces them.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.chars().all(is_name_char)
}

/// What [`start_execution`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new execution started.
    Started { execution_arn: String },
    /// An execution of that name already existed; nothing was started.
    AlreadyExists { execution_arn: String },
}

impl StartOutcome {
    pub fn execution_arn(&self) -> &str {
        match self {
            Self::Started { execution_arn } | Self::AlreadyExists { execution_arn } => {
                execution_arn
            }
        }
    }
}

/// The ARN an execution named `name` of `state_machine_arn` has.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// Starts `name` (see [`execution_name`]) with `input` (JSON); an existing execution of
/// the same name counts as success.
pub async fn start_execution(
    client: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &str,
) -> Result<StartOutcome, EtlError> {
    if !is_valid_name(name) {
        return Err(EtlError::invalid_input(format!(
            "execution name {name:?} is not 1-{MAX_NAME_LEN} characters of [A-Za-z0-9-_]; \
             build it with etl_aws::sfn::execution_name"
        )));
    }
    let result = client
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input)
        .send()
        .await;
    match result {
        Ok(out) => {
            tracing::info!(state_machine_arn, name, "execution started");
            Ok(StartOutcome::Started {
                execution_arn: out.execution_arn,
            })
        }
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(StartExecutionError::ExecutionAlreadyExists(_))
            ) =>
        {
            tracing::info!(state_machine_arn, name, "execution already exists");
            Ok(StartOutcome::AlreadyExists {
                execution_arn: execution_arn(state_machine_arn, name),
            })
        }
        Err(err) => Err(EtlError::from_sdk(
            format!("starting execution {name} of {state_machine_arn}"),
            err,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        is_valid_name(name)
    }

    #[test]
    fn names() {
        assert_eq!(execution_name("order-4950_12"), "order-4950_12");
        let a = execution_name("order 1/2");
        let b = execution_name("order 1:2");
        assert!(a.starts_with("order-1-2-") && valid(&a), "{a}");
        assert_ne!(a, b, "replaced characters must not make names collide");
        assert_eq!(a, execution_name("order 1/2"), "deterministic");

        let long = format!("order-{}", "4".repeat(120));
        let n = execution_name(&long);
        assert_eq!(n.len(), MAX_NAME_LEN);
        assert!(valid(&n));
        let other = execution_name(&format!("order-{}5", "4".repeat(119)));
        assert_ne!(n, other);

        let nearly = "z".repeat(75) + "/";
        let n = execution_name(&nearly);
        assert!(valid(&n) && n.len() == MAX_NAME_LEN, "{n}");
        assert!(valid(&execution_name("")));
    }

    #[test]
    fn arn() {
        assert_eq!(
            execution_arn("arn:aws:states:us-east-1:1:stateMachine:orders", "n1"),
            "arn:aws:states:us-east-1:1:execution:orders:n1"
        );
    }
}
