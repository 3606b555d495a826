//! The answer saved beside a route, so that a place whose answer was lost
//! (a timeout, a 503 after the write applied, a client that went away)
//! can be asked again and get the same decision back.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A decision as it was answered, and the request it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// sha256 (lowercase hex) of the request's `{name, container, image}`.
    pub digest: String,
    /// The SPEC section 4 output that was answered.
    pub output: Value,
}

impl Answer {
    /// The answer `output` gives to `request`.
    pub fn new(request: &Value, output: &Value) -> Answer {
        Answer {
            digest: request_digest(request),
            output: output.clone(),
        }
    }

    /// The stored record: `{"digest", "output"}`.
    pub fn to_text(&self) -> String {
        json!({"digest": self.digest, "output": self.output}).to_string()
    }

    /// Whether this is the answer to `request`.
    pub fn answers(&self, request: &Value) -> bool {
        self.digest == request_digest(request)
    }
}

/// What makes two requests the same: their `name`, `container` and
/// `image`, as sent (keys keep their order, so a client that sends the
/// same bytes again gets the same digest).
pub fn request_digest(request: &Value) -> String {
    let part = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    let text = json!([part("name"), part("container"), part("image")]).to_string();
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{records::read_answer, StoreError};

    #[test]
    fn the_same_request_has_the_same_digest_and_a_record_reads_back() {
        let a = json!({"name": "a.1", "container": {"Image": "x"}, "image": {}});
        let b = json!({"name": "a.1", "container": {"Image": "y"}, "image": {}});
        let answer = Answer::new(&a, &json!({"server": {"hostname": "n1"}}));
        assert!(answer.answers(&a.clone()));
        assert!(!answer.answers(&b));
        // The sha256 of `["a.1",{"Image":"x"},{}]`, as sha256sum prints it.
        assert_eq!(
            answer.digest,
            "a9ccf56322b4db1bf460042a183b365c0130487054166b49e32c5fab6f6862b4"
        );
        let back = read_answer("k", &answer.to_text()).unwrap();
        assert_eq!(back, answer);
        assert!(matches!(
            read_answer("k", "{}"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
