//! Who is asking: the resolved source address, a request id and the user agent, carried into
//! every use case so logs, audit events and sessions can name them.

use std::net::IpAddr;

/// The longest request id accepted from a client; longer ones are replaced.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// The context of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The client's address after trusted-proxy resolution, when known.
    pub source: Option<IpAddr>,
    /// The client's `x-request-id` when it is short and plain, otherwise a fresh UUID.
    pub request_id: String,
    /// The client's `user-agent`, as sent (untrusted; recorded with a session).
    pub user_agent: Option<String>,
}

impl RequestContext {
    /// A context for a request from `source`, keeping the client's request id only when it
    /// is 1–64 characters of `[A-Za-z0-9._:/-]` (so it cannot forge log lines).
    pub fn new(source: Option<IpAddr>, client_request_id: Option<&str>) -> Self {
        let request_id = client_request_id
            .map(str::trim)
            .filter(|id| is_plain_request_id(id))
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        Self {
            source,
            request_id,
            user_agent: None,
        }
    }

    /// The same context with the client's `user-agent`.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: Option<&str>) -> Self {
        self.user_agent = user_agent.map(str::to_owned);
        self
    }

    /// The source as shown in logs and audit events.
    pub fn source_label(&self) -> Option<String> {
        self.source.map(|ip| ip.to_string())
    }
}

fn is_plain_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_REQUEST_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_request_ids_are_kept_others_replaced() {
        assert_eq!(
            RequestContext::new(None, Some("abc-123")).request_id,
            "abc-123"
        );
        for bad in ["", "a b", "x\ny", "ünï", &"a".repeat(65)] {
            let id = RequestContext::new(None, Some(bad)).request_id;
            assert_ne!(id, bad);
            assert_eq!(id.len(), 36, "a UUID replaces {bad:?}");
        }
        assert_eq!(RequestContext::new(None, None).request_id.len(), 36);
    }
}
