//! SNS publish with a subject that SNS will accept.

use crate::error::EtlError;

/// SNS subjects must be fewer than 100 characters (so at most 99), ASCII in practice (email
/// endpoints), without line breaks or control characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
/// SNS message size limit (256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Makes `subject` acceptable to SNS: line breaks and control characters become spaces,
/// runs of spaces collapse, non-ASCII characters become `?`, and an over-long subject is
/// cut with `...`. `None` when nothing printable is left (publish then sends no subject).
pub fn sanitize_subject(subject: &str) -> Option<String> {
    let mut out = String::with_capacity(subject.len().min(MAX_SUBJECT_CHARS));
    let mut last_space = true; // also trims leading whitespace
    for c in subject.chars() {
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else if c.is_ascii() {
            c
        } else {
            '?'
        };
        if c == ' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        out.push(c);
    }
    let trimmed = out.trim_end();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.len() <= MAX_SUBJECT_CHARS {
        return Some(trimmed.to_string());
    }
    // ASCII only by now, so byte offsets are char offsets.
    let cut = trimmed[..MAX_SUBJECT_CHARS - 3].trim_end();
    Some(format!("{cut}..."))
}

/// Publishes `message` to `topic_arn` with a sanitized `subject`; returns the message id.
pub async fn publish(
    client: &aws_sdk_sns::Client,
    topic_arn: &str,
    subject: &str,
    message: &str,
) -> Result<String, EtlError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(EtlError::invalid_input(format!(
            "SNS message to {topic_arn} is {} bytes, over the {MAX_MESSAGE_BYTES} byte limit",
            message.len()
        )));
    }
    let out = client
        .publish()
        .topic_arn(topic_arn)
        .set_subject(sanitize_subject(subject))
        .message(message)
        .send()
        .await
        .map_err(|e| EtlError::from_sdk(format!("publishing to {topic_arn}"), e))?;
    let id = out.message_id.unwrap_or_default();
    tracing::info!(topic_arn, message_id = %id, "notification published");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert_eq!(
            sanitize_subject("ETL failed:\n  customers\tjob").as_deref(),
            Some("ETL failed: customers job")
        );
        assert_eq!(sanitize_subject("  \n\r ").as_deref(), None);
        assert_eq!(
            sanitize_subject("Qualité ✓ low").as_deref(),
            Some("Qualit? ? low")
        );
        let long = "x".repeat(250);
        let s = sanitize_subject(&long).unwrap();
        assert_eq!(s.len(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with("..."));
        let exact = "y".repeat(MAX_SUBJECT_CHARS);
        assert_eq!(sanitize_subject(&exact).unwrap(), exact);
    }
}
